"""1:N fingerprint search: MCC cylinders as neighbours in FAISS, a vote, re-ranking.

After Cappelli, Ferrara and Maltoni, "Fingerprint indexing based on Minutia
Cylinder-Code", IEEE TPAMI 33(5), 2011: a cylinder is a fixed-length local descriptor
that survives rotation, translation and partial overlap, so the cylinders of all
enrolled fingers go into one nearest-neighbour index and a probe's cylinders vote for
the fingers they find. Stages, each measured in bench/finger.py (docs/fingerprints.md):

1. Neighbours. Each probe cylinder's nearest enrolled cylinders by the binary MCC
   similarity 2|a & b| / (|a| + |b|) (Dice). Small galleries compare with every
   cylinder (popcounts); large ones ask a FAISS index for candidates (the bits as
   unit vectors, PCA to 64 dimensions, an inverted file; the factory string is
   configuration) and score what it returns with the exact similarity. A plain
   Hamming index ranked sparse cylinders first whatever they held; cosine on the unit
   vectors ranks like the similarity does.
2. Vote. A neighbour counts by how far its similarity lies above that of the probe
   cylinder's 64th neighbour (a cylinder like many others says little), once per
   finger and probe cylinder; a finger's total is divided by the square root of its
   cylinders.
3. First pass. The best voted fingers (1,000) are ranked by a cheap score: for each,
   the best cylinder pairs with the probe (exact similarity by FAISS popcounts)
   relaxed by the geometry of their minutiae, LSS-R on few pairs for all fingers at
   once (prum.finger.match.quick_scores).
4. The best of those (the short list, 100) get the full LSS-R comparison of
   prum.finger.match.

The index is derived data: it is rebuilt from the stored templates (prum.finger.store)
and saved beside the database with its FAISS part; deleted fingers leave the short
list at once and the FAISS index at the next rebuild.
"""

from __future__ import annotations

import json
import math
import secrets
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from prum.errors import StorageError
from prum.finger.match import Comparison, Cylinders, MccParams, compare_many, quick_scores

FORMAT_VERSION = 2

Filter = Callable[["Label"], bool]

# Bits set in each byte value: Dice from packed cylinders without unpacking them.
_faiss: Any = faiss
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


@dataclass(frozen=True)
class IndexParams:
    # Below this many cylinders (about 600 fingers) every probe cylinder is compared
    # with every enrolled one (exact, nothing to train); above, the FAISS index.
    exact_below: int = 20_000
    # The FAISS index over the cylinders as unit vectors: PCA to 64 dimensions kept as
    # much of the cosine ranking as 128 (rank-1 0.94 both on 10,000 fingers, against
    # the exact similarity's 0.94), at a quarter of the memory. ``{nlist}``: inverted
    # lists, the power of two nearest 2 sqrt(cylinders) (FAISS's guideline is 1 to 16
    # sqrt(n); measured 1,024 at 350,000 cylinders and 4,096 at 3.5 million).
    factory: str = "PCA64,L2norm,IVF{nlist},Flat"
    # Lists visited per probe cylinder. 100,000 fingers, 4,096 lists, 100 probes:
    # 32, 64, 96, 128, 256 gave rank-1 0.83, 0.84, 0.86, 0.86, 0.86 at p50 150, 177,
    # 216, 223, 303 ms.
    nprobe: int = 96
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
    # Fingers ranked by the first pass: with the full search's rank-1 as measure,
    # 1,000 gave 0.87 on 100,000 fingers against 0.83 with 100 (about 25 ms more);
    # 3,000 no more than 1,000.
    prefilter: int = 1000
    # Cylinder pairs per finger that the first pass relaxes by their geometry. With
    # the mean of the 5 best similarities instead, rank-1 was 0.875 on 100,000
    # fingers; with 16 relaxed pairs 0.89, what the full comparison of all 1,000
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
class _Packed:
    bits: NDArray[np.uint8]  # (n, bits/8)
    valid: NDArray[np.uint8]  # (n, cells/8): the valid cells of one layer
    xy: NDArray[np.float32]
    angle: NDArray[np.float32]
    label: Label
    ones: NDArray[np.int64]  # bits set in each cylinder


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


class FingerIndex:
    """Cylinders of every enrolled finger, packed, and the FAISS index over them."""

    def __init__(self, mcc: MccParams | None = None, params: IndexParams | None = None):
        self.mcc = mcc or MccParams()
        self.params = params or IndexParams()
        self._fingers: dict[int, _Packed] = {}
        self._by_record: dict[int, list[int]] = {}
        # One row per cylinder that can vote (at least one bit set), in FAISS order.
        self._owner = array("q")  # row -> finger id
        self._offset = array("i")  # row -> the cylinder's place among its finger's
        self._indexed: dict[int, int] = {}  # finger -> its rows
        self._faiss: Any = None  # None: exact neighbours (small galleries)
        self._trained_rows = 0
        self._exact_bits: NDArray[np.uint8] | None = None  # rows' bits, exact mode
        self.last_id = 0

    def __len__(self) -> int:
        return len(self._fingers)

    @property
    def cylinders(self) -> int:
        return len(self._owner)

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
        self._fingers[finger] = _Packed(
            packed.bits, packed.valid, packed.xy, packed.angle, label, ones
        )
        self._by_record.setdefault(label.record, []).append(finger)
        self._indexed[finger] = len(voting)
        self.last_id = max(self.last_id, finger)
        if len(voting) == 0:
            return
        self._owner.extend([finger] * len(voting))
        self._offset.extend(voting.tolist())
        if self._faiss is None:
            self._exact_bits = None
            if self.cylinders >= self.params.exact_below:
                self._retrain()
        elif self.cylinders >= 4 * self._trained_rows:
            # Lists and PCA trained on a quarter of the data: train again on all of it.
            self._retrain()
        else:
            self._faiss.add(_unit(packed.bits[voting]))

    def remove(self, finger: int) -> None:
        """Forget a finger: it leaves the short list now, the FAISS rows at rebuild."""
        packed = self._fingers.pop(finger, None)
        self._indexed.pop(finger, None)
        if packed is not None:
            siblings = self._by_record.get(packed.label.record, [])
            if finger in siblings:
                siblings.remove(finger)
            if not siblings:
                self._by_record.pop(packed.label.record, None)

    def remove_record(self, record: int) -> None:
        for finger in list(self._by_record.get(record, [])):
            self.remove(finger)

    def label(self, finger: int) -> Label:
        return self._fingers[finger].label

    def _retrain(self) -> None:
        """Rebuild the rows and the FAISS part from the packed cylinders (drops
        deleted fingers' rows; trains PCA and lists on the data as it is now)."""
        owner, offset = array("q"), array("i")
        parts = []
        for f in sorted(self._fingers):
            bits = self._fingers[f].bits
            voting = np.flatnonzero(self._fingers[f].ones > 0)
            owner.extend([f] * len(voting))
            offset.extend(voting.tolist())
            parts.append(bits[voting])
            self._indexed[f] = len(voting)
        data = np.concatenate(parts) if parts else np.zeros((0, self.mcc.bits // 8), np.uint8)
        self._owner, self._offset = owner, offset
        self._exact_bits = None
        self._faiss = None
        self._trained_rows = len(data)
        if len(data) < self.params.exact_below:
            return
        index = faiss.index_factory(
            self.mcc.bits, self.params.factory_for(len(data)), faiss.METRIC_INNER_PRODUCT
        )
        ivf = faiss.extract_index_ivf(index)
        # A random sample trains the PCA and the lists: 40 a list, FAISS's minimum for
        # k-means, and at least 100,000 for the PCA (1,536 dimensions).
        sample = min(len(data), max(self.params.train_sample, 40 * ivf.nlist))
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(len(data), size=sample, replace=False))
        index.train(_unit(data[chosen]))
        ivf.nprobe = self.params.nprobe
        for start in range(0, len(data), _CHUNK):
            index.add(_unit(data[start : start + _CHUNK]))
        self._faiss = index

    def compact(self) -> None:
        """Drop deleted fingers' rows from FAISS (and retrain PCA and lists)."""
        self._retrain()

    # --- reading -----------------------------------------------------------------------

    def cylinders_of(self, finger: int) -> Cylinders:
        p = self._fingers[finger]
        cells = self.mcc.ns * self.mcc.ns
        bits = np.unpackbits(p.bits, axis=1, count=self.mcc.bits).astype(np.float32)
        valid = np.unpackbits(p.valid, axis=1, count=cells).astype(np.float32)
        return Cylinders.of(bits=bits, valid=valid, xy=p.xy, angle=p.angle)

    def _neighbours(
        self, probe: NDArray[np.uint8]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Rows of each probe cylinder's nearest enrolled cylinders (-1: none) and
        their exact similarity (Dice of the bits, the MCC paper's binary similarity)."""
        k = min(self.params.neighbours, self.cylinders)
        if self._faiss is None:
            if self._exact_bits is None:
                zero = np.zeros(self.mcc.bits // 8, np.uint8)
                self._exact_bits = np.stack(
                    [
                        self._fingers[f].bits[o] if f in self._fingers else zero
                        for f, o in zip(self._owner, self._offset, strict=True)
                    ]
                )
            sim = dice(probe, self._exact_bits)
            rows = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else None
            if rows is None:
                rows = np.broadcast_to(np.arange(sim.shape[1]), sim.shape).copy()
            return rows.astype(np.int64), np.take_along_axis(sim, rows, axis=1)
        _, rows = self._faiss.search(_unit(probe), k)
        owner = np.frombuffer(self._owner, np.int64)
        offset = np.frombuffer(self._offset, np.int32)
        found = rows.ravel()
        bits = np.zeros((len(found), self.mcc.bits // 8), np.uint8)
        ones = np.zeros(len(found), np.int64)
        for i in np.flatnonzero(found >= 0).tolist():
            packed = self._fingers.get(int(owner[found[i]]))
            if packed is not None:
                bits[i] = packed.bits[offset[found[i]]]
                ones[i] = packed.ones[offset[found[i]]]
        both = _POPCOUNT[probe[:, None, :] & bits.reshape(len(probe), k, -1)].sum(axis=2)
        sizes = _ones(probe)[:, None] + ones.reshape(len(probe), k)
        sim = 2.0 * both / np.maximum(sizes, 1)
        return rows, np.where(rows >= 0, sim, 0.0)

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
        owner = np.frombuffer(self._owner, np.int64)
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
            sizes = np.array([self._indexed.get(int(u), 1) for u in unique], np.float64)
            totals = totals / np.maximum(sizes, 1.0) ** self.params.vote_norm
        out: list[tuple[int, float]] = []
        for i in np.argsort(-totals, kind="stable"):
            finger = int(unique[i])
            packed = self._fingers.get(finger)
            if packed is None or (allowed is not None and not allowed(packed.label)):
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
        packed = [self._fingers[f] for f in fingers]
        sizes = np.array([len(p.bits) for p in packed], np.int64)
        if len(probe) == 0 or sizes.sum() == 0:
            return np.zeros(len(fingers))
        sim = dice(
            np.packbits(probe.bits.astype(bool), axis=1),
            np.concatenate([p.bits for p in packed]),
            np.concatenate([p.ones for p in packed]),
        )
        return quick_scores(
            sim,
            probe,
            sizes,
            np.concatenate([p.xy for p in packed]),
            np.concatenate([p.angle for p in packed]),
            self.mcc,
            self.params.first_pass_pairs,
        )

    def exhaustive(
        self, probe: Cylinders, *, max_candidates: int, allowed: Filter | None = None
    ) -> list[Hit]:
        """The full comparison against every enrolled finger (the reference answer)."""
        fingers = [
            f for f, packed in self._fingers.items() if allowed is None or allowed(packed.label)
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
        packed = sum(
            p.bits.nbytes + p.valid.nbytes + p.xy.nbytes + p.angle.nbytes
            for p in self._fingers.values()
        )
        rows = len(self._owner) * 12
        if self._faiss is None:
            return packed + rows + (0 if self._exact_bits is None else self._exact_bits.nbytes)
        ivf = faiss.extract_index_ivf(self._faiss)
        lists = int(ivf.ntotal) * (int(ivf.code_size) + 8) + 4 * int(ivf.d) * int(ivf.nlist)
        return packed + rows + lists + 4 * self.mcc.bits * int(ivf.d)  # + the PCA matrix

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: Path, **meta: Any) -> None:
        """Packed cylinders, rows and the trained FAISS index; meta.json last, naming
        the generation the other files belong to (a torn save is rebuilt at load)."""
        directory.mkdir(parents=True, exist_ok=True)
        generation = secrets.token_hex(8)
        fingers = sorted(self._fingers)
        counts = np.array([len(self._fingers[f].bits) for f in fingers], np.int64)
        empty_bits = np.zeros((0, self.mcc.bits // 8), np.uint8)
        empty_valid = np.zeros((0, math.ceil(self.mcc.ns * self.mcc.ns / 8)), np.uint8)

        def stack(name: str, empty: NDArray[Any]) -> NDArray[Any]:
            parts = [getattr(self._fingers[f], name) for f in fingers]
            return np.concatenate(parts) if parts else empty

        tmp = directory / "cylinders.npz.tmp"
        with tmp.open("wb") as out:
            np.savez(
                out,
                generation=np.array(generation),
                fingers=np.array(fingers, np.int64),
                counts=counts,
                bits=stack("bits", empty_bits),
                valid=stack("valid", empty_valid),
                xy=stack("xy", np.zeros((0, 2), np.float32)),
                angle=stack("angle", np.zeros(0, np.float32)),
                labels=np.array(
                    [
                        (lab.record, lab.position, int(lab.latent))
                        for lab in (self._fingers[f].label for f in fingers)
                    ],
                    np.int64,
                ).reshape(-1, 3),
                owner=np.frombuffer(self._owner, np.int64),
                offset=np.frombuffer(self._offset, np.int32),
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
            fingers, counts = z["fingers"], z["counts"]
            bits, valid, xy, angle = z["bits"], z["valid"], z["xy"], z["angle"]
            labels, owner, offset = z["labels"], z["owner"], z["offset"]
        if bits.shape[1:] != (mcc.bits // 8,):
            raise StorageError("the finger index was built with other MCC parameters")
        ones = _ones(bits)
        start = 0
        for f, n, (record, position, latent) in zip(
            fingers.tolist(), counts.tolist(), labels.tolist(), strict=True
        ):
            end = start + n
            label = Label(record, position, bool(latent))
            index._fingers[f] = _Packed(
                bits[start:end],
                valid[start:end],
                xy[start:end],
                angle[start:end],
                label,
                ones[start:end],
            )
            index._by_record.setdefault(record, []).append(f)
            start = end
        index.last_id = int(meta.get("last_id", 0))
        faiss_file = meta.get("faiss")
        usable = generation == meta.get("generation") and (
            faiss_file is None or (directory / faiss_file).is_file()
        )
        if not usable:
            index._retrain()
            return index, meta
        index._owner = array("q", owner.astype(np.int64).tobytes())
        index._offset = array("i", offset.astype(np.int32).tobytes())
        live, rows = np.unique(owner, return_counts=True)
        index._indexed = {int(f): 0 for f in index._fingers}
        index._indexed.update(
            {int(f): int(n) for f, n in zip(live, rows, strict=True) if int(f) in index._fingers}
        )
        index._trained_rows = int(meta.get("trained_rows", len(owner)))
        if faiss_file is not None:
            index._faiss = faiss.read_index(str(directory / faiss_file))
            faiss.extract_index_ivf(index._faiss).nprobe = index.params.nprobe
            if index._faiss.ntotal != len(owner):
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
    a: NDArray[np.uint8], b: NDArray[np.uint8], b_ones: NDArray[np.int64] | None = None
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
