"""An inverted genotype index: a search against millions of profiles without scanning them.

Every profile is a row of an ``(N, L, 2)`` matrix of allele codes (prum.dna.profile).
For each row and each *fully designated* locus the index holds one key
``(locus, allele a, allele b)`` (a <= b) in a CSR layout: sorted unique ``keys``,
``offsets`` into ``postings`` (the row numbers, ascending within a key).

Why genotype keys suffice, near matches included: a hit of either kind needs at least
``min_loci`` *matching* loci (prum.dna.match), each fully designated in both profiles
and identical, so a hit appears in at least ``min_loci`` of the probe's posting lists.
The one differing allele of a near match sits at a locus that is not needed to find
it, and wildcard loci never count; so no key is needed for them.

Candidate generation (the T-occurrence problem, "DivideSkip" of Li, Lu and Lu, ICDE
2008): of the probe's ``k`` lists the ``s`` longest are skipped, and a row must occur in
at least ``min_loci - s`` of the remaining ones, counted in a byte array. Every
candidate is then verified by the exact rules (:func:`prum.dna.match.classify`) on
its stored row, so the index can only cost time, never change an answer. Rows added
after the last build are a small "delta" that is scanned directly.

Persistence: ``.npy`` files in one directory (the code matrix memory-mapped), with the
ids of the rows; the index can always be rebuilt from the system of record.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.dna.match import Kind, classify
from prum.dna.profile import FIRST_NUMERIC
from prum.errors import StorageError

# Cost of verifying one candidate row, in units of counting one posting (measured
# with bench/dna.py: about 0.5 us against 3 ns). Only speed depends on it.
VERIFY_COST = 150.0
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Hit:
    row: int
    id: int
    kind: Kind
    matching: int


def _empty_codes(n_loci: int) -> NDArray[np.uint16]:
    return np.zeros((0, n_loci, 2), dtype=np.uint16)


class DnaIndex:
    """Genotype index over a code matrix; ``ids`` (ascending) name the rows."""

    def __init__(self, n_loci: int):
        self.n_loci = n_loci
        self.codes: NDArray[np.uint16] = _empty_codes(n_loci)
        self.ids: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.alive: NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self.keys: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.offsets: NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.postings: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.built_rows = 0  # rows [0, built_rows) are in the CSR; the rest is the delta
        self._delta: list[NDArray[np.uint16]] = []
        self._delta_ids: list[int] = []
        self._lock = threading.RLock()

    # --- size and bookkeeping -------------------------------------------------------

    def __len__(self) -> int:
        return int(self.alive.sum()) + len(self._delta_ids)

    @property
    def last_id(self) -> int:
        if self._delta_ids:
            return self._delta_ids[-1]
        return int(self.ids[-1]) if len(self.ids) else 0

    def nbytes(self) -> int:
        """Bytes the index keeps in memory (a memory-mapped matrix counts in full)."""
        arrays = (self.codes, self.ids, self.alive, self.keys, self.offsets, self.postings)
        return sum(a.nbytes for a in arrays) + sum(d.nbytes for d in self._delta)

    # --- building -------------------------------------------------------------------

    @classmethod
    def build(cls, codes: NDArray[np.uint16], ids: NDArray[np.int64] | None = None) -> DnaIndex:
        """Index a whole matrix (it may be a memory map; it is read one locus at a time)."""
        index = cls(codes.shape[1])
        n = codes.shape[0]
        index.codes = codes
        index.ids = (
            np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        )
        if len(index.ids) != n or (n > 1 and np.any(np.diff(index.ids) <= 0)):
            raise ValueError("ids must be one ascending id per row")
        index.alive = np.ones(n, dtype=bool)
        index._build_csr()
        return index

    def _build_csr(self) -> None:
        keys: list[NDArray[np.int64]] = []
        starts: list[NDArray[np.int64]] = []
        postings: list[NDArray[np.int32]] = []
        base = 0
        for locus in range(self.n_loci):
            a = np.ascontiguousarray(self.codes[:, locus, 0])
            rows = np.flatnonzero(a >= FIRST_NUMERIC).astype(np.int32)
            b = np.ascontiguousarray(self.codes[:, locus, 1])[rows]
            genotype = (a[rows].astype(np.uint32) << 16) | b.astype(np.uint32)
            del a, b
            order = np.argsort(genotype, kind="stable")  # stable: rows stay ascending
            genotype = genotype[order]
            rows = rows[order]
            del order
            unique, first = np.unique(genotype, return_index=True)
            keys.append((np.int64(locus) << 32) | unique.astype(np.int64))
            starts.append(first.astype(np.int64) + base)
            postings.append(rows)
            base += len(rows)
        self.keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.offsets = np.concatenate([*starts, np.array([base], dtype=np.int64)])
        self.postings = np.concatenate(postings) if postings else np.zeros(0, np.int32)
        self.built_rows = self.codes.shape[0]

    def add(self, record_id: int, row: NDArray[np.uint16]) -> None:
        """Append one profile (to the delta, scanned until the next rebuild)."""
        with self._lock:
            if record_id <= self.last_id:
                raise ValueError("record ids must grow")
            self._delta.append(np.asarray(row, dtype=np.uint16).reshape(self.n_loci, 2))
            self._delta_ids.append(record_id)

    def remove(self, record_id: int) -> bool:
        """Forget a profile; False if it is not in the index."""
        with self._lock:
            if record_id in self._delta_ids:
                at = self._delta_ids.index(record_id)
                del self._delta[at], self._delta_ids[at]
                return True
            at = int(np.searchsorted(self.ids, record_id))
            if at < len(self.ids) and self.ids[at] == record_id and self.alive[at]:
                self.alive[at] = False
                return True
            return False

    def compact(self) -> None:
        """Fold the delta in and drop deleted rows, then rebuild the keys."""
        with self._lock:
            keep = np.flatnonzero(self.alive)
            parts = [np.asarray(self.codes[keep])]
            if self._delta:
                parts.append(np.stack(self._delta))
            self.codes = np.concatenate(parts) if parts else _empty_codes(self.n_loci)
            self.ids = np.concatenate([self.ids[keep], np.array(self._delta_ids, np.int64)])
            self.alive = np.ones(len(self.ids), dtype=bool)
            self._delta, self._delta_ids = [], []
            self._build_csr()

    # --- searching ------------------------------------------------------------------

    def posting_lists(self, probe: NDArray[np.uint16]) -> list[NDArray[np.int32]]:
        """The rows sharing each fully designated genotype of the probe."""
        lists = []
        for locus in np.flatnonzero(probe[:, 0] >= FIRST_NUMERIC):
            key = (int(locus) << 32) | (int(probe[locus, 0]) << 16) | int(probe[locus, 1])
            at = int(np.searchsorted(self.keys, key))
            if at < len(self.keys) and self.keys[at] == key:
                lists.append(self.postings[self.offsets[at] : self.offsets[at + 1]])
            else:
                lists.append(self.postings[:0])
        return lists

    def candidates(self, probe: NDArray[np.uint16], min_loci: int) -> NDArray[np.int64]:
        """Rows of the CSR part that can hold a hit (a superset of the hits)."""
        lists = sorted(self.posting_lists(probe), key=len)
        if len(lists) < min_loci or self.built_rows == 0:
            return np.zeros(0, dtype=np.int64)
        threshold = self.threshold([len(x) for x in lists], min_loci)
        short = lists[: len(lists) - (min_loci - threshold)]
        touched = np.concatenate(short)
        if threshold > 1:
            counts = np.zeros(self.built_rows, dtype=np.uint8)
            for rows in short:
                # Unique within a list, so += counts each once; numpy indexes with intp
                # anyway, and converting first is faster than letting it do so.
                counts[rows.astype(np.intp)] += 1
            touched = touched[counts[touched.astype(np.intp)] >= threshold]
        found: NDArray[np.int64] = np.unique(touched).astype(np.int64)
        return found

    def threshold(self, lengths: list[int], min_loci: int) -> int:
        """The count ``t`` to demand on the ``k - (min_loci - t)`` shortest lists.

        Any ``t`` in 1..min_loci is correct; it only trades counting work (the lengths
        of the lists counted) against verification work (expected candidates, from the
        list lengths as if loci were independent, times VERIFY_COST).
        """
        n = max(1, self.built_rows)
        best, best_cost = min_loci, float("inf")
        for t in range(1, min_loci + 1):
            short = lengths[: len(lengths) - (min_loci - t)]
            # e[j]: expected share of rows in exactly... at least j of the lists so far
            # (elementary symmetric polynomial of the list shares, degree t).
            e = [1.0] + [0.0] * t
            for length in short:
                f = length / n
                for j in range(t, 0, -1):
                    e[j] += e[j - 1] * f
            cost = sum(short) + VERIFY_COST * n * e[t]
            if cost < best_cost:
                best, best_cost = t, cost
        return best

    def search(self, probe: NDArray[np.uint16], min_loci: int) -> list[Hit]:
        """Every row that matches or near-matches the probe (prum.dna.match rules)."""
        if min_loci < 1:
            raise ValueError("min_loci must be at least 1")
        probe = np.asarray(probe, dtype=np.uint16)
        with self._lock:
            rows = self.candidates(probe, min_loci)
            rows = rows[self.alive[rows]]
            kind, count = classify(probe, np.asarray(self.codes[rows]), min_loci)
            found = np.flatnonzero(kind)
            hits = [
                Hit(int(rows[i]), int(self.ids[rows[i]]), Kind(int(kind[i])), int(count[i]))
                for i in found
            ]
            if self._delta:
                kind, count = classify(probe, np.stack(self._delta), min_loci)
                for i in np.flatnonzero(kind):
                    hits.append(Hit(-1, self._delta_ids[i], Kind(int(kind[i])), int(count[i])))
        return hits

    # --- persistence ----------------------------------------------------------------

    def save(self, directory: Path, **meta: int | str) -> None:
        """Write the index (compacted) to ``directory``; ``meta`` is kept beside it.

        The files are written to a sibling directory that then replaces the old one, so
        a crash leaves the old index, or none (rebuilt from the store), never a mix.
        """
        with self._lock:
            self.compact()
            fresh = directory.with_name(directory.name + ".new")
            old = directory.with_name(directory.name + ".old")
            for stale in (fresh, old):
                if stale.exists():
                    shutil.rmtree(stale)
            fresh.mkdir(parents=True)
            out = np.lib.format.open_memmap(  # type: ignore[no-untyped-call]
                fresh / "codes.npy", mode="w+", dtype=np.uint16, shape=self.codes.shape
            )
            out[:] = self.codes
            out.flush()
            del out
            for name in ("ids", "keys", "offsets", "postings"):
                np.save(fresh / f"{name}.npy", getattr(self, name))
            info = {"version": FORMAT_VERSION, "rows": len(self.ids), "n_loci": self.n_loci, **meta}
            (fresh / "meta.json").write_text(json.dumps(info))
            if directory.exists():
                directory.rename(old)
            fresh.rename(directory)
            if old.exists():
                shutil.rmtree(old)
            self.codes = np.load(directory / "codes.npy", mmap_mode="r")

    @classmethod
    def load(cls, directory: Path) -> tuple[DnaIndex, dict[str, Any]]:
        """Open a saved index (the code matrix memory-mapped) and its ``meta``."""
        info = json.loads((directory / "meta.json").read_text())
        if info.get("version") != FORMAT_VERSION:
            raise StorageError(f"DNA index format {info.get('version')} is not {FORMAT_VERSION}")
        index = cls(int(info["n_loci"]))
        index.codes = np.load(directory / "codes.npy", mmap_mode="r")
        index.ids = np.load(directory / "ids.npy")
        index.keys = np.load(directory / "keys.npy")
        index.offsets = np.load(directory / "offsets.npy")
        index.postings = np.load(directory / "postings.npy")
        if index.codes.shape != (int(info["rows"]), index.n_loci, 2) or len(index.ids) != int(
            info["rows"]
        ):
            raise StorageError(f"the DNA index files in {directory} do not fit together")
        index.alive = np.ones(len(index.ids), dtype=bool)
        index.built_rows = index.codes.shape[0]
        return index, {k: v for k, v in info.items() if k not in ("version", "rows", "n_loci")}


def naive_search(
    codes: NDArray[np.uint16], probe: NDArray[np.uint16], min_loci: int, chunk: int = 1_000_000
) -> NDArray[np.int64]:
    """Rows that match or near-match, by classifying every row (the reference scan)."""
    found = []
    for start in range(0, codes.shape[0], chunk):
        kind, _ = classify(probe, np.asarray(codes[start : start + chunk]), min_loci)
        found.append(np.flatnonzero(kind) + start)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
