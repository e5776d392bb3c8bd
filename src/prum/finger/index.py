"""1:N fingerprint search: MCC cylinders in a FAISS binary index, then re-ranking.

After Cappelli, Ferrara and Maltoni, "Fingerprint indexing based on Minutia
Cylinder-Code", IEEE TPAMI 33(5), 2011: a binary cylinder is a fixed-length local
descriptor that survives rotation, translation and partial overlap, so the cylinders
of all enrolled fingers go into one nearest-neighbour index (their paper hashes
sampled bits; here a FAISS ``IndexBinaryIVF`` over the same bits, Hamming distance).
A search looks up each probe cylinder's nearest enrolled cylinders, lets every finger
collect votes (the best similarity of each probe cylinder with one of its cylinders,
above a floor, summed and divided by the square root of the finger's cylinders),
ranks the best voted fingers by a cheap first-pass score, and re-ranks only the short
list of the best of those with the full LSS-R comparison of prum.finger.match. A
search so compares a few dozen fingers in full instead of all of them.

The index is derived data: it is rebuilt from the stored templates (prum.finger.store)
and saved beside the database; deleted fingers are dropped from the short list at
once and from the FAISS index at the next rebuild.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from prum.errors import StorageError
from prum.finger.match import Comparison, Cylinders, MccParams, compare

FORMAT_VERSION = 1

Filter = Callable[["Label"], bool]


@dataclass(frozen=True)
class IndexParams:
    # Below this many cylinders an exact (flat) Hamming index is fast enough and
    # needs no training; above it an inverted file of ``nlist`` clusters.
    flat_below: int = 200_000
    # FAISS's guideline of about sqrt(rows) clusters, rounded to a power of two for
    # 5 M cylinders (100,000 fingers of about 50 minutiae).
    nlist: int = 2048
    # Clusters visited per probe cylinder (docs/fingerprints.md, "1:N search": 16, 32
    # and 64 measured on 10,000 and 100,000 synthetic fingers).
    nprobe: int = 32
    # Nearest enrolled cylinders looked at per probe cylinder: on 100,000 fingers 128
    # to 256 put the mate in the vote's top 30 more often than 16 to 64 (on 10,000
    # the number made no difference); the vote's cost barely depends on it.
    neighbours: int = 128
    # Cylinders with fewer bits set (few neighbouring minutiae) are near every other
    # sparse cylinder in Hamming distance: they fill the nearest-neighbour lists and
    # one inverted list with noise, so they are not indexed (they still count in the
    # full comparison). 64 of 1,536 is the 10th percentile on the dev prints.
    min_bits: int = 64
    # Fingers re-ranked with the full comparison.
    shortlist: int = 30
    # The vote (measured on 10,000 and 100,000 synthetic fingers, 200 probes): a
    # probe cylinder's similarity with its best cylinder of a finger counts only above
    # this floor (unrelated dense cylinders are 0.3 or so similar, and summing that
    # noise favoured fingers with many dense cylinders) ...
    vote_floor: float = 0.4
    # ... and a finger's total is divided by its indexed cylinders to this power
    # (0.5: between favouring large fingers, 0, and small ones, 1).
    vote_norm: float = 0.5
    # The best voted fingers (this many) are first ranked by a cheap score, the mean
    # of the ``prefilter_pairs`` best cylinder similarities (no validity masks, no
    # pairing, no relaxation: one matrix product for all of them), and the best
    # ``shortlist`` of those get the full comparison. 0: no first pass.
    prefilter: int = 100
    prefilter_pairs: int = 5


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
    rows: NDArray[np.int64]  # their rows in the FAISS index (-1: not indexed yet)
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


class FingerIndex:
    """Cylinders of every enrolled finger, packed, and the FAISS index over them."""

    def __init__(self, mcc: MccParams | None = None, params: IndexParams | None = None):
        self.mcc = mcc or MccParams()
        self.params = params or IndexParams()
        self._fingers: dict[int, _Packed] = {}
        self._by_record: dict[int, list[int]] = {}
        self._owner = array("q")  # FAISS row -> finger id
        self._ones = array("i")  # FAISS row -> bits set in its cylinder
        self._indexed: dict[int, int] = {}  # finger -> its cylinders in FAISS
        self._faiss: Any = faiss.IndexBinaryFlat(self.mcc.bits)
        self.last_id = 0

    def __len__(self) -> int:
        return len(self._fingers)

    @property
    def cylinders(self) -> int:
        return len(self._owner)

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
        bits = packed.bits
        start = len(self._owner)
        rows = np.arange(start, start + len(bits), dtype=np.int64)
        ones = np.unpackbits(bits, axis=1).sum(axis=1).astype(np.int32)
        informative = ones >= self.params.min_bits
        if informative.any():
            self._faiss.add(bits[informative])
            self._owner.extend([finger] * int(informative.sum()))
            self._ones.extend(ones[informative].tolist())
        self._indexed[finger] = int(informative.sum())
        self._fingers[finger] = _Packed(bits, packed.valid, packed.xy, packed.angle, rows, label)
        self._by_record.setdefault(label.record, []).append(finger)
        self.last_id = max(self.last_id, finger)
        if isinstance(self._faiss, faiss.IndexBinaryFlat) and self.cylinders >= max(
            self.params.flat_below, 40 * self.params.nlist
        ):
            self._retrain()

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
        """Rebuild the FAISS part from the packed cylinders (drops deleted rows)."""
        fingers = sorted(self._fingers)
        owner = array("q")
        ones = array("i")
        indexed: dict[int, int] = {}
        rows = []
        for f in fingers:
            packed = self._fingers[f].bits
            count = np.unpackbits(packed, axis=1).sum(axis=1).astype(np.int32)
            informative = count >= self.params.min_bits
            rows.append(packed[informative])
            owner.extend([f] * int(informative.sum()))
            ones.extend(count[informative].tolist())
            indexed[f] = int(informative.sum())
        data = np.concatenate(rows) if rows else np.zeros((0, self.mcc.bits // 8), np.uint8)
        index: Any
        quantizer: Any = None
        if len(data) >= max(self.params.flat_below, 40 * self.params.nlist):
            # The list centres are enrolled cylinders drawn at random. FAISS would train
            # them by k-means on the bits unpacked to floats (1,536 dimensions), hours on
            # two cores for millions of cylinders; random centres of real data cost
            # nothing, and what they lose in recall bench/finger.py measures.
            quantizer = faiss.IndexBinaryFlat(self.mcc.bits)
            rng = np.random.default_rng(0)
            centres = rng.choice(len(data), size=self.params.nlist, replace=False)
            quantizer.add(data[np.sort(centres)])
            index = faiss.IndexBinaryIVF(quantizer, self.mcc.bits, self.params.nlist)
            index.train(data[:1])  # a quantizer already holding nlist centres is kept as is
            index.nprobe = self.params.nprobe
        else:
            index = faiss.IndexBinaryFlat(self.mcc.bits)
        if len(data):
            index.add(data)
        start = 0
        for f in fingers:
            p = self._fingers[f]
            n = len(p.bits)
            self._fingers[f] = _Packed(
                p.bits, p.valid, p.xy, p.angle, np.arange(start, start + n, dtype=np.int64), p.label
            )
            start += n
        self._faiss = index
        self._quantizer = quantizer  # FAISS does not own it: keep it alive
        self._owner = owner
        self._ones = ones
        self._indexed = indexed

    def compact(self) -> None:
        """Drop deleted fingers' rows from FAISS (and retrain the clusters)."""
        self._retrain()

    # --- reading -----------------------------------------------------------------------

    def cylinders_of(self, finger: int) -> Cylinders:
        p = self._fingers[finger]
        cells = self.mcc.ns * self.mcc.ns
        bits = np.unpackbits(p.bits, axis=1, count=self.mcc.bits).astype(np.float32)
        valid = np.unpackbits(p.valid, axis=1, count=cells).astype(np.float32)
        return Cylinders.of(bits=bits, valid=valid, xy=p.xy, angle=p.angle)

    def vote(
        self, probe: Cylinders, *, allowed: Filter | None = None, limit: int | None = None
    ) -> list[tuple[int, float]]:
        """The fingers with most votes, best first (the short list before re-ranking)."""
        # A finger none of whose cylinders is informative enough to index (a handful
        # of isolated minutiae) cannot be found by the index, only by exhaustive search.
        if len(probe) == 0 or self.cylinders == 0:
            return []
        limit = self.params.shortlist if limit is None else limit
        informative = probe.bits.sum(axis=1) >= self.params.min_bits
        bits = probe.bits[informative] if informative.any() else probe.bits
        query = np.packbits(bits.astype(bool), axis=1)
        k = min(self.params.neighbours, self.cylinders)
        distances, rows = self._faiss.search(query, k)
        owner = np.frombuffer(self._owner, dtype=np.int64)
        found = rows >= 0
        at = np.clip(rows, 0, None)
        fingers = np.where(found, owner[at], -1)
        # Similarity of two cylinders from their Hamming distance normalised by the
        # bits set in both (the binary similarity of the MCC paper, all cells valid).
        ones = bits.sum(axis=1, keepdims=True) + np.frombuffer(self._ones, np.int32)[at]
        sim = np.clip(1.0 - distances / np.maximum(ones, 1.0), 0.0, 1.0)
        sim = np.where(found, np.maximum(sim - self.params.vote_floor, 0.0), 0.0)
        # Each probe cylinder votes once per finger: with its best cylinder there.
        q = np.repeat(np.arange(len(bits)), k)
        f = fingers.ravel()
        s = sim.ravel()
        keep = f >= 0
        q, f, s = q[keep], f[keep], s[keep]
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
        ranked = np.argsort(-totals, kind="stable")
        out: list[tuple[int, float]] = []
        for i in ranked:
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
        """Vote, then re-rank the short list with the full comparison."""
        limit = self.params.shortlist if shortlist is None else shortlist
        voted = self.vote(probe, allowed=allowed, limit=max(limit, self.params.prefilter))
        if len(voted) > limit:
            cheap = self.first_pass(probe, [f for f, _ in voted])
            voted = [voted[i] for i in np.argsort(-cheap, kind="stable")[:limit]]
        hits = [
            Hit(finger, compare(probe, self.cylinders_of(finger), self.mcc), votes)
            for finger, votes in voted
        ]
        hits.sort(key=lambda h: -h.comparison.score)
        return hits[:max_candidates]

    def first_pass(self, probe: Cylinders, fingers: list[int]) -> NDArray[np.float64]:
        """A cheap score per finger: the mean of its best cylinder similarities with
        the probe (MCC's binary similarity, 2|a & b| / (|a| + |b|), all cells valid)."""
        blocks = [self._fingers[f].bits for f in fingers]
        sizes = np.array([len(b) for b in blocks])
        out = np.zeros(len(fingers))
        if len(probe) == 0 or sizes.sum() == 0:
            return out
        a = probe.bits.astype(np.float32)
        b = np.unpackbits(np.concatenate(blocks), axis=1, count=self.mcc.bits)
        b = b.astype(np.float32)
        sim = 2.0 * (a @ b.T) / np.maximum(a.sum(1)[:, None] + b.sum(1)[None, :], 1.0)
        start = 0
        for i, n in enumerate(sizes.tolist()):
            block = sim[:, start : start + n].ravel()
            start += n
            k = min(self.params.prefilter_pairs, block.size)
            if k:
                out[i] = float(np.partition(block, -k)[-k:].mean())
        return out

    def exhaustive(
        self, probe: Cylinders, *, max_candidates: int, allowed: Filter | None = None
    ) -> list[Hit]:
        """The full comparison against every enrolled finger (the reference answer)."""
        hits = [
            Hit(finger, compare(probe, self.cylinders_of(finger), self.mcc), 0.0)
            for finger, packed in self._fingers.items()
            if allowed is None or allowed(packed.label)
        ]
        hits.sort(key=lambda h: -h.comparison.score)
        return hits[:max_candidates]

    def fingers(self) -> list[int]:
        return list(self._fingers)

    def nbytes(self) -> int:
        packed = sum(
            p.bits.nbytes + p.valid.nbytes + p.xy.nbytes + p.angle.nbytes
            for p in self._fingers.values()
        )
        return packed + len(self._owner) * (8 + self.mcc.bits // 8)

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: Path, **meta: Any) -> None:
        """Packed cylinders and metadata; FAISS is rebuilt from them when loaded."""
        directory.mkdir(parents=True, exist_ok=True)
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
            )
        tmp.replace(directory / "cylinders.npz")
        info = {"version": FORMAT_VERSION, "last_id": self.last_id, **meta}
        (directory / "meta.json").write_text(json.dumps(info))

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
            fingers, counts = z["fingers"], z["counts"]
            bits, valid, xy, angle = z["bits"], z["valid"], z["xy"], z["angle"]
            labels = z["labels"]
        if bits.shape[1:] != (mcc.bits // 8,):
            raise StorageError("the finger index was built with other MCC parameters")
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
                np.full(n, -1, np.int64),
                label,
            )
            index._by_record.setdefault(record, []).append(f)
            start = end
        index.last_id = int(meta.get("last_id", 0))
        index._retrain()
        return index, meta
