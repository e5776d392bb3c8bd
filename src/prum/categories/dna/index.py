"""A genotype index that knows each profile's kit: a search against millions of
profiles that reads only a few short posting lists.

Every profile is a row of an ``(N, L, 2)`` matrix of allele codes (prum.categories.dna.profile).
Its *kit* is the set of loci it has fully designated (a bit mask). The rows of the
most common kits (ESS-12, 16, 21, 24 loci, ...: at least ``min_kit_rows`` rows each,
at most ``MAX_KITS`` kits) are indexed per kit; all other rows (partial traces,
profiles with a wildcard) form the *mixed* part, kit 0. One CSR layout (sorted unique
int64 ``keys``, ``offsets`` into ``postings``, the row numbers ascending within a key)
holds three kinds of key:

- ``(locus, kit, genotype)`` for each fully designated locus of each row;
- ``(pair, kit, genotype, genotype)`` for each of the kit's fixed locus pairs
  (:meth:`DnaIndex.kit_pairs`: three matchings of its loci), for kit rows only;
- ``(locus pair, genotype, genotype)`` for every pair of designated loci of each row of
  the mixed part, when those rows have few loci (``mixed_pairs``: traces).

**Why this is exact.** Let P be the fully designated loci of the probe and K the kit
of a row, C = P & K and c = |C|. A hit of either kind (prum.categories.dna.match) has at least
``min_loci`` matching loci, all in C, and at most one differing allele over all loci,
so at most one locus of C is not identical (a locus fully designated in both and not
identical differs by at least one allele). Hence a kit with c < ``min_loci`` holds no
hit, and a hit of kit K is identical on all loci of C but ``c - max(min_loci, c - 1)``
(0 or 1). The loci of C are cut into *units*, disjoint pairs of the kit that lie in C
(chosen greedily, rarest first) and single loci for the rest; a failing locus spoils
one unit, so a hit shares all the probe's units of that kit but 0 or 1. A row of the
mixed part (whose loci the search does not know) shares at least ``min_loci`` of the
probe's single-locus keys, and so ``min_loci (min_loci - 1) / 2`` of its locus-pair
keys (every pair of its matching loci).

**Candidates** (the T-occurrence problem; "DivideSkip", Li, Lu and Lu, ICDE 2008):
of ``k`` lists a row of which must occur in ``r``, it occurs in at least ``t`` of the
``k - (r - t)`` shortest ones, for any ``t`` in 1..r. :func:`plan` picks the ``t`` with
the least expected work (postings counted + expected candidates x ``VERIFY_COST``).
In a kit ``r = k - 1``: the usual plan reads the probe's 2-4 rarest units (pair lists
of a few thousand rows among millions) and keeps the rows found in all but one of
them. Every candidate is then verified by the exact rules
(:func:`prum.categories.dna.match.classify`) on its stored row, so the plan can cost time but
never change an answer. Rows added after the last build are a small "delta" that is
scanned directly.

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

from prum.categories.dna.match import Kind, classify
from prum.categories.dna.profile import FIRST_NUMERIC
from prum.errors import StorageError

# Cost of verifying one candidate row, in units of counting one posting (measured
# with bench/dna.py at 10M rows: about 1 us against 9 ns). Only speed depends on it.
VERIFY_COST = 100.0
# A kit (set of fully designated loci) is indexed on its own when it has this many
# rows; the rest is the mixed part. The kits cost a few lookups per search each.
MIN_KIT_ROWS = 1000
MAX_KITS = 63
MAX_KIT_LOCI = 64  # kits are bit masks of loci
KIT_PAIR_UNITS = 3 * MAX_KIT_LOCI // 2  # three matchings of a kit's loci (kit_pairs)
# Key layout: unit (a locus, or a kit's locus pair) | kit | genotype value (one
# genotype of 2 x 10 bits, or a pair of them). Allele codes are below 990 (profile.py).
ALLELE_BITS, GENOTYPE_BITS, KIT_SHIFT, UNIT_SHIFT = 10, 20, 40, 46
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Hit:
    row: int
    id: int
    kind: Kind
    matching: int


def _empty_codes(n_loci: int) -> NDArray[np.uint16]:
    return np.zeros((0, n_loci, 2), dtype=np.uint16)


def designated_masks(codes: NDArray[np.uint16], chunk: int = 1_000_000) -> NDArray[np.uint64]:
    """Per row, the bit mask of its fully designated loci (at most 64 loci)."""
    n, n_loci = codes.shape[0], codes.shape[1]
    if n_loci > MAX_KIT_LOCI:
        raise ValueError(f"kits are masks of at most {MAX_KIT_LOCI} loci")
    weights = np.uint64(1) << np.arange(n_loci, dtype=np.uint64)
    out = np.zeros(n, dtype=np.uint64)
    for start in range(0, n, chunk):
        full = np.asarray(codes[start : start + chunk, :, 0]) >= FIRST_NUMERIC
        out[start : start + chunk] = (full * weights).sum(axis=1, dtype=np.uint64)
    return out


def mask_loci(mask: int) -> NDArray[np.intp]:
    """The locus positions of a mask, ascending."""
    return np.flatnonzero([(mask >> i) & 1 for i in range(MAX_KIT_LOCI)]).astype(np.intp)


def plan(lengths: NDArray[np.int64], required: int, n_rows: int) -> tuple[int, int]:
    """``(j, t)``: count the ``j`` shortest lists and keep rows found in ``t`` of them.

    ``lengths`` ascending; a wanted row occurs in at least ``required`` of all the
    lists, so in at least ``t`` of the ``j = k - (required - t)`` shortest. Any ``t`` in
    1..required is correct; the choice trades counting work (postings read) against
    verification work (expected candidates, from the list shares as if loci were
    independent: the elementary symmetric polynomials of the shares, times VERIFY_COST).
    """
    k = len(lengths)
    shares = lengths / max(1, n_rows)
    t = np.arange(1, required + 1)
    j = k - (required - t)
    prefix = np.concatenate([[0], np.cumsum(lengths)])
    if k > 32:  # many short lists (pairs of the mixed part): e_t ~ (sum of shares)^t / t!
        reach = np.concatenate([[0.0], np.cumsum(shares)])[j]
        expected = np.exp(t * np.log(np.maximum(reach, 1e-300)) - np.cumsum(np.log(t)))
        at = int(np.argmin(prefix[j] + VERIFY_COST * n_rows * expected))
        return int(j[at]), int(t[at])
    # poly[t] after i lists: the expected number of t-subsets of the i shortest lists
    # that all hold a given row, which bounds the share of rows found in t of them.
    # (Plain floats: a few hundred operations, cheaper than numpy calls.)
    poly = [1.0] + [0.0] * required
    best, best_cost = (k, required), float("inf")
    cumulative = prefix.tolist()
    for i, share in enumerate(shares.tolist(), start=1):
        for d in range(min(i, required), 0, -1):
            poly[d] += poly[d - 1] * share
        d = i - (k - required)  # the t for which j == i
        if d >= 1:
            cost = cumulative[i] + VERIFY_COST * n_rows * poly[d]
            if cost < best_cost:
                best, best_cost = (i, d), cost
    return best


class DnaIndex:
    """Kit-aware genotype index over a code matrix; ``ids`` (ascending) name the rows."""

    def __init__(self, n_loci: int, *, min_kit_rows: int = MIN_KIT_ROWS):
        self.n_loci = n_loci
        self.min_kit_rows = min_kit_rows
        self.codes: NDArray[np.uint16] = _empty_codes(n_loci)
        self.ids: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.alive: NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self.keys: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.offsets: NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.postings: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        # kit_masks[0] is the mixed part (no mask); kit_of[row] the kit of each row.
        self.kit_masks: NDArray[np.uint64] = np.zeros(1, dtype=np.uint64)
        self.kit_rows: NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.kit_of: NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self.built_rows = 0  # rows [0, built_rows) are in the CSR; the rest is the delta
        self.generation = 0  # counts the builds (what was derived from rows goes stale)
        # Pair keys in the mixed part: built when its rows have few loci (12 on average).
        self.mixed_pairs = False
        self._delta: list[NDArray[np.uint16]] = []
        self._delta_ids: list[int] = []
        self._counts: NDArray[np.uint8] | None = None  # scratch, zero between searches
        self._pairs: dict[int, list[tuple[int, int]]] = {}  # kit mask -> its locus pairs
        self._lock = threading.RLock()

    # --- size and bookkeeping -------------------------------------------------------

    def __len__(self) -> int:
        return int(self.alive.sum()) + len(self._delta_ids)

    @property
    def last_id(self) -> int:
        if self._delta_ids:
            return self._delta_ids[-1]
        return int(self.ids[-1]) if len(self.ids) else 0

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def nbytes(self) -> int:
        """Bytes the index keeps in memory (a memory-mapped matrix counts in full)."""
        arrays = (
            self.codes,
            self.ids,
            self.alive,
            self.keys,
            self.offsets,
            self.postings,
            self.kit_of,
        )
        return sum(a.nbytes for a in arrays) + sum(d.nbytes for d in self._delta)

    def delta(self) -> tuple[NDArray[np.int64], NDArray[np.uint16]]:
        """Ids and rows added since the last build (scanned, not indexed)."""
        if not self._delta:
            return np.zeros(0, np.int64), _empty_codes(self.n_loci)
        return np.array(self._delta_ids, dtype=np.int64), np.stack(self._delta)

    # --- building -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        codes: NDArray[np.uint16],
        ids: NDArray[np.int64] | None = None,
        *,
        min_kit_rows: int = MIN_KIT_ROWS,
    ) -> DnaIndex:
        """Index a whole matrix (it may be a memory map; it is read one locus at a time)."""
        index = cls(codes.shape[1], min_kit_rows=min_kit_rows)
        n = codes.shape[0]
        index.codes = codes
        index.ids = (
            np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        )
        if len(index.ids) != n or (n > 1 and np.any(np.diff(index.ids) <= 0)):
            raise ValueError("ids must be one ascending id per row")
        index.alive = np.ones(n, dtype=bool)
        index._build()
        return index

    def _assign_kits(self) -> None:
        n = self.codes.shape[0]
        self.kit_of = np.zeros(n, dtype=np.uint8)
        self.kit_masks = np.zeros(1, dtype=np.uint64)
        if self.n_loci <= MAX_KIT_LOCI and n:
            masks = designated_masks(self.codes)
            values, inverse, counts = np.unique(masks, return_inverse=True, return_counts=True)
            order = np.argsort(-counts, kind="stable")[:MAX_KITS]
            chosen = order[counts[order] >= self.min_kit_rows]
            number = np.zeros(len(values), dtype=np.uint8)
            number[chosen] = np.arange(1, len(chosen) + 1, dtype=np.uint8)
            self.kit_of = number[inverse]
            self.kit_masks = np.concatenate([[np.uint64(0)], values[chosen]]).astype(np.uint64)
        self.kit_rows = np.bincount(self.kit_of, minlength=len(self.kit_masks)).astype(np.int64)

    def _mixed_pair_unit(self, a: int, b: int) -> int:
        """The unit of the locus pair ``a < b`` in the mixed part (after the kit pairs)."""
        return self.n_loci + KIT_PAIR_UNITS + a * self.n_loci + b

    def kit_pairs(self, kit: int) -> list[tuple[int, int]]:
        """The locus pairs of a kit that have pair keys (none in the mixed part).

        Three matchings of the kit's loci in order: neighbours (0-1, 2-3, ...), the
        neighbours shifted by one (1-2, 3-4, ...) and the opposite loci (i, i + m/2);
        so that a partial profile with 7 of 12 loci still holds about 3 whole pairs.
        """
        mask = int(self.kit_masks[kit]) if kit else 0
        if mask in self._pairs:
            return self._pairs[mask]
        loci = mask_loci(mask).tolist()
        m = len(loci)
        pairs = [(loci[i], loci[i + 1]) for i in range(0, m - 1, 2)]
        pairs += [(loci[i], loci[i + 1]) for i in range(1, m - 1, 2)]
        pairs += [(loci[i], loci[i + m // 2]) for i in range(m // 2) if m >= 4]
        self._pairs[mask] = list(dict.fromkeys(pairs))
        return self._pairs[mask]

    def _build(self) -> None:
        self._assign_kits()
        n = self.codes.shape[0]
        # Genotype values, one contiguous column per locus (built in chunks).
        values = np.zeros((self.n_loci, n), dtype=np.int32)
        for s in range(0, n, 1_000_000):
            chunk = np.asarray(self.codes[s : s + 1_000_000]).astype(np.int32)
            full = chunk[:, :, 0] >= FIRST_NUMERIC
            values[:, s : s + len(chunk)] = np.where(
                full, (chunk[:, :, 0] << ALLELE_BITS) | chunk[:, :, 1], -1
            ).T
            del chunk, full
        by_kit = np.argsort(self.kit_of, kind="stable").astype(np.int32)
        kit_start = np.concatenate([[0], np.cumsum(self.kit_rows)])
        keys: list[NDArray[np.int64]] = []
        starts: list[NDArray[np.int64]] = []
        postings: list[NDArray[np.int32]] = []
        base = 0

        def append(key: NDArray[np.int64], rows: NDArray[np.int32]) -> None:
            nonlocal base
            order = np.argsort(key, kind="stable")  # stable: rows stay ascending
            unique, first = np.unique(key[order], return_index=True)
            keys.append(unique)
            starts.append(first.astype(np.int64) + base)
            postings.append(rows[order])
            base += len(rows)

        for locus in range(self.n_loci):
            rows = np.flatnonzero(values[locus] >= 0).astype(np.int32)
            kits = self.kit_of[rows].astype(np.int64) << KIT_SHIFT
            append(
                (np.int64(locus) << UNIT_SHIFT) | kits | values[locus, rows].astype(np.int64), rows
            )
        pairs = [self.kit_pairs(k) for k in range(len(self.kit_masks))]
        for p in range(max(len(x) for x in pairs)):
            unit = np.int64(self.n_loci + p) << UNIT_SHIFT
            for kit, kit_pairs in enumerate(pairs):
                if p >= len(kit_pairs):
                    continue
                rows = by_kit[kit_start[kit] : kit_start[kit + 1]]
                a, b = kit_pairs[p]
                value = (values[a, rows].astype(np.int64) << GENOTYPE_BITS) | values[b, rows]
                append(unit | (np.int64(kit) << KIT_SHIFT) | value, rows)
        # The mixed part: every pair of each row's designated loci (rows of no kit are
        # mostly partial traces, with few loci), under the units after the kit pairs.
        mixed = by_kit[kit_start[0] : kit_start[1]]
        typed = (values[:, mixed] >= 0).sum(axis=0)
        self.mixed_pairs = bool(len(mixed)) and bool((typed * (typed - 1) // 2).mean() <= 66)
        for a in range(self.n_loci if self.mixed_pairs else 0):
            with_a = mixed[values[a, mixed] >= 0]
            for b in range(a + 1, self.n_loci):
                rows = with_a[values[b, with_a] >= 0]
                value = (values[a, rows].astype(np.int64) << GENOTYPE_BITS) | values[b, rows]
                append((np.int64(self._mixed_pair_unit(a, b)) << UNIT_SHIFT) | value, rows)
        del values
        self.keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.offsets = np.concatenate([*starts, np.array([base], dtype=np.int64)])
        self.postings = np.concatenate(postings) if postings else np.zeros(0, np.int32)
        self.built_rows = n
        self.generation += 1
        self._counts = None

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
            self._build()

    # --- searching ------------------------------------------------------------------

    def _lengths(self, queries: list[int]) -> NDArray[np.int64]:
        """The posting-list length of each key (0 where the key is unknown)."""
        query = np.array(queries, dtype=np.int64)
        if not len(self.keys) or not len(query):
            return np.zeros(len(query), dtype=np.int64)
        at = np.searchsorted(self.keys, query)
        inside = np.minimum(at, len(self.keys) - 1)
        found = (at < len(self.keys)) & (self.keys[inside] == query)
        out: NDArray[np.int64] = np.where(found, self.offsets[inside + 1] - self.offsets[inside], 0)
        return out

    def _lists(self, queries: list[int]) -> list[NDArray[np.int32]]:
        """The posting list of each key (empty where the key is unknown)."""
        query = np.array(queries, dtype=np.int64)
        if not len(self.keys) or not len(query):
            return [self.postings[:0] for _ in queries]
        at = np.searchsorted(self.keys, query)
        inside = np.minimum(at, len(self.keys) - 1)
        found = (at < len(self.keys)) & (self.keys[inside] == query)
        start = np.where(found, self.offsets[inside], 0).tolist()
        stop = np.where(found, self.offsets[inside + 1], 0).tolist()
        return [self.postings[a:b] for a, b in zip(start, stop, strict=True)]

    def _units(
        self, probe: NDArray[np.uint16], kit: int, loci: list[int], min_loci: int
    ) -> tuple[list[int], int]:
        """The keys of the probe in one kit and how many of them a hit must share.

        In a kit, the probe's loci C are read as units: each of the kit's locus pairs
        that lies in C is one unit (a pair key), every other locus of C one unit (a
        genotype key). A hit may fail at most ``|C| - max(min_loci, |C| - 1)`` loci
        (0 or 1), each failing locus spoils one unit; so it shares all units but that
        many. In the mixed part the units are the loci (a hit shares ``min_loci``) or,
        with ``mixed_pairs``, all pairs of loci (a hit shares every pair of its
        ``min_loci`` matching loci)."""
        # Keys are built with Python ints (numpy scalars are slower for a few dozen).
        value = {i: (int(probe[i, 0]) << ALLELE_BITS) | int(probe[i, 1]) for i in loci}
        kit_bits = kit << KIT_SHIFT
        if kit == 0:
            if min_loci < 2 or not self.mixed_pairs:
                return [(i << UNIT_SHIFT) | value[i] for i in loci], min_loci
            # A hit shares every pair of its >= min_loci matching loci.
            pairs = [
                (self._mixed_pair_unit(a, b) << UNIT_SHIFT) | (value[a] << GENOTYPE_BITS) | value[b]
                for x, a in enumerate(loci)
                for b in loci[x + 1 :]
            ]
            return pairs, min_loci * (min_loci - 1) // 2
        single_keys = {i: (i << UNIT_SHIFT) | kit_bits | value[i] for i in loci}
        inside = set(loci)
        edges = [(p, a, b) for p, (a, b) in enumerate(self.kit_pairs(kit)) if {a, b} <= inside]
        edge_keys = [
            ((self.n_loci + p) << UNIT_SHIFT) | kit_bits | (value[a] << GENOTYPE_BITS) | value[b]
            for p, a, b in edges
        ]
        # Disjoint pairs, rarest first (greedy); the loci left over are single units.
        lengths = self._lengths(edge_keys)
        keys: list[int] = []
        for at in np.argsort(lengths, kind="stable").tolist():
            _, a, b = edges[at]
            if a in inside and b in inside:
                inside -= {a, b}
                keys.append(edge_keys[at])
        keys += [single_keys[i] for i in sorted(inside)]
        misses = len(loci) - max(min_loci, len(loci) - 1)
        if len(keys) - misses < 1:  # one pair and nothing else: count the loci instead
            keys = list(single_keys.values())
        return keys, len(keys) - misses

    def candidates(
        self, probe: NDArray[np.uint16], min_loci: int, *, mixed: bool = True
    ) -> NDArray[np.int64]:
        """Rows of the CSR part that can hold a hit (a superset of the hits).

        ``mixed=False`` leaves out the rows of the mixed part (kit 0)."""
        designated = np.flatnonzero(probe[:, 0] >= FIRST_NUMERIC).tolist()
        if len(designated) < min_loci or self.built_rows == 0:
            return np.zeros(0, dtype=np.int64)
        with self._lock:
            work: list[tuple[int, int, int]] = []  # (kit, first key, number of keys)
            queries: list[int] = []
            needs: list[int] = []
            for kit in range(len(self.kit_masks)):
                if kit == 0:
                    if not mixed or self.kit_rows[0] == 0:
                        continue
                    loci = designated
                else:
                    mask = int(self.kit_masks[kit])
                    loci = [i for i in designated if (mask >> i) & 1]
                    if len(loci) < min_loci:
                        continue  # fewer common loci than a hit needs
                keys, need = self._units(probe, kit, loci, min_loci)
                work.append((kit, len(queries), len(keys)))
                queries += keys
                needs.append(need)
            lists = self._lists(queries)
            if self._counts is None:
                self._counts = np.zeros(self.built_rows, dtype=np.uint8)
            found: list[NDArray[np.int32]] = []
            for (kit, first, count), need in zip(work, needs, strict=True):
                mine = sorted(lists[first : first + count], key=len)
                lengths = np.array([len(x) for x in mine], dtype=np.int64)
                j, t = plan(lengths, need, int(self.kit_rows[kit]))
                found.append(self._at_least(mine[:j], t))
        if not found:
            return np.zeros(0, dtype=np.int64)
        rows: NDArray[np.int64] = np.unique(np.concatenate(found)).astype(np.int64)
        return rows

    def _at_least(self, lists: list[NDArray[np.int32]], t: int) -> NDArray[np.int32]:
        """Rows that occur in at least ``t`` of ``lists`` (each list without repeats)."""
        touched = np.concatenate(lists) if lists else np.zeros(0, np.int32)
        if t <= 1:
            return touched
        counts = self._counts
        assert counts is not None
        at = touched.astype(np.intp)
        for rows in lists:
            # numpy indexes with intp anyway; converting once is faster.
            counts[rows.astype(np.intp)] += 1
        kept = touched[counts[at] >= t]
        counts[at] = 0  # the scratch is zero again for the next search
        return kept

    def search(self, probe: NDArray[np.uint16], min_loci: int, *, rest: bool = True) -> list[Hit]:
        """Every row that matches or near-matches the probe (prum.categories.dna.match rules).

        ``rest=False`` searches only the kits, not the mixed part nor the delta (the
        bulk comparison covers those in its own way)."""
        if min_loci < 1:
            raise ValueError("min_loci must be at least 1")
        probe = np.asarray(probe, dtype=np.uint16)
        with self._lock:
            rows = self.candidates(probe, min_loci, mixed=rest)
            rows = rows[self.alive[rows]]
            kind, count = classify(probe, np.asarray(self.codes[rows]), min_loci)
            found = np.flatnonzero(kind)
            hits = [
                Hit(int(rows[i]), int(self.ids[rows[i]]), Kind(int(kind[i])), int(count[i]))
                for i in found
            ]
            if self._delta and rest:
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
            for name in _SAVED:
                np.save(fresh / f"{name}.npy", getattr(self, name))
            info = {
                "version": FORMAT_VERSION,
                "rows": len(self.ids),
                "n_loci": self.n_loci,
                "min_kit_rows": self.min_kit_rows,
                "mixed_pairs": self.mixed_pairs,
                **meta,
            }
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
        index = cls(int(info["n_loci"]), min_kit_rows=int(info["min_kit_rows"]))
        index.mixed_pairs = bool(info["mixed_pairs"])
        index.codes = np.load(directory / "codes.npy", mmap_mode="r")
        for name in _SAVED:
            setattr(index, name, np.load(directory / f"{name}.npy"))
        rows = int(info["rows"])
        if (
            index.codes.shape != (rows, index.n_loci, 2)
            or len(index.ids) != rows
            or len(index.kit_of) != rows
        ):
            raise StorageError(f"the DNA index files in {directory} do not fit together")
        index.alive = np.ones(len(index.ids), dtype=bool)
        index.kit_rows = np.bincount(index.kit_of, minlength=len(index.kit_masks)).astype(np.int64)
        index.built_rows = index.codes.shape[0]
        kept = ("version", "rows", "n_loci", "min_kit_rows", "mixed_pairs")
        return index, {k: v for k, v in info.items() if k not in kept}


_SAVED = ("ids", "keys", "offsets", "postings", "kit_masks", "kit_of")


def naive_search(
    codes: NDArray[np.uint16], probe: NDArray[np.uint16], min_loci: int, chunk: int = 1_000_000
) -> NDArray[np.int64]:
    """Rows that match or near-match, by classifying every row (the reference scan)."""
    found = []
    for start in range(0, codes.shape[0], chunk):
        kind, _ = classify(probe, np.asarray(codes[start : start + chunk]), min_loci)
        found.append(np.flatnonzero(kind) + start)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
