"""1:N fingerprint search: MCC cylinders as neighbours in FAISS, a vote, re-ranking.

After Cappelli, Ferrara and Maltoni, "Fingerprint indexing based on Minutia
Cylinder-Code", IEEE TPAMI 33(5), 2011: a cylinder is a fixed-length local descriptor
that survives rotation, translation and partial overlap, so the cylinders of all
enrolled fingers go into one nearest-neighbour index and a probe's cylinders vote for
the fingers they find. Stages, each measured in bench/finger.py (docs/fingerprints.md):

1. Neighbours. Each probe cylinder's nearest enrolled cylinders. Small galleries
   compare with every cylinder by the binary MCC similarity 2|a & b| / (|a| + |b|)
   (Dice, from popcounts); large ones ask a FAISS index holding each cylinder as a
   compact code: the bits as a unit vector (whose cosine ranks like Dice), PCA to 256
   dimensions, an inverted file and 4-bit product-quantiser codes scanned with SIMD
   ("fast scan"), 32 bytes a cylinder; the factory string is configuration. Its ids
   are the fingers, so a vote needs nothing else in memory.
2. Vote. A neighbour counts by how far its similarity lies above that of the probe
   cylinder's 64th neighbour (a cylinder like many others says little), once per
   finger and probe cylinder; a finger's total is divided by the square root of its
   cylinders.
3. First pass. The best voted fingers are ranked by a cheap score: for each, the best
   cylinder pairs with the probe (exact similarity from the stored bits) relaxed by
   the geometry of their minutiae, LSS-R on few pairs for all fingers at once
   (prum.categories.finger.match.quick_scores).
4. The best of those (the short list, 100) get the full LSS-R comparison of
   prum.categories.finger.match.

A tenprint card searched against cards (:meth:`FingerIndex.search_cards`) skips the
first pass: each probe finger votes, the votes are summed per card, and the best
cards are compared finger by finger and their scores fused.

Memory: the FAISS codes (about 40 bytes a cylinder with their ids) and a small record
per finger stay in memory; the cylinders themselves (the bits, valid cells and
minutiae that stages 3 and 4 read) are a row store saved beside the index as numpy
files and memory-mapped at load, so only the rows a search reads come from disk.

The index is derived data: it is rebuilt from the stored templates (prum.categories.finger.store)
and saved beside the database with its FAISS part; deleted fingers leave every answer
at once and the row store and FAISS index at the next rebuild. Finger ids are never
reused (they are the store's template ids); replacing one retrains the FAISS part.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import shutil
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

FORMAT_VERSION = 4

Filter = Callable[["Label"], bool]

# Bits set in each byte value: Dice from packed cylinders without unpacking them.
_faiss: Any = faiss
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


@dataclass(frozen=True)
class IndexParams:
    # Below this many cylinders (about 600 fingers) every probe cylinder is compared
    # with every enrolled one (exact, nothing to train); above, the FAISS index.
    exact_below: int = 20_000
    # The FAISS index over the cylinders as unit vectors. PCA to 256 dimensions: the
    # mates the vote missed at 100,000 fingers match weakly, and their cylinders ranked
    # by median 1,202 among PCA64 neighbours, 87 among PCA256 ones (exact: < 300).
    # PQ64x4fs: 64 sub-quantisers of 4 bits, 32 bytes a cylinder, scanned 32 codes at a
    # time in SIMD registers (8-bit scalar codes took 256 bytes and 17 KB a finger).
    # ``{nlist}``: inverted lists, the power of two nearest 2 sqrt(cylinders), at most
    # ``max_nlist`` (FAISS's guideline is 1 to 16 sqrt(n); k-means for 8,192 lists
    # needs 330,000 training cylinders and about four times the time of 4,096); the
    # lists are found through a small HNSW graph, not by comparing with every centre.
    factory: str = "PCA256,L2norm,IVF{nlist}_HNSW32,PQ64x4fs"
    max_nlist: int = 4096
    # Lists visited per probe cylinder (PCA64 at 100,000 fingers, 4,096 lists, 100
    # probes: 32, 64, 96, 128, 256 gave rank-1 0.83, 0.84, 0.86, 0.86, 0.86; PCA256:
    # 64 and 128 the same).
    nprobe: int = 64
    # Cylinders the FAISS training sees (PCA, k-means, the quantisers), at random.
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
    # A card searched against cards: the cards best by their summed votes that get
    # the first pass finger by finger, and the best of those that are compared in
    # full (ten comparisons a card, about 8 ms).
    card_votes: int = 1000  # fingers each probe finger votes for
    # Lists each probe finger's cylinders visit: ten fingers vote, each needs fewer
    # neighbours than a finger searched alone (the lists are most of a search's time).
    card_nprobe: int = 16
    card_prefilter: int = 50
    cards: int = 10

    def factory_for(self, cylinders: int) -> str:
        nlist = 2 ** max(6, round(math.log2(max(2.0, 2 * math.sqrt(cylinders)))))
        return self.factory.format(nlist=min(nlist, self.max_nlist))


@dataclass(frozen=True)
class Hit:
    finger: int  # the record id in the store
    comparison: Comparison
    votes: float


@dataclass(frozen=True)
class CardHit:
    """A card (record) found by a card search: its fused score and, for each probe
    finger that found one, the enrolled finger compared and the comparison."""

    record: int
    score: float  # the sum rule: the mean over the probe's fingers (0 where none)
    fingers: dict[int, tuple[int, Comparison]]  # probe finger (its index) -> enrolled
    votes: float


@dataclass(frozen=True, slots=True)
class Label:
    """What a search filters on, kept beside the cylinders of each finger."""

    record: int  # the record (tenprint card or latent) the finger belongs to
    position: int  # ANSI/NIST-ITL finger position, 0 unknown
    latent: bool  # an unsolved latent (UL) rather than a tenprint (TP)


@dataclass(frozen=True, slots=True)
class _Finger:
    # Slots: at a million fingers each of these is a few hundred bytes of the ~2 KB
    # a finger may take in memory.
    start: int  # its first row in the row store
    count: int  # its cylinders (rows)
    voting: int  # of those, the ones with a bit set (the others cannot vote)
    label: Label


def same_finger_possible(a: int, b: int) -> bool:
    """Two finger positions can hold the same finger (0 unknown, 1-10 rolled, 11-15
    plain thumbs and slaps: only two known different rolled fingers exclude it)."""
    return not (1 <= a <= 10 and 1 <= b <= 10 and a != b)


@dataclass(frozen=True)
class Scope:
    """The fingers a probe finger may be: its position's and one collection's. A
    filter (Filter) that a vote applies to whole arrays of fingers at once."""

    position: int = 0  # the probe finger's ANSI/NIST-ITL position, 0 unknown
    latent: bool | None = None  # the unsolved latents, the tenprints, None both

    def __call__(self, label: Label) -> bool:
        return (self.latent is None or label.latent == self.latent) and same_finger_possible(
            self.position, label.position
        )

    def mask(self, position: NDArray[np.int8], latent: NDArray[np.bool_]) -> NDArray[np.bool_]:
        ok = np.ones(len(position), bool)
        if self.latent is not None:
            ok &= latent == self.latent
        if 1 <= self.position <= 10:
            ok &= ~((position >= 1) & (position <= 10) & (position != self.position))
        return ok


class _Table:
    """What a vote needs of each finger, in arrays indexed by finger id (the store's
    ids are dense): a vote looks up thousands of fingers with one index each."""

    LIMIT = 2**31  # finger ids above are refused (no national AFIS has as many)

    def __init__(self) -> None:
        self.known = np.zeros(0, bool)
        self.voting = np.zeros(0, np.int32)
        self.position = np.zeros(0, np.int8)
        self.latent = np.zeros(0, bool)
        self.record = np.zeros(0, np.int64)

    def set(self, finger: int, voting: int, label: Label) -> None:
        if not 0 <= finger < self.LIMIT:
            raise ValueError(f"finger id {finger} is outside 0..2^31")
        if finger >= len(self.known):
            size = max(finger + 1, 2 * len(self.known), 1024)
            for name in ("known", "voting", "position", "latent", "record"):
                old = getattr(self, name)
                new = np.zeros(size, old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
        self.known[finger] = True
        self.voting[finger] = voting
        self.position[finger] = label.position if 0 <= label.position <= 127 else 0
        self.latent[finger] = label.latent
        self.record[finger] = label.record

    def forget(self, finger: int) -> None:
        if 0 <= finger < len(self.known):
            self.known[finger] = False

    def nbytes(self) -> int:
        return sum(
            getattr(self, n).nbytes for n in ("known", "voting", "position", "latent", "record")
        )


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


class _Column:
    """One column of the row store: the rows saved (a read-only memory map, or an
    array) and the rows added since, in memory, growing by doubling."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, saved: NDArray[Any] | None = None):
        self.saved: NDArray[Any] = np.zeros((0, *shape), dtype) if saved is None else saved
        self.added: NDArray[Any] = np.zeros((0, *shape), dtype)
        self.n_added = 0

    def __len__(self) -> int:
        return len(self.saved) + self.n_added

    def append(self, values: NDArray[Any]) -> None:
        end = self.n_added + len(values)
        if end > len(self.added):
            grown = np.zeros(
                (max(end, 2 * len(self.added), 1024), *self.added.shape[1:]), self.added.dtype
            )
            grown[: self.n_added] = self.added[: self.n_added]
            self.added = grown
        self.added[self.n_added : end] = values
        self.n_added = end

    def take(self, rows: NDArray[np.int64]) -> NDArray[Any]:
        """The rows at these indices, in memory."""
        n_saved = len(self.saved)
        if self.n_added == 0:
            return np.asarray(self.saved[rows])
        out = np.empty((len(rows), *self.added.shape[1:]), self.added.dtype)
        old = rows < n_saved
        out[old] = self.saved[rows[old]]
        out[~old] = self.added[rows[~old] - n_saved]
        return out

    def span(self, start: int, end: int) -> NDArray[Any]:
        return self.take(np.arange(start, end, dtype=np.int64))

    def chunks(self, size: int = 1 << 16) -> Iterator[NDArray[Any]]:
        """Every row in order, a chunk at a time (never the whole column at once)."""
        for first in range(0, len(self), size):
            yield self.span(first, min(first + size, len(self)))


class _Rows:
    """The packed cylinders of every finger, one row each, and their minutiae. A
    search gathers the rows of thousands of fingers with one index per column. Rows
    of deleted fingers stay (marked dead) until the next rebuild compacts them."""

    COLUMNS = ("bits", "valid", "xy", "angle", "owner")

    def __init__(self, mcc: MccParams, saved: dict[str, NDArray[Any]] | None = None):
        valid_width = math.ceil(mcc.ns * mcc.ns / 8)
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {
            "bits": ((mcc.bits // 8,), np.uint8),
            "valid": ((valid_width,), np.uint8),
            "xy": ((2,), np.float32),
            "angle": ((), np.float32),
            "owner": ((), np.int64),  # the finger of each row
            "dead": ((), bool),
        }
        saved = saved or {}
        self.columns = {
            name: _Column(shape, dtype, saved.get(name)) for name, (shape, dtype) in shapes.items()
        }
        if "dead" in saved:  # flags change: in memory, never mapped
            self.columns["dead"].saved = np.array(saved["dead"], bool)
        self.bits = self.columns["bits"]
        self.owner = self.columns["owner"]
        self.dead = self.columns["dead"]

    @property
    def n(self) -> int:
        return len(self.bits)

    def append(self, packed: Packed, owner: int) -> int:
        """Add one finger's rows; returns the first one."""
        start = self.n
        rows = len(packed.bits)
        for name, values in (
            ("bits", packed.bits),
            ("valid", packed.valid),
            ("xy", packed.xy),
            ("angle", packed.angle),
            ("owner", np.full(rows, owner, np.int64)),
            ("dead", np.zeros(rows, bool)),
        ):
            self.columns[name].append(values)
        return start

    def kill(self, start: int, end: int) -> None:
        dead = self.dead
        n_saved = len(dead.saved)
        for row in range(start, end):
            if row < n_saved:
                dead.saved[row] = True
            else:
                dead.added[row - n_saved] = True

    def gather(self, rows: NDArray[np.int64]) -> _Rows:
        """A new in-memory store of these rows (compaction)."""
        out = _Rows.__new__(_Rows)
        out.columns = {}
        for name, column in self.columns.items():
            fresh = _Column(column.added.shape[1:], column.added.dtype)
            for first in range(0, len(rows), 1 << 16):
                fresh.append(column.take(rows[first : first + (1 << 16)]))
            out.columns[name] = fresh
        out.bits, out.owner, out.dead = (
            out.columns["bits"],
            out.columns["owner"],
            out.columns["dead"],
        )
        return out

    def cylinders(self, start: int, end: int, mcc: MccParams) -> Cylinders:
        cells = mcc.ns * mcc.ns
        bits = np.unpackbits(self.bits.span(start, end), axis=1, count=mcc.bits)
        valid = np.unpackbits(self.columns["valid"].span(start, end), axis=1, count=cells)
        return Cylinders.of(
            bits=bits.astype(np.float32),
            valid=valid.astype(np.float32),
            xy=self.columns["xy"].span(start, end),
            angle=self.columns["angle"].span(start, end),
        )

    def save(self, directory: Path) -> None:
        """Each column as a numpy file, written a chunk at a time."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, column in self.columns.items():
            out = np.lib.format.open_memmap(  # type: ignore[no-untyped-call]
                directory / f"{name}.npy",
                mode="w+",
                dtype=column.added.dtype,
                shape=(len(column), *column.added.shape[1:]),
            )
            first = 0
            for chunk in column.chunks():
                out[first : first + len(chunk)] = chunk
                first += len(chunk)
            out.flush()
            del out

    @classmethod
    def open(cls, directory: Path, mcc: MccParams) -> _Rows:
        """The saved rows, memory-mapped (read on demand, shared with the page cache)."""
        saved = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in cls.COLUMNS}
        saved["dead"] = np.load(directory / "dead.npy")
        lengths = {len(v) for v in saved.values()}
        if len(lengths) != 1:
            raise StorageError(f"the finger row store in {directory} is inconsistent")
        if saved["bits"].shape[1:] != (mcc.bits // 8,):
            raise StorageError("the finger index was built with other MCC parameters")
        return cls(mcc, saved)

    def memory_nbytes(self) -> int:
        """Bytes held in memory (the saved columns are mapped, except the dead flags)."""
        added = sum(c.n_added * c.added[:1].nbytes for c in self.columns.values())
        return added + len(self.dead.saved)

    def disk_nbytes(self) -> int:
        return sum(len(c.saved) * c.saved[:1].nbytes for c in self.columns.values())


class FingerIndex:
    """Cylinders of every enrolled finger, packed, and the FAISS index over them."""

    def __init__(self, mcc: MccParams | None = None, params: IndexParams | None = None):
        self.mcc = mcc or MccParams()
        self.params = params or IndexParams()
        self._fingers: dict[int, _Finger] = {}
        self._table = _Table()
        self._by_record: dict[int, list[int]] = {}
        self._rows = _Rows(self.mcc)
        self._voting_rows = 0  # rows with a bit set, deleted fingers' included
        self._faiss: Any = None  # None: exact neighbours (small galleries); ids: fingers
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
        return self.kind_for(self._trained_rows)

    def kind_for(self, cylinders: int) -> str:
        return (
            "exact" if cylinders < self.params.exact_below else self.params.factory_for(cylinders)
        )

    def __contains__(self, finger: int) -> bool:
        return finger in self._fingers

    # --- building ----------------------------------------------------------------------

    def add(self, finger: int, cyl: Cylinders, label: Label) -> None:
        """Index the cylinders of one finger (its template id in the store)."""
        self.add_packed(finger, pack(cyl, self.mcc), label)

    def add_packed(self, finger: int, packed: Packed, label: Label) -> None:
        """Index cylinders packed by :func:`pack` (in another process, for bulk loads)."""
        replaced = finger in self._fingers
        if replaced:
            self.remove(finger)
        voting = np.flatnonzero(_ones(packed.bits) > 0)
        self._table.set(finger, len(voting), label)
        start = self._rows.append(packed, finger)
        self._fingers[finger] = _Finger(start, len(packed.bits), len(voting), label)
        self._by_record.setdefault(label.record, []).append(finger)
        self.last_id = max(self.last_id, finger)
        self._voting_rows += len(voting)
        if self._deferred:
            return
        if self._faiss is None:
            if self._voting_rows >= self.params.exact_below:
                self._retrain()
        elif replaced or self._voting_rows >= 4 * self._trained_rows:
            # Lists and PCA trained on a quarter of the data: train again on all of it.
            # A replaced finger's old cylinders carry its id in FAISS: they go too.
            self._retrain()
        elif len(voting):
            self._faiss.add_with_ids(
                _unit(packed.bits[voting]), np.full(len(voting), finger, np.int64)
            )

    @contextlib.contextmanager
    def bulk(self, progress: Callable[[str], None] | None = None) -> Iterator[None]:
        """Add many fingers, then compact and train once at the end, rather than each
        time the rows have grown fourfold (the index answers searches only after);
        ``progress`` hears how the training goes (minutes at millions of fingers)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            self._retrain(progress)

    def remove(self, finger: int) -> None:
        """Forget a finger: it leaves every answer now, the FAISS rows at rebuild."""
        gone = self._fingers.pop(finger, None)
        if gone is None:
            return
        self._table.forget(finger)
        self._rows.kill(gone.start, gone.start + gone.count)
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

    def _retrain(self, progress: Callable[[str], None] | None = None) -> None:
        """Compact the rows (drops deleted fingers') and rebuild the FAISS part,
        training PCA, lists and quantisers on the data as it is now."""
        say = progress or (lambda _: None)
        ids = sorted(self._fingers)
        keep = self._row_indices([self._fingers[f] for f in ids])
        if len(keep) != self._rows.n or not np.array_equal(keep, np.arange(len(keep))):
            self._rows = self._rows.gather(keep)  # rows already in order: not copied
            start = 0
            for f in ids:
                self._fingers[f] = replace(self._fingers[f], start=start)
                start += self._fingers[f].count
        self._faiss = None
        voting_rows, owners = self._voting()
        self._voting_rows = self._trained_rows = len(voting_rows)
        if len(voting_rows) < self.params.exact_below:
            return
        bits = self._rows.bits
        index = faiss.index_factory(
            self.mcc.bits, self.params.factory_for(len(voting_rows)), faiss.METRIC_INNER_PRODUCT
        )
        ivf = faiss.extract_index_ivf(index)
        # A random sample trains the PCA and the lists: 40 a list, FAISS's minimum for
        # k-means, and at least 100,000 for the PCA (1,536 dimensions).
        sample = min(len(voting_rows), max(self.params.train_sample, 40 * ivf.nlist))
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(voting_rows, size=sample, replace=False))
        say(f"training {self.kind_for(len(voting_rows))} on {sample:,} cylinders")
        index.train(_unit(bits.take(chosen)))
        self._tune(index, adding=True)
        for first in range(0, len(voting_rows), _CHUNK):
            rows = voting_rows[first : first + _CHUNK]
            index.add_with_ids(_unit(bits.take(rows)), owners[first : first + _CHUNK])
            if (first // _CHUNK) % 10 == 9:
                say(f"{first + len(rows):,} of {len(voting_rows):,} cylinders indexed")
        self._tune(index)
        self._faiss = index

    def _voting(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The rows with a bit set and their fingers (rows in order, live fingers')."""
        rows: list[NDArray[np.int64]] = []
        first = 0
        for chunk in self._rows.bits.chunks():
            rows.append(np.flatnonzero(_ones(chunk) > 0) + first)
            first += len(chunk)
        voting = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        dead = self._rows.dead.take(voting)
        voting = voting[~dead]
        return voting, self._rows.owner.take(voting)

    def _tune(self, index: Any, *, adding: bool = False) -> None:
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = self.params.nprobe
        quantizer = faiss.downcast_index(ivf.quantizer)
        if hasattr(quantizer, "hnsw"):
            # A search must see at least the lists it returns; adding a cylinder asks
            # for its one list, and a wide graph search there took most of a build.
            quantizer.hnsw.efSearch = 32 if adding else max(32, 2 * self.params.nprobe)

    def compact(self) -> None:
        """Drop deleted fingers' rows (and retrain PCA and lists)."""
        self._retrain()

    # --- reading -----------------------------------------------------------------------

    def cylinders_of(self, finger: int) -> Cylinders:
        f = self._fingers[finger]
        return self._rows.cylinders(f.start, f.start + f.count, self.mcc)

    def _neighbours(
        self, probe: NDArray[np.uint8], nprobe: int | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The fingers of each probe cylinder's nearest enrolled cylinders (-1: none)
        and their similarity: exact (Dice of the bits, the MCC paper's binary
        similarity) over small galleries, FAISS's cosine of the codes over large ones."""
        if self._faiss is None:
            rows = self._rows
            bits = np.concatenate(list(rows.bits.chunks()))
            sim = dice(probe, bits)
            dead = np.concatenate(list(rows.dead.chunks()))
            sim[:, dead] = 0.0
            k = min(self.params.neighbours, rows.n)
            found = np.argpartition(-sim, k - 1, axis=1)[:, :k].astype(np.int64)
            owners = np.concatenate(list(rows.owner.chunks()))
            return owners[found], np.take_along_axis(sim, found, axis=1)
        k = min(self.params.neighbours, self._voting_rows)
        if nprobe is None:
            sim, found = self._faiss.search(_unit(probe), k)
        else:
            lists = _faiss.SearchParametersIVF(nprobe=nprobe)
            quantizer = faiss.downcast_index(faiss.extract_index_ivf(self._faiss).quantizer)
            if hasattr(quantizer, "hnsw"):
                lists.quantizer_params = _faiss.SearchParametersHNSW(efSearch=max(32, 2 * nprobe))
            chosen = _faiss.SearchParametersPreTransform(index_params=lists)
            sim, found = self._faiss.search(_unit(probe), k, params=chosen)
        return found, np.where(found >= 0, sim, 0.0).astype(np.float64)

    def vote(
        self, probe: Cylinders, *, allowed: Filter | None = None, limit: int | None = None
    ) -> list[tuple[int, float]]:
        """The fingers with most votes, best first (before the first pass)."""
        return self.votes([probe], [allowed], limit=limit)[0]

    def votes(
        self,
        probes: list[Cylinders],
        allowed: list[Filter | None],
        *,
        limit: int | None = None,
        nprobe: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        """:meth:`vote` for several probes (a card's fingers): one neighbour search
        (``nprobe``: lists visited, if not the index's)."""
        limit = self.params.prefilter if limit is None else limit
        packed = [
            np.packbits(p.bits.astype(bool), axis=1)
            if len(p)
            else np.zeros((0, self.mcc.bits // 8), np.uint8)
            for p in probes
        ]
        packed = [b[_ones(b) > 0] for b in packed]
        sizes = [len(b) for b in packed]
        if self.cylinders == 0 or sum(sizes) == 0:
            return [[] for _ in probes]
        fingers, sim = self._neighbours(np.concatenate(packed), nprobe)
        out: list[list[tuple[int, float]]] = []
        first = 0
        for n, keep in zip(sizes, allowed, strict=True):
            end = first + n
            out.append(self._tally(fingers[first:end], sim[first:end], keep, limit) if n else [])
            first = end
        return out

    def _tally(
        self,
        fingers: NDArray[np.int64],
        sim: NDArray[np.float64],
        allowed: Filter | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        """The vote of one probe's cylinders, from their neighbours (fingers, similarity)."""
        k = fingers.shape[1]
        if k > self.params.floor_rank:
            floor = np.partition(sim, k - 1 - self.params.floor_rank, axis=1)
            sim = sim - floor[:, k - 1 - self.params.floor_rank, None]
        q = np.repeat(np.arange(len(fingers)), k)
        f = fingers.ravel()
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
        totals = np.bincount(inverse, weights=s).astype(np.float64)
        table = self._table
        if self.params.vote_norm:
            totals /= np.maximum(table.voting[unique], 1.0) ** self.params.vote_norm
        keep = table.known[unique]
        if isinstance(allowed, Scope):
            keep &= allowed.mask(table.position[unique], table.latent[unique])
            allowed = None
        unique, totals = unique[keep], totals[keep]
        out: list[tuple[int, float]] = []
        for i in np.argsort(-totals, kind="stable"):
            finger = int(unique[i])
            if allowed is not None and not allowed(self._fingers[finger].label):
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

    def search_cards(
        self,
        probes: list[tuple[int, Cylinders]],
        *,
        max_candidates: int,
        latent: bool | None = None,
        cards: int | None = None,
    ) -> list[CardHit]:
        """A card (its fingers as (position, cylinders)) against the enrolled cards.

        1. Each probe finger votes among the fingers its position can be; its votes
           are scaled so its best finger has 1 and summed per card: a mate card
           gathers votes from most fingers, a stranger's rarely from more than one.
        2. The best ``card_prefilter`` cards get the first pass finger by finger
           (the probe finger against the card's fingers of its position), summed.
        3. The best ``cards`` of those are compared in full finger by finger and
           ranked by the sum rule: the mean score over the probe's fingers.
        """
        limit = self.params.cards if cards is None else cards
        keeps: list[Filter] = [Scope(position, latent) for position, _ in probes]
        summed: dict[int, float] = {}
        voting = self.votes(
            [cyl for _, cyl in probes],
            list(keeps),
            limit=self.params.card_votes,
            nprobe=self.params.card_nprobe,
        )
        for voted in voting:
            if not voted:
                continue
            fingers = np.array([f for f, _ in voted], np.int64)
            scaled = np.array([v for _, v in voted]) / voted[0][1]
            records = self._table.record[fingers].tolist()
            for record, votes in zip(records, scaled.tolist(), strict=True):
                summed[record] = summed.get(record, 0.0) + votes
        best = sorted(summed, key=lambda r: -summed[r])[: self.params.card_prefilter]
        if len(best) > limit:
            cheap = np.zeros(len(best))
            for (_, cyl), keep in zip(probes, keeps, strict=True):
                pairs = self._card_fingers(best, keep)
                scores = self.first_pass(cyl, [f for _, f in pairs])
                per_card = np.zeros(len(best))
                np.maximum.at(per_card, [at for at, _ in pairs], scores)
                cheap += per_card
            best = [best[i] for i in np.argsort(-cheap, kind="stable")[:limit]]
        found: dict[int, dict[int, tuple[int, Comparison]]] = {r: {} for r in best}
        for i, ((_, cyl), keep) in enumerate(zip(probes, keeps, strict=True)):
            pairs = self._card_fingers(best, keep)
            compared = compare_many(cyl, [self.cylinders_of(f) for _, f in pairs], self.mcc)
            for (at, f), comparison in zip(pairs, compared, strict=True):
                known = found[best[at]].get(i)
                if known is None or comparison.score > known[1].score:
                    found[best[at]][i] = (f, comparison)
        hits = [
            CardHit(
                record,
                sum(c.score for _, c in found[record].values()) / max(1, len(probes)),
                found[record],
                summed[record],
            )
            for record in best
        ]
        hits.sort(key=lambda h: -h.score)
        return hits[:max_candidates]

    def _card_fingers(self, records: list[int], keep: Filter) -> list[tuple[int, int]]:
        """(index into ``records``, finger) of the records' fingers that ``keep`` allows."""
        return [
            (at, f)
            for at, record in enumerate(records)
            for f in self._by_record.get(record, [])
            if keep(self._fingers[f].label)
        ]

    def first_pass(self, probe: Cylinders, fingers: list[int]) -> NDArray[np.float64]:
        """A cheap score per finger: LSS-R over its best cylinder pairs with the probe
        (match.quick_scores), from the binary similarity 2|a & b| / (|a| + |b|)."""
        known = [self._fingers[f] for f in fingers]
        sizes = np.array([f.count for f in known], np.int64)
        if len(probe) == 0 or sizes.sum() == 0:
            return np.zeros(len(fingers))
        rows = self._row_indices(known)
        sim = dice(np.packbits(probe.bits.astype(bool), axis=1), self._rows.bits.take(rows))
        return quick_scores(
            sim,
            probe,
            sizes,
            self._rows.columns["xy"].take(rows),
            self._rows.columns["angle"].take(rows),
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
            del hits[max_candidates:]
        return hits

    def fingers(self) -> list[int]:
        return list(self._fingers)

    def nbytes(self) -> int:
        """Bytes in memory: the FAISS part, the per-finger records (estimated from
        their sizes in CPython), rows added since the last load."""
        fingers = len(self._fingers) * _FINGER_BYTES + len(self._by_record) * _RECORD_BYTES
        total = fingers + self._rows.memory_nbytes()
        if self._faiss is None:
            return total
        ivf = faiss.extract_index_ivf(self._faiss)
        lists = int(ivf.ntotal) * (int(ivf.code_size) + 8)
        quantizer = int(ivf.nlist) * int(ivf.d) * 4 * 2  # centres and their graph, roughly
        return total + lists + quantizer + 4 * self.mcc.bits * int(ivf.d)  # + the PCA matrix

    def disk_nbytes(self) -> int:
        """Bytes of the memory-mapped row store (read only where a search looks)."""
        return self._rows.disk_nbytes()

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: Path, **meta: Any) -> None:
        """The row store, the fingers and the trained FAISS index, each under a new
        generation; meta.json last, naming the generation (a torn save is rebuilt at
        load), then the older generations are removed."""
        directory.mkdir(parents=True, exist_ok=True)
        generation = secrets.token_hex(8)
        rows_dir = directory / f"rows-{generation}"
        ids = sorted(self._fingers)
        known = [self._fingers[f] for f in ids]
        self._rows.save(rows_dir)
        np.savez(
            rows_dir / "fingers.npz",
            fingers=np.array(ids, np.int64),
            starts=np.array([f.start for f in known], np.int64),
            counts=np.array([f.count for f in known], np.int64),
            voting=np.array([f.voting for f in known], np.int64),
            labels=np.array(
                [(f.label.record, f.label.position, int(f.label.latent)) for f in known],
                np.int64,
            ).reshape(-1, 3),
        )
        faiss_file = None
        if self._faiss is not None:
            faiss_file = f"cylinders-{generation}.faiss"
            faiss.write_index(self._faiss, str(rows_dir / faiss_file))
        info = {
            "version": FORMAT_VERSION,
            "generation": generation,
            "faiss": faiss_file,
            "trained_rows": self._trained_rows,
            "voting_rows": self._voting_rows,
            "faiss_rows": 0 if self._faiss is None else int(self._faiss.ntotal),
            "last_id": self.last_id,
            **meta,
        }
        (directory / "meta.json.tmp").write_text(json.dumps(info))
        (directory / "meta.json.tmp").replace(directory / "meta.json")
        # Mapped files of an older generation stay readable to whoever maps them.
        for old in directory.glob("rows-*"):
            if old != rows_dir:
                shutil.rmtree(old, ignore_errors=True)
        for old in directory.glob("cylinders*"):  # format 3
            old.unlink(missing_ok=True)

    @classmethod
    def load(
        cls, directory: Path, mcc: MccParams | None = None, params: IndexParams | None = None
    ) -> tuple[FingerIndex, dict[str, Any]]:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("version") != FORMAT_VERSION:
            raise StorageError(f"the finger index in {directory} has an unknown version")
        index = cls(mcc, params)
        rows_dir = directory / f"rows-{meta['generation']}"
        if not (rows_dir / "fingers.npz").is_file():
            raise StorageError(f"the finger index in {directory} is incomplete")
        index._rows = _Rows.open(rows_dir, index.mcc)
        with np.load(rows_dir / "fingers.npz") as z:
            fingers, starts, counts = z["fingers"], z["starts"], z["counts"]
            voting, labels = z["voting"], z["labels"]
        if int((starts + counts).max(initial=0)) > index._rows.n:
            raise StorageError(f"the finger index in {directory} is inconsistent")
        for f, start, n, v, (record, position, latent) in zip(
            fingers.tolist(),
            starts.tolist(),
            counts.tolist(),
            voting.tolist(),
            labels.tolist(),
            strict=True,
        ):
            label = Label(record, position, bool(latent))
            index._fingers[f] = _Finger(start, n, v, label)
            index._table.set(f, v, label)
            index._by_record.setdefault(record, []).append(f)
        index._voting_rows = int(meta.get("voting_rows", int(voting.sum())))
        index._trained_rows = int(meta.get("trained_rows", index._voting_rows))
        index.last_id = int(meta.get("last_id", 0))
        faiss_file = meta.get("faiss")
        if faiss_file is not None:
            try:
                index._faiss = faiss.read_index(str(rows_dir / faiss_file))
            except RuntimeError:
                index._faiss = None
            if index._faiss is not None:
                index._tune(index._faiss)
            if index._faiss is None or index._faiss.ntotal != meta.get("faiss_rows"):
                index._retrain()
        return index, meta


# Rows turned into floats at a time (1,536 floats each: 300 MB).
_CHUNK = 50_000
# CPython sizes: a slotted _Finger and its Label (~120 bytes), their ints, the dict
# entry and key; a record's list of fingers and its dict entry.
_FINGER_BYTES = 280
_RECORD_BYTES = 200


def _ones(bits: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Bits set in each packed row: the Hamming distance to a row of zeros, counted
    by FAISS with the processor's popcount (a byte table in numpy took 10 times as
    long, and the first pass counts tens of thousands of rows)."""
    bits = np.ascontiguousarray(bits, np.uint8)
    if bits.ndim != 2 or bits.shape[1] % 8 or len(bits) == 0:
        return np.asarray(_POPCOUNT[bits].sum(axis=-1, dtype=np.int64))
    out = np.empty((len(bits), 1), np.int32)
    zero = np.zeros((1, bits.shape[1]), np.uint8)
    _faiss.hammings(
        faiss.swig_ptr(bits), faiss.swig_ptr(zero), len(bits), 1, bits.shape[1], faiss.swig_ptr(out)
    )
    return out[:, 0].astype(np.int64)


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
