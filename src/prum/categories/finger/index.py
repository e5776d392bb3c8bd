"""1:N fingerprint search: MCC cylinders as neighbours in FAISS, a vote, re-ranking.

After Cappelli, Ferrara and Maltoni, "Fingerprint indexing based on Minutia
Cylinder-Code", IEEE TPAMI 33(5), 2011: a cylinder is a fixed-length local descriptor
that survives rotation, translation and partial overlap, so the cylinders of all
enrolled fingers go into one nearest-neighbour index and a probe's cylinders vote for
the fingers they find. Stages, each measured in bench/finger.py (docs/fingerprints.md):

1. Neighbours. Each probe cylinder's nearest enrolled cylinders by the binary MCC
   similarity 2|a & b| / (|a| + |b|) (Dice). Small galleries compare with every
   cylinder (popcounts); large ones ask a FAISS index for candidates (the bits as
   unit vectors, PCA to 256 dimensions, 8-bit codes, an inverted file; the factory
   string is configuration) and score the 2,048 it returns with the exact
   similarity, read from the row store in one gather. A plain
   Hamming index ranked sparse cylinders first whatever they held; cosine on the unit
   vectors ranks like the similarity does.
2. Vote. A neighbour counts by how far its similarity lies above that of the probe
   cylinder's 64th neighbour (a cylinder like many others says little), once per
   finger and probe cylinder; a finger's total is divided by the square root of its
   cylinders.
3. First pass. The best voted fingers (3,000) are ranked by a cheap score: for each,
   the best cylinder pairs with the probe (exact similarity by FAISS popcounts)
   relaxed by the geometry of their minutiae, LSS-R on few pairs for all fingers at
   once (prum.categories.finger.match.quick_scores).
4. The best of those (the short list, 100) get the full LSS-R comparison of
   prum.categories.finger.match.

The index is derived data: it is rebuilt from the stored templates (prum.categories.finger.store)
and saved beside the database with its FAISS part; deleted fingers leave every answer
at once and the row store and FAISS index at the next rebuild.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from prum.categories.finger.match import (
    Comparison,
    Cylinders,
    MccParams,
    compare_many,
    quick_scores,
)
from prum.errors import StorageError

FORMAT_VERSION = 3

Filter = Callable[["Label"], bool]

# Bits set in each byte value: Dice from packed cylinders without unpacking them.
_faiss: Any = faiss
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


@dataclass(frozen=True)
class IndexParams:
    # Below this many cylinders (about 600 fingers) every probe cylinder is compared
    # with every enrolled one (exact, nothing to train); above, the FAISS index.
    exact_below: int = 20_000
    # The FAISS index over the cylinders as unit vectors, PCA to 256 dimensions with
    # 8-bit scalar codes (256 bytes a cylinder, as many as PCA64 in floats): the mates
    # the vote missed at 100,000 fingers match weakly, and their cylinders ranked by
    # median 1,202 among the PCA64 neighbours, 87 among the PCA256 ones (exact: < 300).
    # ``{nlist}``: inverted lists, the power of two nearest 2 sqrt(cylinders) (FAISS's
    # guideline is 1 to 16 sqrt(n); measured 1,024 at 350,000 cylinders and 4,096 at
    # 3.5 million).
    factory: str = "PCA256,L2norm,IVF{nlist},SQ8"
    # Lists visited per probe cylinder (PCA64 at 100,000 fingers, 4,096 lists, 100
    # probes: 32, 64, 96, 128, 256 gave rank-1 0.83, 0.84, 0.86, 0.86, 0.86; PCA256:
    # 64 and 128 the same).
    nprobe: int = 64
    # Candidates FAISS returns per probe cylinder, re-scored with the exact similarity
    # (the row store makes that one gather); the best ``neighbours`` of them vote.
    # 100,000 fingers, 100 probes: with 2,048 the mate was among the 3,000 voted
    # fingers for 96 %, with PCA64's 128 for 90 %.
    candidates: int = 2048
    # Cylinders the FAISS training sees (PCA and k-means), drawn at random.
    train_sample: int = 200_000
    # Nearest enrolled cylinders looked at per probe cylinder: 128, 256 and 512 put
    # the mate among the voted fingers about as often on 100,000 fingers.
    neighbours: int = 128
    # A neighbour's vote is its similarity minus that of this neighbour of the same
    # probe cylinder (a floor of 0.4 for all: 0.78 of mates reached the first pass at
    # 100,000 fingers; this floor: 0.83).
    floor_rank: int = 64
    # A finger's total is divided by its cylinders to this power (0.5: between
    # favouring large fingers, 0, and small ones, 1).
    vote_norm: float = 0.5
    # Fingers ranked by the first pass. 100,000 fingers, 100 probes, PCA256 and 2,048
    # candidates: 1,000 gave rank-1 0.91, 3,000 0.94 (exhaustive matching: about
    # 0.945 over 200 probes).
    prefilter: int = 3000
    # Cylinder pairs per finger that the first pass relaxes by their geometry. PCA64,
    # 1,000 voted, 200 probes: with the mean of the 5 best similarities instead,
    # rank-1 0.875; with 16 relaxed pairs 0.89, what the full comparison of all 1,000
    # voted fingers gives (2026-11-27).
    first_pass_pairs: int = 16
    # Fingers re-ranked with the full comparison (compared together: about 0.15 ms
    # each). 10,000 fingers, 100 probes: 30, 100, 200 gave rank-1 0.94, 0.97, 0.97
    # (exhaustive matching: 0.99).
    shortlist: int = 100

    def factory_for(self, cylinders: int) -> str:
        nlist = 2 ** max(6, round(math.log2(max(2.0, 2 * math.sqrt(cylinders)))))
        return self.factory.format(nlist=nlist)


@dataclass(frozen=True)
class Hit:
    finger: int  # the record id in the store
    comparison: Comparison
    votes: float


@dataclass(frozen=True)
class _Finger:
    start: int  # its first row in the row store
    count: int  # its cylinders (rows)
    voting: int  # of those, the ones with a bit set (the others cannot vote)
    valid: NDArray[np.uint8]  # (count, cells/8): the valid cells of one layer
    xy: NDArray[np.float32]
    angle: NDArray[np.float32]
    label: Label


@dataclass(frozen=True)
class Label:
    """What a search filters on, kept beside the cylinders of each finger."""

    record: int  # the record (tenprint card or latent) the finger belongs to
    position: int  # ANSI/NIST-ITL finger position, 0 unknown
    latent: bool  # an unsolved latent (UL) rather than a tenprint (TP)


def same_finger_possible(a: int, b: int) -> bool:
    """Two finger positions can hold the same finger (0 unknown, 1-10 rolled, 11-15
    plain thumbs and slaps: only two known different rolled fingers exclude it)."""
    return not (1 <= a <= 10 and 1 <= b <= 10 and a != b)


@dataclass(frozen=True)
class Packed:
    """Cylinders as the index keeps them: bits packed eight to a byte."""

    bits: NDArray[np.uint8]  # (n, bits/8)
    valid: NDArray[np.uint8]  # (n, cells/8): the valid cells of one layer
    xy: NDArray[np.float32]
    angle: NDArray[np.float32]


def pack(cyl: Cylinders, mcc: MccParams) -> Packed:
    cells = mcc.ns * mcc.ns
    bits = np.packbits(cyl.bits.astype(bool), axis=1)
    valid = np.packbits(cyl.valid.astype(bool), axis=1)
    if len(cyl) == 0:
        bits = np.zeros((0, mcc.bits // 8), np.uint8)
        valid = np.zeros((0, math.ceil(cells / 8)), np.uint8)
    return Packed(bits, valid, cyl.xy, cyl.angle)


class _Rows:
    """The packed cylinders of every finger, one row each, in one array that grows by
    doubling: a search reads the bits of thousands of neighbours with one index.
    Rows of deleted fingers stay (marked dead) until the next rebuild compacts them."""

    def __init__(self, width: int):
        self.n = 0
        self.bits = np.zeros((0, width), np.uint8)
        self.ones = np.zeros(0, np.int32)  # bits set in each row
        self.owner = np.zeros(0, np.int64)  # the finger of each row
        self.dead = np.zeros(0, bool)

    def append(self, bits: NDArray[np.uint8], ones: NDArray[Any], owner: int) -> int:
        """Add one finger's rows; returns the first one."""
        start, end = self.n, self.n + len(bits)
        if end > len(self.bits):
            self._resize(max(end, 2 * len(self.bits), 1024))
        self.bits[start:end] = bits
        self.ones[start:end] = ones
        self.owner[start:end] = owner
        self.dead[start:end] = False
        self.n = end
        return start

    def _resize(self, capacity: int) -> None:
        for name in ("bits", "ones", "owner", "dead"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    @classmethod
    def of(cls, bits: NDArray[np.uint8], owner: NDArray[Any], dead: NDArray[Any]) -> _Rows:
        rows = cls(bits.shape[1])
        rows.n = len(bits)
        rows.bits, rows.owner, rows.dead = bits, owner.astype(np.int64), dead.astype(bool)
        rows.ones = _ones(bits).astype(np.int32)
        return rows

    def nbytes(self) -> int:
        return self.n * (self.bits.shape[1] + 4 + 8 + 1)


class FingerIndex:
    """Cylinders of every enrolled finger, packed, and the FAISS index over them."""

    def __init__(self, mcc: MccParams | None = None, params: IndexParams | None = None):
        self.mcc = mcc or MccParams()
        self.params = params or IndexParams()
        self._fingers: dict[int, _Finger] = {}
        self._by_record: dict[int, list[int]] = {}
        self._rows = _Rows(self.mcc.bits // 8)
        self._voting_rows = 0  # rows with a bit set, deleted fingers' included
        self._faiss: Any = None  # None: exact neighbours (small galleries); ids: rows
        self._trained_rows = 0
        self._deferred = False  # inside bulk(): train once at the end
        self.last_id = 0

    def __len__(self) -> int:
        return len(self._fingers)

    @property
    def cylinders(self) -> int:
        """Cylinders that can vote (deleted fingers' counted until the next rebuild)."""
        return self._voting_rows

    @property
    def kind(self) -> str:
        if self._faiss is None:
            return "exact"
        return self.params.factory_for(self._trained_rows)

    def __contains__(self, finger: int) -> bool:
        return finger in self._fingers

    # --- building ----------------------------------------------------------------------

    def add(self, finger: int, cyl: Cylinders, label: Label) -> None:
        """Index the cylinders of one finger (its template id in the store)."""
        self.add_packed(finger, pack(cyl, self.mcc), label)

    def add_packed(self, finger: int, packed: Packed, label: Label) -> None:
        """Index cylinders packed by :func:`pack` (in another process, for bulk loads)."""
        if finger in self._fingers:
            self.remove(finger)
        ones = _ones(packed.bits)
        voting = np.flatnonzero(ones > 0)
        start = self._rows.append(packed.bits, ones, finger)
        self._fingers[finger] = _Finger(
            start, len(packed.bits), len(voting), packed.valid, packed.xy, packed.angle, label
        )
        self._by_record.setdefault(label.record, []).append(finger)
        self.last_id = max(self.last_id, finger)
        if len(voting) == 0:
            return
        self._voting_rows += len(voting)
        if self._deferred:
            return
        if self._faiss is None:
            if self._voting_rows >= self.params.exact_below:
                self._retrain()
        elif self._voting_rows >= 4 * self._trained_rows:
            # Lists and PCA trained on a quarter of the data: train again on all of it.
            self._retrain()
        else:
            self._faiss.add_with_ids(_unit(packed.bits[voting]), start + voting)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Add many fingers, then compact and train once at the end, rather than each
        time the rows have grown fourfold (the index answers searches only after)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            self._retrain()

    def remove(self, finger: int) -> None:
        """Forget a finger: it leaves every answer now, the FAISS rows at rebuild."""
        gone = self._fingers.pop(finger, None)
        if gone is None:
            return
        self._rows.dead[gone.start : gone.start + gone.count] = True
        siblings = self._by_record.get(gone.label.record, [])
        if finger in siblings:
            siblings.remove(finger)
        if not siblings:
            self._by_record.pop(gone.label.record, None)

    def remove_record(self, record: int) -> None:
        for finger in list(self._by_record.get(record, [])):
            self.remove(finger)

    def label(self, finger: int) -> Label:
        return self._fingers[finger].label

    def fingers_of(self, record: int) -> list[int]:
        """The fingers of one record (a tenprint card's up to ten, a latent's one)."""
        return list(self._by_record.get(record, []))

    def _row_indices(self, fingers: list[_Finger]) -> NDArray[np.int64]:
        """The rows of these fingers, in order, as one index array."""
        counts = np.array([f.count for f in fingers], np.int64)
        starts = np.array([f.start for f in fingers], np.int64)
        before = np.cumsum(counts) - counts
        return np.asarray(np.repeat(starts - before, counts) + np.arange(int(counts.sum())))

    def _retrain(self) -> None:
        """Compact the rows (drops deleted fingers') and rebuild the FAISS part,
        training PCA and lists on the data as it is now."""
        ids = sorted(self._fingers)
        keep = self._row_indices([self._fingers[f] for f in ids])
        old = self._rows
        self._rows = _Rows.of(old.bits[keep], old.owner[keep], old.dead[keep])
        start = 0
        for f in ids:
            self._fingers[f] = replace(self._fingers[f], start=start)
            start += self._fingers[f].count
        voting = np.flatnonzero(self._rows.ones > 0)
        self._voting_rows = self._trained_rows = len(voting)
        self._faiss = None
        if len(voting) < self.params.exact_below:
            return
        bits = self._rows.bits
        index = faiss.index_factory(
            self.mcc.bits, self.params.factory_for(len(voting)), faiss.METRIC_INNER_PRODUCT
        )
        ivf = faiss.extract_index_ivf(index)
        # A random sample trains the PCA and the lists: 40 a list, FAISS's minimum for
        # k-means, and at least 100,000 for the PCA (1,536 dimensions).
        sample = min(len(voting), max(self.params.train_sample, 40 * ivf.nlist))
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(voting, size=sample, replace=False))
        index.train(_unit(bits[chosen]))
        ivf.nprobe = self.params.nprobe
        for first in range(0, len(voting), _CHUNK):
            rows = voting[first : first + _CHUNK]
            index.add_with_ids(_unit(bits[rows]), rows.astype(np.int64))
        self._faiss = index

    def compact(self) -> None:
        """Drop deleted fingers' rows (and retrain PCA and lists)."""
        self._retrain()

    # --- reading -----------------------------------------------------------------------

    def cylinders_of(self, finger: int) -> Cylinders:
        f = self._fingers[finger]
        cells = self.mcc.ns * self.mcc.ns
        packed = self._rows.bits[f.start : f.start + f.count]
        bits = np.unpackbits(packed, axis=1, count=self.mcc.bits).astype(np.float32)
        valid = np.unpackbits(f.valid, axis=1, count=cells).astype(np.float32)
        return Cylinders.of(bits=bits, valid=valid, xy=f.xy, angle=f.angle)

    def _neighbours(
        self, probe: NDArray[np.uint8]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Rows of each probe cylinder's nearest enrolled cylinders (-1: none) and
        their exact similarity (Dice of the bits, the MCC paper's binary similarity)."""
        rows = self._rows
        if self._faiss is None:
            sim = dice(probe, rows.bits[: rows.n], rows.ones[: rows.n])
            sim[:, rows.dead[: rows.n]] = 0.0
            k = min(self.params.neighbours, rows.n)
            found = np.argpartition(-sim, k - 1, axis=1)[:, :k].astype(np.int64)
            return found, np.take_along_axis(sim, found, axis=1)
        # FAISS's candidates by PCA cosine, re-scored with the exact similarity.
        k = min(self.params.neighbours, self._voting_rows)
        wide = max(k, self.params.candidates)
        _, found = self._faiss.search(_unit(probe), wide)
        sim = np.zeros(found.shape)
        for i in range(len(probe)):
            ok = found[i] >= 0
            at = found[i][ok]
            sim[i, ok] = dice(probe[i : i + 1], rows.bits[at], rows.ones[at])[0] * ~rows.dead[at]
        if k < wide:
            best = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            found, sim = np.take_along_axis(found, best, 1), np.take_along_axis(sim, best, 1)
        return found, np.where(found >= 0, sim, 0.0)

    def vote(
        self, probe: Cylinders, *, allowed: Filter | None = None, limit: int | None = None
    ) -> list[tuple[int, float]]:
        """The fingers with most votes, best first (before the first pass)."""
        limit = self.params.prefilter if limit is None else limit
        bits = np.packbits(probe.bits.astype(bool), axis=1) if len(probe) else None
        if bits is None or self.cylinders == 0:
            return []
        bits = bits[_ones(bits) > 0]
        if len(bits) == 0:
            return []
        rows, sim = self._neighbours(bits)
        k = rows.shape[1]
        if k > self.params.floor_rank:
            floor = np.partition(sim, k - 1 - self.params.floor_rank, axis=1)
            sim = sim - floor[:, k - 1 - self.params.floor_rank, None]
        owner = self._rows.owner
        q = np.repeat(np.arange(len(bits)), k)
        f = np.where(rows >= 0, owner[np.clip(rows, 0, None)], -1).ravel()
        s = sim.ravel()
        keep = (f >= 0) & (s > 0)
        q, f, s = q[keep], f[keep], s[keep]
        # Each probe cylinder votes once per finger: with its best cylinder there.
        order = np.lexsort((-s, f, q))
        q, f, s = q[order], f[order], s[order]
        first = np.ones(len(q), bool)
        first[1:] = (q[1:] != q[:-1]) | (f[1:] != f[:-1])
        f, s = f[first], s[first]
        unique, inverse = np.unique(f, return_inverse=True)
        totals = np.bincount(inverse, weights=s)
        if self.params.vote_norm:
            sizes = np.array(
                [getattr(self._fingers.get(int(u)), "voting", 1) for u in unique], np.float64
            )
            totals = totals / np.maximum(sizes, 1.0) ** self.params.vote_norm
        out: list[tuple[int, float]] = []
        for i in np.argsort(-totals, kind="stable"):
            finger = int(unique[i])
            known = self._fingers.get(finger)
            if known is None or (allowed is not None and not allowed(known.label)):
                continue
            out.append((finger, float(totals[i])))
            if len(out) >= limit:
                break
        return out

    def search(
        self,
        probe: Cylinders,
        *,
        max_candidates: int,
        allowed: Filter | None = None,
        shortlist: int | None = None,
    ) -> list[Hit]:
        """Vote, rank the voted fingers by the first pass, compare the short list."""
        limit = self.params.shortlist if shortlist is None else shortlist
        voted = self.vote(probe, allowed=allowed, limit=max(limit, self.params.prefilter))
        if len(voted) > limit:
            cheap = self.first_pass(probe, [f for f, _ in voted])
            voted = [voted[i] for i in np.argsort(-cheap, kind="stable")[:limit]]
        compared = compare_many(probe, [self.cylinders_of(f) for f, _ in voted], self.mcc)
        hits = [
            Hit(finger, comparison, votes)
            for (finger, votes), comparison in zip(voted, compared, strict=True)
        ]
        hits.sort(key=lambda h: -h.comparison.score)
        return hits[:max_candidates]

    def first_pass(self, probe: Cylinders, fingers: list[int]) -> NDArray[np.float64]:
        """A cheap score per finger: LSS-R over its best cylinder pairs with the probe
        (match.quick_scores), from the binary similarity 2|a & b| / (|a| + |b|)."""
        known = [self._fingers[f] for f in fingers]
        sizes = np.array([f.count for f in known], np.int64)
        if len(probe) == 0 or sizes.sum() == 0:
            return np.zeros(len(fingers))
        rows = self._row_indices(known)
        sim = dice(
            np.packbits(probe.bits.astype(bool), axis=1),
            self._rows.bits[rows],
            self._rows.ones[rows],
        )
        return quick_scores(
            sim,
            probe,
            sizes,
            np.concatenate([f.xy for f in known]),
            np.concatenate([f.angle for f in known]),
            self.mcc,
            self.params.first_pass_pairs,
        )

    def exhaustive(
        self, probe: Cylinders, *, max_candidates: int, allowed: Filter | None = None
    ) -> list[Hit]:
        """The full comparison against every enrolled finger (the reference answer)."""
        fingers = [
            f for f, known in self._fingers.items() if allowed is None or allowed(known.label)
        ]
        hits: list[Hit] = []
        for start in range(0, len(fingers), 500):
            chunk = fingers[start : start + 500]
            compared = compare_many(probe, [self.cylinders_of(f) for f in chunk], self.mcc)
            hits.extend(Hit(f, c, 0.0) for f, c in zip(chunk, compared, strict=True))
        hits.sort(key=lambda h: -h.comparison.score)
        return hits[:max_candidates]

    def fingers(self) -> list[int]:
        return list(self._fingers)

    def nbytes(self) -> int:
        per_finger = sum(
            f.valid.nbytes + f.xy.nbytes + f.angle.nbytes for f in self._fingers.values()
        )
        total = per_finger + self._rows.nbytes()
        if self._faiss is None:
            return total
        ivf = faiss.extract_index_ivf(self._faiss)
        lists = int(ivf.ntotal) * (int(ivf.code_size) + 8) + 4 * int(ivf.d) * int(ivf.nlist)
        return total + lists + 4 * self.mcc.bits * int(ivf.d)  # + the PCA matrix

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: Path, **meta: Any) -> None:
        """The row store, the fingers and the trained FAISS index (whose ids are rows);
        meta.json last, naming the generation the other files belong to (a torn save
        is rebuilt at load)."""
        directory.mkdir(parents=True, exist_ok=True)
        generation = secrets.token_hex(8)
        ids = sorted(self._fingers)
        known = [self._fingers[f] for f in ids]
        empty_valid = np.zeros((0, math.ceil(self.mcc.ns * self.mcc.ns / 8)), np.uint8)
        rows = self._rows

        def stack(name: str, empty: NDArray[Any]) -> NDArray[Any]:
            parts = [getattr(f, name) for f in known]
            return np.concatenate(parts) if parts else empty

        tmp = directory / "cylinders.npz.tmp"
        with tmp.open("wb") as out:
            np.savez(
                out,
                generation=np.array(generation),
                fingers=np.array(ids, np.int64),
                starts=np.array([f.start for f in known], np.int64),
                counts=np.array([f.count for f in known], np.int64),
                labels=np.array(
                    [(f.label.record, f.label.position, int(f.label.latent)) for f in known],
                    np.int64,
                ).reshape(-1, 3),
                valid=stack("valid", empty_valid),
                xy=stack("xy", np.zeros((0, 2), np.float32)),
                angle=stack("angle", np.zeros(0, np.float32)),
                bits=rows.bits[: rows.n],
                owner=rows.owner[: rows.n],
                dead=rows.dead[: rows.n],
            )
        tmp.replace(directory / "cylinders.npz")
        faiss_file = None
        if self._faiss is not None:
            faiss_file = f"cylinders-{generation}.faiss"
            faiss.write_index(self._faiss, str(directory / f"{faiss_file}.tmp"))
            (directory / f"{faiss_file}.tmp").replace(directory / faiss_file)
        info = {
            "version": FORMAT_VERSION,
            "generation": generation,
            "faiss": faiss_file,
            "trained_rows": self._trained_rows,
            "last_id": self.last_id,
            **meta,
        }
        (directory / "meta.json.tmp").write_text(json.dumps(info))
        (directory / "meta.json.tmp").replace(directory / "meta.json")
        for old in directory.glob("cylinders-*.faiss*"):
            if old.name != faiss_file:
                old.unlink(missing_ok=True)

    @classmethod
    def load(
        cls, directory: Path, mcc: MccParams | None = None, params: IndexParams | None = None
    ) -> tuple[FingerIndex, dict[str, Any]]:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("version") != FORMAT_VERSION:
            raise StorageError(f"the finger index in {directory} has an unknown version")
        index = cls(mcc, params)
        mcc = index.mcc
        with np.load(directory / "cylinders.npz") as z:
            generation = str(z["generation"])
            fingers, starts, counts, labels = z["fingers"], z["starts"], z["counts"], z["labels"]
            valid, xy, angle = z["valid"], z["xy"], z["angle"]
            bits, owner, dead = z["bits"], z["owner"], z["dead"]
        if bits.shape[1:] != (mcc.bits // 8,):
            raise StorageError("the finger index was built with other MCC parameters")
        if len(owner) != len(bits) or int((starts + counts).max(initial=0)) > len(bits):
            raise StorageError(f"the finger index in {directory} is inconsistent")
        index._rows = _Rows.of(bits, owner, dead)
        voting = index._rows.ones > 0
        first = 0
        for f, start, n, (record, position, latent) in zip(
            fingers.tolist(), starts.tolist(), counts.tolist(), labels.tolist(), strict=True
        ):
            end = first + n
            index._fingers[f] = _Finger(
                start,
                n,
                int(voting[start : start + n].sum()),
                valid[first:end],
                xy[first:end],
                angle[first:end],
                Label(record, position, bool(latent)),
            )
            index._by_record.setdefault(record, []).append(f)
            first = end
        index._voting_rows = int(voting.sum())
        index.last_id = int(meta.get("last_id", 0))
        faiss_file = meta.get("faiss")
        usable = generation == meta.get("generation") and (
            faiss_file is None or (directory / faiss_file).is_file()
        )
        index._trained_rows = int(meta.get("trained_rows", index._voting_rows))
        if usable and faiss_file is not None:
            index._faiss = faiss.read_index(str(directory / faiss_file))
            faiss.extract_index_ivf(index._faiss).nprobe = index.params.nprobe
            usable = index._faiss.ntotal == index._voting_rows
        if not usable:
            index._retrain()
        return index, meta


# Rows turned into floats at a time (1,536 floats each: 300 MB).
_CHUNK = 50_000


def _ones(bits: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Bits set in each packed row."""
    return np.asarray(_POPCOUNT[bits].sum(axis=-1, dtype=np.int64))


def _unit(bits: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Packed cylinders as unit vectors: their inner product is the cosine of the bit
    sets, |a & b| / sqrt(|a| |b|), which ranks neighbours as Dice does."""
    x = np.unpackbits(bits, axis=1).astype(np.float32)
    x /= np.sqrt(np.maximum(x.sum(axis=1, keepdims=True), 1.0))
    return x


def dice(
    a: NDArray[np.uint8], b: NDArray[np.uint8], b_ones: NDArray[np.integer[Any]] | None = None
) -> NDArray[np.float64]:
    """2|a & b| / (|a| + |b|) of every packed row of ``a`` with every one of ``b``,
    from FAISS's Hamming distances (|a ^ b| = |a| + |b| - 2|a & b|); ``b_ones``: the
    bits set in each row of ``b`` if known."""
    a = np.ascontiguousarray(a, np.uint8)
    b = np.ascontiguousarray(b, np.uint8)
    hamming = np.empty((len(a), len(b)), np.int32)
    if len(a) and len(b):
        # Not in FAISS's type stubs; a C function: pointers, counts, code size, output.
        _faiss.hammings(
            faiss.swig_ptr(a),
            faiss.swig_ptr(b),
            len(a),
            len(b),
            a.shape[1],
            faiss.swig_ptr(hamming),
        )
    total = _ones(a)[:, None] + (_ones(b) if b_ones is None else b_ones)[None, :]
    return np.where(total > 0, 1.0 - hamming / np.maximum(total, 1), 0.0)
