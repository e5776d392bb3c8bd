"""The FAISS vector index of one national face gallery.

Templates (float32, ``dim`` wide) are kept in an append-only row store, in RAM or in
a file mapped with ``np.memmap`` when the index has a directory, with one row per
record: its int64 record id, a data-subject category code and a date of birth. The
FAISS structure is built over row positions (FAISS label == row position), so
filters and tombstones are one bitmap over rows, applied *inside* the search through
an ``IDSelectorBitmap`` (never by post-filtering, which loses results).

The index kind follows the gallery size (DESIGN.md sections 4 and 5):

- ``flat``: exact ``IndexFlatL2`` below ``IndexSettings.exact_below``;
- ``hnsw``: ``HNSW{m},Flat`` over full vectors from there up to ``compressed_above``;
- ``ivf-pq128x4fs``: ``IVF{nlist},PQ{dim}x4fs`` above that: one 4-bit code per
  dimension (64 bytes per 128-D template, an eighth of the floats) scanned with
  FAISS's SIMD "fast-scan" kernels, then the short list (``k * rerank_factor``)
  re-ranked exactly from the float rows. At 30M the float rows (15 GB) stay in the
  memory-mapped file and FAISS holds 72 bytes per template (code and id);
- above ``IndexSettings.large_above`` (16M): the same codes in 65536 lists
  (``IVF65536,PQ128x4fs``). With 2048 lists a 30M search would scan 1/8 of the
  gallery (3.75M codes, ~37 ms); with 65536 lists of ~460 templates it scans
  ``ivf_large_nprobe`` lists. Flat k-means of 65536 centres would take hours on two
  cores, so the build trains them by two-level k-means and assigns rows by matrix
  products (``_build_two_level``). The list centres are searched exhaustively (32 MB,
  one pass per search or insert): an HNSW graph over them (``IVF65536_HNSW32,..``,
  still accepted) missed the nearest list of some probes, even with efSearch 1024, and
  put some inserts into lists far from them, so that 3 to 9 in 1,000 new templates
  were not found by their own probe (1M templates, 16384 lists, 2026-12-07).

Why, measured on 1M synthetic dlib-shaped templates (``bench/synthetic.py``; one
thread, top 50): HNSW32 (efConstruction 100) finds the true mate only 88 % of the
time at efSearch 96 and 97 % at efSearch 2048 (9 ms). People have several photos
each, tight clusters that HNSW's neighbour pruning leaves with few incoming links.
IVF finds mates at any size once it scans enough of the gallery, and what it misses
near the 0.6 threshold depends on the share scanned: with 1024 lists, 1/16 of them
gave a threshold recall of 0.956 and 1/8 gave 0.988-0.995 (two k-means runs); with
2048 lists, 1/8 gave 0.997. 4-bit fast-scan codes cost ~10 ns per template scanned,
8-bit SQ codes ~50; ``PQ64x4fs`` (32 bytes) needed a short list of 2000 for the
threshold recall ``PQ128x4fs`` reaches with 200. So the default tiers are flat, then
IVF-PQ fast-scan (HNSW stays available through the settings).

``IndexSettings.factory`` forces a kind (``Flat``, ``HNSW..``, ``IVF..``). Adding after
a build goes into the current structure even when the size crosses a tier boundary;
``rebuild()`` re-chooses the kind (``needs_rebuild`` says when it should be called).
Removal marks a tombstone bit that every search honours; ``rebuild()`` drops the rows.
Filters are cached as bitmaps per filter and patched by each insert and delete (a
30M bitmap costs ~0.1 s to recompute), so the next search sees the change at once.

Every distance returned is the Euclidean (not squared) distance recomputed from the
float rows, so ``search`` and ``search_exact`` agree to the bit on shared results.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from prum.categories.face.config import IndexSettings
from prum.errors import BadInput, InvalidRecord, ModelMismatch, StorageError

# faiss 1.15's bundled stubs lack SearchParametersHNSW, the HNSW graph arrays and the
# array form of IDSelectorBitmap: use the module untyped rather than scatter ignores.
faiss: Any = _faiss

Progress = Callable[[str, int, int], None]
"""Called with (step, done, total) during long builds."""

UNKNOWN_DOB: Final = int(np.iinfo(np.int32).min)
"""``dob_days`` of a record whose date of birth is unknown."""

# A filter that keeps under 2 % of the gallery, or under 20k rows, is answered by an
# exact scan of just those rows: 20k rows cost about 1 ms on one core (as much as one
# unfiltered approximate search at 1M), and below 2 % a graph search would need an
# efSearch above 50 x its default to keep recall, which costs more than the scan.
_SUBSET_EXACT_SHARE: Final = 0.02
_SUBSET_EXACT_ROWS: Final = 20_000
# Upper bound of the widened HNSW efSearch (reached at ~2 % share with the defaults).
_MAX_EF_SEARCH: Final = 8192
# Re-ranking reads up to this many rows one by one with pread (see _Rows); more are
# read through the mapping, where one copy is cheaper than thousands of system calls.
_PREAD_MAX_ROWS: Final = 4096
# Rows per block for brute-force scans, bulk adds and compaction: 32 MiB of floats.
_BLOCK_ROWS: Final = 65_536
# k-means sample per inverted list: FAISS asks for >= 39; 64 costs a third more
# training time than 39 and still trains 2048 lists in well under a minute.
_TRAIN_PER_LIST: Final = 64
# Above this many inverted lists the coarse quantizer is trained by two-level k-means
# (faiss.contrib.clustering), on 48 samples per list (FAISS warns below 39), 10 iterations.
_TWO_LEVEL_ABOVE: Final = 8192
_TRAIN_PER_LIST_TWO_LEVEL: Final = 48
_TWO_LEVEL_NITER: Final = 10
# Inverted lists above IndexSettings.large_above (a 30M gallery: ~460 per list).
_LARGE_NLIST: Final = 65_536
_TWO_LEVEL_FACTORY: Final = re.compile(r"IVF(\d+)(?:_HNSW(\d+))?,PQ(\d+)x4fs")
# efSearch of an HNSW coarse quantizer while templates are assigned to lists: with 40,
# some inserts went to lists that no later search for them probed (see above).
_ADD_EF_SEARCH: Final = 512
# Inverted lists of the compressed kind. With ivf_nprobe = 256 a search scans 1/8 of
# the gallery, the share that keeps threshold recall >= 0.99 on dlib-shaped data (see
# above). 4096 lists did slightly better at the same share (0.996 at 1/9) but double
# k-means and coarse-quantizer time. nlist stays fixed whatever the size, so recall
# holds and search cost grows linearly with the gallery (~1.6 ms at 1M).
_NLIST: Final = 2048
# Shortest exact re-ranking list of a compressed kind, whatever k is.
_MIN_SHORTLIST: Final = 100
# Filter bitmaps of the last few distinct filters (one bit per row: 3.75 MB at 30M).
_MASK_CACHE_SIZE: Final = 4
# Rebuild when more than this share of rows are tombstones.
_TOMBSTONE_SHARE: Final = 0.10

_STATE_FILE: Final = "state.json"
_FORMAT: Final = 1
_OWN_FILE = re.compile(r"^(vectors|attrs|index)-(\d+)\.(f32|npz|faiss)$")


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` templates: 2048, fewer when k-means would lack data."""
    lists = 16
    while lists * 2 <= min(_NLIST, n // _TRAIN_PER_LIST):
        lists *= 2
    return lists


def kind_of(factory: str) -> str:
    """The kind name of a FAISS factory string (``flat``, ``hnsw``, ``ivf-<codes>``)."""
    if factory == "Flat":
        return "flat"
    if re.fullmatch(r"HNSW\d+(,Flat)?", factory):
        return "hnsw"
    match = re.fullmatch(r"IVF\d+(_HNSW\d+)?,(\w+)", factory)
    if match:
        codes = match.group(2).lower()
        return "ivf-flat" if codes == "flat" else f"ivf-{codes}"
    raise InvalidRecord(
        f"unsupported FAISS factory string {factory!r}: use Flat, HNSW<m>[,Flat] or "
        "IVF<nlist>[_HNSW<m>],<codes>",
        factory=factory,
    )


@dataclass(frozen=True)
class _Filter:
    """Rows a search may return: a bitmap over rows (None: every row), and for small
    subsets the row positions themselves, which the exact subset scan needs."""

    bitmap: npt.NDArray[np.uint8] | None
    count: int
    rows: int  # rows the bitmap covers
    subset: npt.NDArray[np.int64] | None = None

    def positions(self, start: int = 0) -> npt.NDArray[np.int64]:
        if self.subset is not None:
            return self.subset[self.subset >= start]
        if self.bitmap is None:
            return np.arange(start, self.rows, dtype=np.int64)
        bits = np.unpackbits(self.bitmap, count=self.rows, bitorder="little")
        return np.flatnonzero(bits[start:]).astype(np.int64) + start


class _ReadWriteLock:
    """Many concurrent searches, or one mutation; waiting writers go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Rows:
    """Append-only float32 rows in RAM, or in a file mapped with np.memmap.

    A search re-ranks a few hundred rows scattered over the file; ``take`` reads them
    with ``pread`` rather than through the mapping, so that they come from the page
    cache (which the kernel may drop) instead of joining the serving process's
    resident memory: at 30M, 1,000 searches through the mapping left 6.4 GiB of the
    15 GB file resident in the process (fault-around maps 64 KiB per touched row).
    """

    def __init__(self, dim: int, path: Path | None, count: int = 0) -> None:
        self.dim = dim
        self.path = path
        self.count = count
        self._data: npt.NDArray[np.float32] = np.empty((0, dim), np.float32)
        self._map_object: np.memmap[Any, Any] | None = None
        self._reader: Any = None  # unbuffered file object of the mapped file
        if path is not None and path.exists() and path.stat().st_size:
            self._map(path.stat().st_size // (4 * dim))

    @property
    def view(self) -> npt.NDArray[np.float32]:
        return self._data[: self.count]

    @property
    def ram_bytes(self) -> int:
        return 0 if self.path is not None else int(self._data.nbytes)

    def _map(self, capacity: int) -> None:
        assert self.path is not None
        self._map_object = np.memmap(self.path, np.float32, "r+", shape=(capacity, self.dim))
        # A plain ndarray view: np.memmap's Python-level __getitem__ costs ~30 us a call.
        self._data = np.asarray(self._map_object)
        if self._reader is None:
            self._reader = open(self.path, "rb", buffering=0)  # noqa: SIM115 - lives with the rows

    def take(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The rows at ``positions`` (sorted, distinct, below ``count``), as a copy."""
        if self._reader is None or len(positions) > _PREAD_MAX_ROWS:
            return self._data[positions]
        size = 4 * self.dim
        fd = self._reader.fileno()
        # Writes through the shared mapping are in the same page cache: pread sees them.
        raw = b"".join([os.pread(fd, size, int(p) * size) for p in positions.tolist()])
        return np.frombuffer(raw, np.float32).reshape(len(positions), self.dim)

    def append(self, x: npt.NDArray[np.float32]) -> None:
        need = self.count + len(x)
        if need > len(self._data):
            capacity = max(need, 2 * len(self._data), 1024)
            if self.path is None:
                grown = np.empty((capacity, self.dim), np.float32)
                grown[: self.count] = self.view
                self._data = grown
            else:
                self.flush()
                with open(self.path, "ab") as f:
                    f.truncate(capacity * self.dim * 4)  # sparse: no bytes written
                self._map(capacity)
        self._data[self.count : need] = x
        self.count = need

    def flush(self) -> None:
        if self._map_object is not None:
            self._map_object.flush()


def _grown(a: npt.NDArray[Any], need: int) -> npt.NDArray[Any]:
    if need <= len(a):
        return a
    out = np.empty(max(need, 2 * len(a), 1024), a.dtype)
    out[: len(a)] = a
    return out


def _faiss_bytes(index: Any) -> int:
    """RAM a FAISS index holds, from its arrays (serialising would copy it)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):
        return int(index.codes.size())
    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        graph = 4 * h.neighbors.size() + 8 * h.offsets.size() + 4 * h.levels.size()
        return int(graph) + _faiss_bytes(index.storage)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        lists = ivf.invlists.compute_ntotal() * (ivf.code_size + 8) + 16 * ivf.nlist
        return int(lists) + _faiss_bytes(ivf.quantizer)
    return len(faiss.serialize_index(index))


class VectorIndex:
    """Face templates of one gallery keyed by record id, searchable by L2 distance."""

    def __init__(self, dim: int, settings: IndexSettings, directory: Path | None = None):
        if dim < 1:
            raise InvalidRecord(f"template dimension must be positive, not {dim}", dim=dim)
        self.dim = dim
        self.settings = settings
        self.directory = directory
        self.meta: dict[str, Any] = {}
        self.kind = "flat"
        self.factory = "Flat"
        self._index: Any = None  # FAISS index over rows [0, self._indexed)
        self._structure_of: Any = None
        self._structure_cache = ("other", 0, False)
        self._indexed = 0
        self._generation = 0
        self._vector_generation = 0
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                # A fresh index in a used directory must not write into files that
                # the saved state still references: start past their generations.
                used = [int(m[2]) for f in directory.iterdir() if (m := _OWN_FILE.match(f.name))]
            except OSError as e:
                raise StorageError(f"cannot use index directory {directory}: {e}") from e
            self._generation = self._vector_generation = max(used, default=-1) + 1
        self._rows = _Rows(dim, self._vector_path(self._vector_generation))
        self._ids = np.empty(0, np.int64)
        self._categories = np.empty(0, np.uint8)
        self._dob = np.empty(0, np.int32)
        self._live = np.empty(0, bool)
        self._n_live = 0
        self._order: npt.NDArray[np.int64] | None = None  # argsort of ids, None if sorted
        self._version = 0
        self._masks: OrderedDict[tuple[Any, ...], _Filter] = OrderedDict()
        self._mask_lock = threading.Lock()
        self._rw = _ReadWriteLock()
        self._mutation = threading.RLock()

    # --- persistence ---------------------------------------------------------------

    def _vector_path(self, generation: int) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"vectors-{generation}.f32"

    @classmethod
    def open(cls, directory: Path, dim: int, settings: IndexSettings) -> VectorIndex:
        """Load the index saved in ``directory``, or start an empty one there."""
        self = cls(dim, settings, directory)
        state_path = directory / _STATE_FILE
        if not state_path.exists():
            return self
        try:
            state = json.loads(state_path.read_text())
            if state.get("format") != _FORMAT or state["dim"] != dim:
                raise StorageError(
                    f"index in {directory} has format {state.get('format')} and dimension "
                    f"{state.get('dim')}; expected {_FORMAT} and {dim}",
                    directory=str(directory),
                )
            n = int(state["rows"])
            with np.load(directory / state["attrs"]) as attrs:
                self._ids = np.array(attrs["ids"], np.int64)
                self._categories = np.array(attrs["categories"], np.uint8)
                self._dob = np.array(attrs["dob_days"], np.int32)
                self._live = np.array(attrs["live"], bool)
            if not len(self._ids) == len(self._live) == n:
                raise StorageError(f"attributes in {directory} do not match the state file")
            self._vector_generation = int(state["vector_generation"])
            self._rows = _Rows(dim, self._vector_path(self._vector_generation), n)
            if len(self._rows._data) < n:
                raise StorageError(f"vector file in {directory} is shorter than {n} rows")
            self._generation = int(state["generation"])
            self._n_live = int(self._live.sum())
            self.meta = dict(state["meta"])
            self.kind, self.factory = state["kind"], state["factory"]
            self._indexed = int(state["indexed"])
            if state["index"]:
                self._index = faiss.read_index(str(directory / state["index"]))
            elif self._indexed:
                self._index = faiss.IndexFlatL2(dim)
                self._add_blocks(self._index, 0, self._indexed)
            if self._index is not None and self._index.ntotal != self._indexed:
                raise StorageError(f"FAISS index in {directory} does not match the state file")
            self._order = None if _is_sorted(self._ids) else np.argsort(self._ids, kind="stable")
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise StorageError(f"cannot load the vector index in {directory}: {e}") from e
        return self

    def save(self) -> None:
        """Write the index into its directory; a crash leaves the previous save intact.

        Attribute and FAISS files get a new generation number and the state file,
        replaced last with ``os.replace``, says which files are current. Vector rows are
        append-only, so the vector file is shared by successive saves until a
        compacting ``rebuild()`` starts a new one.
        """
        if self.directory is None:
            raise StorageError("this vector index has no directory to save into")
        directory = self.directory
        with self._mutation:
            generation = self._generation + 1
            n = self._rows.count
            try:
                self._rows.flush()
                attrs = f"attrs-{generation}.npz"
                with _atomic(directory / attrs) as f:
                    np.savez(
                        f,
                        ids=self._ids[:n],
                        categories=self._categories[:n],
                        dob_days=self._dob[:n],
                        live=self._live[:n],
                    )
                index_name = ""
                if self._index is not None and self.kind != "flat":
                    index_name = f"index-{generation}.faiss"
                    tmp = directory / f".{index_name}.tmp"
                    faiss.write_index(self._index, str(tmp))
                    _fsync_path(tmp)
                    os.replace(tmp, directory / index_name)
                state = {
                    "format": _FORMAT,
                    "dim": self.dim,
                    "rows": n,
                    "generation": generation,
                    "vector_generation": self._vector_generation,
                    "attrs": attrs,
                    "index": index_name,
                    "indexed": self._indexed,
                    "kind": self.kind,
                    "factory": self.factory,
                    "meta": self.meta,
                }
                with _atomic(directory / _STATE_FILE) as f:
                    f.write(json.dumps(state, indent=1).encode())
                _fsync_path(directory)
            except (OSError, RuntimeError, TypeError) as e:
                raise StorageError(f"cannot save the vector index in {directory}: {e}") from e
            self._generation = generation
            self._remove_stale_files(state)

    def _remove_stale_files(self, state: dict[str, Any]) -> None:
        """Delete files of older saves (and of crashed ones) once a save has succeeded."""
        assert self.directory is not None
        keep = {state["attrs"], state["index"], f"vectors-{state['vector_generation']}.f32"}
        current = self._rows.path.name if self._rows.path is not None else ""
        for path in self.directory.iterdir():
            if _OWN_FILE.match(path.name) and path.name not in keep and path.name != current:
                path.unlink(missing_ok=True)

    # --- mutation ------------------------------------------------------------------

    def add(
        self,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        categories: npt.ArrayLike,
        dob_days: npt.ArrayLike,
        *,
        defer_indexing: bool = False,
    ) -> None:
        """Add new templates; nothing changes if any of them is invalid.

        With ``defer_indexing`` the rows are stored but not put in the FAISS structure
        (a bulk load then calls ``rebuild()`` once); until then searches scan them
        exactly, so they are never missed.
        """
        id_arr, x, cat, dob = self._check_new(ids, vectors, categories, dob_days)
        with self._mutation:
            with self._rw.write():
                self._append(id_arr, x, cat, dob)
                if self._index is not None and not defer_indexing:
                    try:
                        self._add_blocks(self._index, self._indexed, self._rows.count)
                    except RuntimeError as e:
                        raise StorageError(f"FAISS could not add the templates: {e}") from e
                    self._indexed = self._rows.count
            if self._index is None and not defer_indexing:
                # The rows are stored; if a forced kind cannot be built from so few
                # (IVF needs a sample per list), they stay searched exactly, and
                # rebuild() reports the error.
                with contextlib.suppress(StorageError):
                    self._swap(*self._build())

    def _append(
        self,
        id_arr: npt.NDArray[np.int64],
        x: npt.NDArray[np.float32],
        cat: npt.NDArray[np.uint8],
        dob: npt.NDArray[np.int32],
    ) -> None:
        present = self._positions(id_arr)
        if (present >= 0).any():
            dup = id_arr[present >= 0][:5].tolist()
            raise InvalidRecord(f"record ids already in the index: {dup}", ids=dup)
        n, m = self._rows.count, len(id_arr)
        try:
            self._rows.append(x)
        except OSError as e:
            raise StorageError(f"cannot write templates: {e}") from e
        for name, values in (
            ("_ids", id_arr),
            ("_categories", cat),
            ("_dob", dob),
            ("_live", np.ones(m, bool)),
        ):
            arr = _grown(getattr(self, name), n + m)
            arr[n : n + m] = values
            setattr(self, name, arr)
        self._n_live += m
        self._carry_masks(appended_from=n)
        # Record ids come from a database sequence, so they normally arrive ascending
        # and the id array is its own sorted lookup; otherwise keep an argsort of it.
        ascending = _is_sorted(id_arr) and (n == 0 or not m or id_arr[0] >= self._ids[n - 1])
        if self._order is not None or not ascending:
            self._order = np.argsort(self._ids[: n + m], kind="stable")

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove templates by record id; returns how many were present."""
        id_arr = _as_ids(ids)
        with self._mutation, self._rw.write():
            pos = self._positions(id_arr)
            pos = np.unique(pos[pos >= 0])
            self._live[pos] = False
            self._n_live -= len(pos)
            if len(pos):
                self._carry_masks(removed=pos)
            return len(pos)

    def rebuild(self, progress: Progress | None = None) -> None:
        """Re-choose the kind for the live size, drop tombstones, rebuild the FAISS index.

        Searches keep running on the old structure meanwhile (other mutations wait).
        ``progress(step, done, total)`` is called as rows are compacted, the quantizer
        trained and rows added (an HNSW build of 1M takes minutes on two cores).
        """
        with self._mutation:
            self._swap(*self._build(progress))

    def _build(self, progress: Progress | None = None) -> tuple[Any, ...]:
        """A compacted copy of the rows and a new FAISS index over them."""
        n = self._rows.count
        keep = np.flatnonzero(self._live[:n])
        if len(keep) == n:
            rows, vgen = self._rows, self._vector_generation
            arrays = [self._ids, self._categories, self._dob, self._live]
        else:
            vgen = self._vector_generation + 1
            path = self._vector_path(vgen)
            if path is not None:
                path.unlink(missing_ok=True)
            rows = _Rows(self.dim, path)
            for lo in range(0, len(keep), _BLOCK_ROWS):
                rows.append(self._rows.view[keep[lo : lo + _BLOCK_ROWS]])
                if progress:
                    progress("compact", min(len(keep), lo + _BLOCK_ROWS), len(keep))
            arrays = [a[keep] for a in (self._ids, self._categories, self._dob, self._live)]
        factory = self.settings.factory or self._default_factory(len(keep))
        kind = kind_of(factory)
        if not len(keep):
            return rows, vgen, arrays, None, "flat", "Flat"
        try:
            large = _TWO_LEVEL_FACTORY.fullmatch(factory)
            if large and int(large[1]) > _TWO_LEVEL_ABOVE:
                index = self._build_two_level(rows, len(keep), large, progress)
                return rows, vgen, arrays, index, kind, factory
            index = faiss.index_factory(self.dim, factory, faiss.METRIC_L2)
            hnsw = faiss.downcast_index(index)
            if isinstance(hnsw, faiss.IndexHNSW):
                hnsw.hnsw.efConstruction = self.settings.hnsw_ef_construction
            if not index.is_trained:
                if progress:
                    progress("train", 0, len(keep))
                self._train(index, rows, len(keep))
            self._add_blocks(index, 0, len(keep), rows, progress)
        except RuntimeError as e:
            raise StorageError(f"FAISS could not build {factory!r}: {e}") from e
        return rows, vgen, arrays, index, kind, factory

    def _swap(
        self,
        rows: _Rows,
        vgen: int,
        arrays: list[npt.NDArray[Any]],
        index: Any,
        kind: str,
        factory: str,
    ) -> None:
        with self._rw.write():
            self._rows, self._vector_generation = rows, vgen
            self._ids, self._categories, self._dob, self._live = arrays
            self._index, self.kind, self.factory = index, kind, factory
            self._indexed = rows.count
            self._n_live = rows.count
            self._order = (
                None
                if _is_sorted(self._ids[: rows.count])
                else np.argsort(self._ids[: rows.count], kind="stable")
            )
            self._version += 1

    def _default_factory(self, n: int) -> str:
        s = self.settings
        if n < s.exact_below:
            return "Flat"
        if n <= s.compressed_above:
            return f"HNSW{s.hnsw_m},Flat"
        if n > s.large_above:
            return f"IVF{_LARGE_NLIST},PQ{self.dim}x4fs"
        return f"IVF{nlist_for(n)},PQ{self.dim}x4fs"

    def _train(self, index: Any, rows: _Rows, n: int) -> None:
        ivf = faiss.try_extract_index_ivf(index)
        sample = n if ivf is None else min(n, _TRAIN_PER_LIST * ivf.nlist)
        rng = np.random.default_rng(n)
        pick = np.sort(rng.choice(n, size=sample, replace=False))
        index.train(np.ascontiguousarray(rows.view[pick]))

    def _build_two_level(
        self, rows: _Rows, n: int, factory: re.Match[str], progress: Progress | None
    ) -> Any:
        """``IVF<nlist>[_HNSW<m>],PQ<M>x4fs`` with tens of thousands of lists.

        The lists come from two-level k-means (:func:`_two_level_kmeans`). Rows are
        assigned to them by matrix products (the two nearest coarse clusters, then
        the nearest list inside them), not by one HNSW search per row (measured on
        the shared two-core machine at load 12-18 on 2026-12-07: 6,100 rows/s, against
        about 4,000 with HNSW efSearch 128; flat k-means and flat assignment to 65536
        centres would take hours). The codes are added to a plain IVF-PQ with these
        assignments, then repacked for fast-scan; the list centres are kept in the
        coarse quantizer (flat, or the HNSW graph the factory names) for searching and
        for later adds.
        """
        nlist, subquantizers = int(factory[1]), int(factory[3])
        rng = np.random.default_rng(n)
        sample = min(n, _TRAIN_PER_LIST_TWO_LEVEL * nlist)
        pick = np.sort(rng.choice(n, size=sample, replace=False))
        xt = np.ascontiguousarray(rows.view[pick])
        if progress:
            progress("train", 0, n)
        coarse, bounds, centres = _two_level_kmeans(xt, nlist)
        quantizer = (
            faiss.IndexHNSWFlat(self.dim, int(factory[2]))
            if factory[2]
            else faiss.IndexFlatL2(self.dim)
        )
        quantizer.add(centres)
        plain = faiss.IndexIVFPQ(quantizer, self.dim, nlist, subquantizers, 4)
        plain.train(xt)  # the quantizer is trained: this trains the codes on residuals
        del xt
        for lo in range(0, n, _BLOCK_ROWS):
            hi = min(n, lo + _BLOCK_ROWS)
            x = np.ascontiguousarray(rows.view[lo:hi])
            lists = _assign_two_level(x, coarse, bounds, centres)
            labels = np.arange(lo, hi, dtype=np.int64)
            plain.add_core(
                hi - lo, faiss.swig_ptr(x), faiss.swig_ptr(labels), faiss.swig_ptr(lists)
            )
            if progress:
                progress("add", hi, n)
        index = faiss.IndexIVFPQFastScan(plain)
        del plain
        quantizer.this.disown()  # the fast-scan index owns it from here
        index.own_fields = True
        _tune_quantizer_for_add(index)
        return index

    def _add_blocks(
        self,
        index: Any,
        lo: int,
        hi: int,
        rows: _Rows | None = None,
        progress: Progress | None = None,
    ) -> None:
        view = (rows or self._rows).view
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            _tune_quantizer_for_add(ivf)
        for start in range(lo, hi, _BLOCK_ROWS):
            index.add(np.ascontiguousarray(view[start : min(hi, start + _BLOCK_ROWS)]))
            if progress:
                progress("add", min(hi, start + _BLOCK_ROWS) - lo, hi - lo)

    # --- search --------------------------------------------------------------------

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        allowed_categories: Collection[int] | None = None,
        born_before_days: int | None = None,
        exclude_unknown_dob: bool = False,
        max_distance: float | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest live templates passing the filters, nearest first.

        ``born_before_days``: only records born strictly before that day (days since
        1970-01-01); an unknown date of birth passes unless ``exclude_unknown_dob``.
        """
        q = self._check_query(query, k)
        key = (_category_key(allowed_categories), born_before_days, exclude_unknown_dob)
        with self._rw.read():
            flt = self._filter(key)
            if flt.count == 0:
                return []
            indexed = self._indexed if self._index is not None else 0
            if indexed == 0 or flt.subset is not None:
                return self._finish(q, self._scan(q, k, flt.positions()), k, max_distance)
            found = [self._ann(q, k, flt, flt.count / self._rows.count)]
            if indexed < self._rows.count:  # rows added with defer_indexing
                found.append(self._scan(q, k, flt.positions(indexed)))
            return self._finish(q, np.concatenate(found), k, max_distance)

    def search_exact(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        allowed_categories: Collection[int] | None = None,
        born_before_days: int | None = None,
        exclude_unknown_dob: bool = False,
        max_distance: float | None = None,
    ) -> list[tuple[int, float]]:
        """Brute-force baseline of :meth:`search` over the same rows and filters."""
        q = self._check_query(query, k)
        key = (_category_key(allowed_categories), born_before_days, exclude_unknown_dob)
        with self._rw.read():
            n = self._rows.count
            best: list[npt.NDArray[np.int64]] = []
            for lo in range(0, n, _BLOCK_ROWS):
                hi = min(n, lo + _BLOCK_ROWS)
                mask = self._mask(lo, hi, key)
                if mask.all():
                    _, found = faiss.knn(q[None], np.asarray(self._rows.view[lo:hi]), k)
                    best.append(found[0][found[0] >= 0] + lo)
                else:
                    best.append(self._scan(q, k, np.flatnonzero(mask) + lo))
            if not best:
                return []
            return self._finish(q, np.concatenate(best), k, max_distance)

    def search_exact_many(
        self,
        queries: npt.ArrayLike,
        k: int,
        rules: Sequence[Mapping[str, Any]] = ({},),
        max_distance: float | None = None,
    ) -> list[list[list[tuple[int, float]]]]:
        """:meth:`search_exact` for many queries and filters in one pass over the rows.

        ``rules`` are keyword arguments of :meth:`search_exact` (``allowed_categories``,
        ``born_before_days``, ``exclude_unknown_dob``); the result holds, for each rule,
        the results of every query. Each block of rows is read once and its distances
        to all queries computed once (a matrix product), so a ground truth over
        hundreds of probes of a 30M gallery costs about one scan.
        """
        self._check_query(np.asarray(queries)[:1], k)
        x = self._as_vectors(queries)
        keys = [
            (
                _category_key(rule.get("allowed_categories")),
                rule.get("born_before_days"),
                bool(rule.get("exclude_unknown_dob", False)),
            )
            for rule in rules
        ]
        keep = 2 * k  # merged by float32 distance; _finish re-ranks them in float64
        best_d = [np.full((len(x), keep), np.inf, np.float32) for _ in keys]
        best_i = [np.full((len(x), keep), -1, np.int64) for _ in keys]
        with self._rw.read():
            n = self._rows.count
            for lo in range(0, n, _BLOCK_ROWS):
                hi = min(n, lo + _BLOCK_ROWS)
                block = np.asarray(self._rows.view[lo:hi])
                # One k-NN of the whole block (BLAS and a C++ heap), deep enough that
                # each rule keeps its nearest ``keep`` allowed rows from it; a query
                # for which it is not deep enough is scanned again on the allowed rows.
                depth = min(hi - lo, 4 * keep)
                d_all, i_all = faiss.knn(x, block, depth)
                for r, key in enumerate(keys):
                    mask = self._mask(lo, hi, key)
                    allowed = int(mask.sum())
                    if not allowed:
                        continue
                    take = min(keep, allowed)
                    ok = mask[np.maximum(i_all, 0)] & (i_all >= 0)
                    rank = np.cumsum(ok, axis=1)
                    chosen = ok & (rank <= take)
                    short = np.flatnonzero(rank[:, -1] < take)
                    d = np.full((len(x), take), np.inf, np.float32)
                    i = np.full((len(x), take), -1, np.int64)
                    rows_q, cols = np.nonzero(chosen)
                    slot = rank[rows_q, cols] - 1
                    d[rows_q, slot] = d_all[rows_q, cols]
                    i[rows_q, slot] = i_all[rows_q, cols] + lo
                    if len(short):
                        positions = np.flatnonzero(mask)
                        ds, found = faiss.knn(
                            np.ascontiguousarray(x[short]),
                            np.ascontiguousarray(block[positions]),
                            take,
                        )
                        d[short] = ds
                        i[short] = np.where(found >= 0, positions[np.maximum(found, 0)] + lo, -1)
                    all_d = np.hstack([best_d[r], d])
                    all_i = np.hstack([best_i[r], i])
                    order = np.argsort(all_d, axis=1, kind="stable")[:, :keep]
                    best_d[r] = np.take_along_axis(all_d, order, axis=1)
                    best_i[r] = np.take_along_axis(all_i, order, axis=1)
            return [
                [
                    self._finish(q, row[row >= 0], k, max_distance)
                    for q, row in zip(x, best_i[r], strict=True)
                ]
                for r in range(len(keys))
            ]

    def _ann(self, q: npt.NDArray[np.float32], k: int, flt: _Filter, share: float) -> Any:
        """Candidate rows from the FAISS structure, filtering inside the search."""
        s = self.settings
        lossy = self.kind not in ("flat", "hnsw")
        shortlist = max(k * s.rerank_factor, _MIN_SHORTLIST) if lossy else k
        shortlist = min(shortlist, self._indexed)
        sel = None if flt.bitmap is None else faiss.IDSelectorBitmap(flt.bitmap)
        structure, nlist, hnsw_quantizer = self._structure
        params: Any
        if structure == "hnsw":
            # Filtered-out nodes still fill the candidate queue: widen it by 1 / share.
            params = faiss.SearchParametersHNSW()
            ef = max(s.hnsw_ef_search, shortlist) / share
            params.efSearch = int(min(_MAX_EF_SEARCH, math.ceil(ef)))
        elif structure == "ivf":
            # The allowed near neighbours sit in the same lists whatever the filter;
            # only the k-th allowed one is farther away, so widen by 1 / sqrt(share).
            params = faiss.SearchParametersIVF()
            nprobe = s.ivf_large_nprobe if nlist >= _LARGE_NLIST else s.ivf_nprobe
            params.nprobe = int(min(nlist, math.ceil(nprobe / math.sqrt(share))))
            if hnsw_quantizer:
                # efSearch = nprobe found 99.6 % of the 1024 nearest of 16384 list
                # centres (2 x nprobe: 99.8 %, for a longer graph search).
                qparams = faiss.SearchParametersHNSW()
                qparams.efSearch = max(params.nprobe, 64)
                params.quantizer_params = qparams
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel  # the params keep the selector, which keeps the bitmap
        _, labels = self._index.search(q[None], shortlist, params=params)
        found = labels[0]
        return found[found >= 0].astype(np.int64)

    @property
    def _structure(self) -> tuple[str, int, bool]:
        """("hnsw" | "ivf" | "other", nlist, HNSW coarse quantizer?) of the FAISS index."""
        index = self._index
        if self._structure_of is not index:  # looked up once per index object
            index = faiss.downcast_index(index)
            ivf = faiss.try_extract_index_ivf(index)
            if isinstance(index, faiss.IndexHNSW):
                self._structure_cache = ("hnsw", 0, False)
            elif ivf is not None:
                quantizer = faiss.downcast_index(ivf.quantizer)
                self._structure_cache = ("ivf", ivf.nlist, isinstance(quantizer, faiss.IndexHNSW))
            else:
                self._structure_cache = ("other", 0, False)
            self._structure_of = self._index
        return self._structure_cache

    def _scan(self, q: npt.NDArray[np.float32], k: int, positions: Any) -> Any:
        """The k nearest of the given rows by brute force, in blocks."""
        best = []
        for lo in range(0, len(positions), _BLOCK_ROWS):
            block = positions[lo : lo + _BLOCK_ROWS]
            _, found = faiss.knn(q[None], np.ascontiguousarray(self._rows.view[block]), k)
            best.append(block[found[0][found[0] >= 0]])
        return np.concatenate(best) if best else np.empty(0, np.int64)

    def _finish(
        self,
        q: npt.NDArray[np.float32],
        positions: npt.NDArray[np.int64],
        k: int,
        max_distance: float | None,
    ) -> list[tuple[int, float]]:
        """Exact distances of the candidate rows; the k nearest, ties by record id."""
        positions = np.sort(positions)  # distinct rows already; sorted reads the file in order
        diff = self._rows.take(positions).astype(np.float64) - q.astype(np.float64)
        distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        ids = self._ids[positions]
        order = np.lexsort((ids, distances))[:k]
        results = list(zip(ids[order].tolist(), distances[order].tolist(), strict=True))
        if max_distance is not None:
            results = [r for r in results if r[1] <= max_distance]
        return results

    # --- filters -------------------------------------------------------------------

    def _mask(self, lo: int, hi: int, key: tuple[Any, ...]) -> npt.NDArray[np.bool_]:
        categories, born_before, exclude_unknown = key
        mask = self._live[lo:hi].copy()
        if categories is not None:
            lut = np.zeros(256, bool)
            lut[list(categories)] = True
            mask &= lut[self._categories[lo:hi]]
        dob = self._dob[lo:hi]
        if born_before is not None:
            mask &= dob < born_before
        if exclude_unknown:
            mask &= dob != UNKNOWN_DOB
        return mask

    def _filter(self, key: tuple[Any, ...]) -> _Filter:
        """The bitmap of rows a search may return, cached per filter and version."""
        n = self._rows.count
        cache_key = (*key, self._version)
        with self._mask_lock:
            cached = self._masks.get(cache_key)
            if cached is not None:
                self._masks.move_to_end(cache_key)
                return cached
        if key == (None, None, False) and self._n_live == n:
            flt = _Filter(None, n, n)
        else:
            mask = self._mask(0, n, key)
            count = int(mask.sum())
            small = _is_small_subset(count, n)
            subset = np.flatnonzero(mask).astype(np.int64) if small else None
            flt = _Filter(np.packbits(mask, bitorder="little"), count, n, subset)
        with self._mask_lock:
            self._masks[cache_key] = flt
            while len(self._masks) > _MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return flt

    def _carry_masks(
        self, *, appended_from: int | None = None, removed: npt.NDArray[np.int64] | None = None
    ) -> None:
        """New version after a mutation, with the cached filters patched, not dropped.

        Recomputing a filter scans every row (about 0.1 s at 30M), which the first
        search after each insert or delete would pay; patching touches only the rows
        that changed. Called under the write lock, so no search holds a bitmap.
        """
        old, self._version = self._version, self._version + 1
        n = self._rows.count
        carried: OrderedDict[tuple[Any, ...], _Filter] = OrderedDict()
        with self._mask_lock:
            for cache_key, flt in self._masks.items():
                *key_list, version = cache_key
                key = tuple(key_list)
                if version != old:
                    continue
                patched = self._patched(flt, key, n, appended_from, removed)
                if patched is not None:
                    carried[(*key, self._version)] = patched
            self._masks = carried

    def _patched(
        self,
        flt: _Filter,
        key: tuple[Any, ...],
        n: int,
        appended_from: int | None,
        removed: npt.NDArray[np.int64] | None,
    ) -> _Filter | None:
        """``flt`` for the rows after a mutation, or None when it is simpler to redo."""
        bitmap = flt.bitmap
        count = flt.count
        if bitmap is None:
            if removed is None and key == (None, None, False) and self._n_live == n:
                return _Filter(None, n, n)
            bits = np.full((flt.rows + 7) // 8, 0xFF, np.uint8)
            if flt.rows % 8:
                bits[-1] = (1 << (flt.rows % 8)) - 1
            bitmap = bits
        subset = flt.subset
        if removed is not None:
            gone = removed[removed < flt.rows]
            was = (bitmap[gone >> 3] >> (gone & 7).astype(np.uint8)) & 1
            gone = gone[was.astype(bool)]
            np.bitwise_and.at(bitmap, gone >> 3, ~(np.uint8(1) << (gone & 7).astype(np.uint8)))
            count -= len(gone)
            if subset is not None:
                subset = np.setdiff1d(subset, gone, assume_unique=True)
        if appended_from is not None:
            new = np.flatnonzero(self._mask(appended_from, n, key)).astype(np.int64)
            new += appended_from
            grown = np.zeros((n + 7) // 8, np.uint8)
            grown[: len(bitmap)] = bitmap
            bitmap = grown
            np.bitwise_or.at(bitmap, new >> 3, np.uint8(1) << (new & 7).astype(np.uint8))
            count += len(new)
            if subset is not None:
                subset = np.concatenate([subset, new])
        if (subset is not None) != _is_small_subset(count, n):
            return None
        return _Filter(bitmap, count, n, subset)

    # --- lookups and checks --------------------------------------------------------

    def _positions(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Row of the live template of each record id, or -1."""
        n = self._rows.count
        out = np.full(len(ids), -1, np.int64)
        if n == 0 or len(ids) == 0:
            return out
        order = self._order
        sorted_ids = self._ids[:n] if order is None else self._ids[:n][order]
        lo = np.searchsorted(sorted_ids, ids, "left")
        hi = np.searchsorted(sorted_ids, ids, "right")
        one = np.flatnonzero(hi - lo == 1)
        rows = lo[one] if order is None else order[lo[one]]
        out[one] = np.where(self._live[rows], rows, -1)
        for i in np.flatnonzero(hi - lo > 1):  # re-added after removal: dead rows first
            span = np.arange(lo[i], hi[i]) if order is None else order[lo[i] : hi[i]]
            live = span[self._live[span]]
            if len(live):
                out[i] = live[0]
        return out

    def _check_new(
        self, ids: Any, vectors: Any, categories: Any, dob_days: Any
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.uint8], npt.NDArray[np.int32]
    ]:
        id_arr = _as_ids(ids)
        x = self._as_vectors(vectors)
        cat = np.asarray(categories)
        dob = np.asarray(dob_days)
        lengths = {len(id_arr), len(x), cat.size, dob.size}
        if cat.ndim != 1 or dob.ndim != 1 or len(lengths) != 1:
            raise InvalidRecord(
                "ids, vectors, categories and dob_days must have the same length",
                lengths=[len(id_arr), len(x), int(cat.size), int(dob.size)],
            )
        if len(np.unique(id_arr)) != len(id_arr):
            raise InvalidRecord("record ids repeat within one add")
        if cat.size and (
            not np.issubdtype(cat.dtype, np.integer) or cat.min() < 0 or cat.max() > 255
        ):
            raise InvalidRecord("categories must be integer codes 0-255")
        if dob.size and (
            not np.issubdtype(dob.dtype, np.integer)
            or dob.min() < UNKNOWN_DOB
            or dob.max() > np.iinfo(np.int32).max
        ):
            raise InvalidRecord("dob_days must be int32 days since 1970-01-01")
        return id_arr, x, cat.astype(np.uint8), dob.astype(np.int32)

    def _as_vectors(self, vectors: Any) -> npt.NDArray[np.float32]:
        try:
            x = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidRecord(f"templates are not a numeric array: {e}") from e
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ModelMismatch(
                f"templates must have shape (n, {self.dim}), not {x.shape}",
                shape=list(x.shape),
                dim=self.dim,
            )
        if not np.isfinite(x).all():
            raise InvalidRecord("templates contain NaN or infinite values")
        return np.ascontiguousarray(x)

    def _check_query(self, query: Any, k: int) -> npt.NDArray[np.float32]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise BadInput(f"k must be a positive integer, not {k!r}")
        q = np.asarray(query)
        x = self._as_vectors(q[None] if q.ndim == 1 else q)
        if len(x) != 1:
            raise BadInput(f"search takes one query template, not {len(x)}")
        return x.reshape(-1)

    # --- introspection -------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    @property
    def needs_rebuild(self) -> bool:
        """Tombstones past 10 %, deferred rows, the size has left the kind's tier, or
        the gallery has grown to want twice the inverted lists it was built with."""
        n = self._rows.count
        if n - self._n_live > _TOMBSTONE_SHARE * max(n, 1) or self._indexed < n:
            return True
        wanted = self.settings.factory or self._default_factory(self._n_live)
        structure, nlist, _ = self._structure
        grown = structure == "ivf" and not self.settings.factory
        large = self._n_live > self.settings.large_above
        return (
            kind_of(wanted) != self.kind
            or (grown and nlist_for(self._n_live) >= 2 * nlist)
            or (grown and large and nlist < _LARGE_NLIST)
        )

    def memory_bytes(self) -> int:
        """RAM of the FAISS structure, attributes and RAM-resident rows (not memmap)."""
        with self._rw.read():
            attrs = sum(a.nbytes for a in (self._ids, self._categories, self._dob, self._live))
            if self._order is not None:
                attrs += self._order.nbytes
            masks = sum(f.bitmap.nbytes for f in self._masks.values() if f.bitmap is not None)
            ann = 0 if self._index is None else _faiss_bytes(self._index)
            return int(attrs + masks + ann + self._rows.ram_bytes)


def _two_level_kmeans(
    xt: npt.NDArray[np.float32], nlist: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """``nlist`` centres: sqrt(nlist) coarse clusters, then sub-clusters in each in
    proportion to its size (as faiss.contrib.clustering.two_level_clustering, with
    10 iterations at both levels). Flat k-means of 65536 centres over millions of
    samples costs hours on two cores; this takes minutes.

    Returns the coarse centres, the bounds of each coarse cluster's centres (centres
    ``bounds[c]:bounds[c + 1]`` belong to coarse cluster ``c``) and all centres.
    """
    dim = xt.shape[1]
    n_coarse = math.isqrt(nlist)
    km = faiss.Kmeans(dim, n_coarse, niter=_TWO_LEVEL_NITER, max_points_per_centroid=2000, seed=1)
    km.train(xt)
    coarse = np.ascontiguousarray(km.centroids, dtype=np.float32)
    _, assign = km.index.search(xt, 1)
    assign = assign.ravel()
    sizes = np.bincount(assign, minlength=n_coarse)
    cumulative = np.cumsum(sizes)
    per_cluster = cumulative * nlist // cumulative[-1]
    per_cluster[1:] -= per_cluster[:-1].copy()
    order = np.argsort(assign, kind="stable")
    centres, start = [], 0
    for c in range(n_coarse):
        members = xt[order[start : start + sizes[c]]]
        start += sizes[c]
        want = int(per_cluster[c])
        if want == 0:
            continue
        if len(members) <= want:  # too few samples: take them, pad with jittered copies
            extra = members[np.arange(want - len(members)) % len(members)]
            centres.append(np.vstack([members, extra + 1e-4]))
            continue
        sub = faiss.Kmeans(dim, want, niter=_TWO_LEVEL_NITER, seed=c + 2)
        sub.train(np.ascontiguousarray(members))
        centres.append(sub.centroids)
    bounds = np.concatenate([[0], np.cumsum(per_cluster)]).astype(np.int64)
    out: npt.NDArray[np.float32] = np.ascontiguousarray(np.vstack(centres), dtype=np.float32)
    return coarse, bounds, out


def _assign_two_level(
    x: npt.NDArray[np.float32],
    coarse: npt.NDArray[np.float32],
    bounds: npt.NDArray[np.int64],
    centres: npt.NDArray[np.float32],
) -> npt.NDArray[np.int64]:
    """The nearest centre of each row among the centres of its two nearest coarse
    clusters, by matrix products."""
    d1 = faiss.pairwise_distances(x, coarse)
    top2 = np.argpartition(d1, 1, axis=1)[:, :2]
    best = np.full(len(x), np.inf, np.float32)
    lists = np.zeros(len(x), np.int64)
    for c in np.unique(top2):
        members = np.flatnonzero((top2 == c).any(axis=1))
        lo, hi = int(bounds[c]), int(bounds[c + 1])
        if hi == lo:
            continue
        d2 = faiss.pairwise_distances(np.ascontiguousarray(x[members]), centres[lo:hi])
        nearest = d2.argmin(axis=1)
        distance = d2[np.arange(len(members)), nearest]
        better = distance < best[members]
        best[members[better]] = distance[better]
        lists[members[better]] = lo + nearest[better]
    return lists


def _tune_quantizer_for_add(ivf: Any) -> None:
    """Assignment through an HNSW coarse quantizer: search it well enough.

    Used for adds into an existing index and for IVF factories built the ordinary
    way; the two-level build assigns its rows by matrix products instead (one HNSW
    search per row was about 4,000 rows/s with efSearch 128 on the busy machine).
    """
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        quantizer.hnsw.efSearch = _ADD_EF_SEARCH


def _is_small_subset(count: int, rows: int) -> bool:
    return count < _SUBSET_EXACT_ROWS or count < _SUBSET_EXACT_SHARE * rows


def _category_key(categories: Collection[int] | None) -> frozenset[int] | None:
    if categories is None:
        return None
    key = frozenset(int(c) for c in categories)
    if any(c < 0 or c > 255 for c in key):
        raise BadInput("category codes are 0-255", categories=sorted(key))
    return key


def _as_ids(ids: Any) -> npt.NDArray[np.int64]:
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidRecord("record ids must be a 1-D array of integers")
    return arr.astype(np.int64)


def _is_sorted(a: npt.NDArray[Any]) -> bool:
    return bool(len(a) < 2 or (a[1:] >= a[:-1]).all())


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Any]:
    """A file written under a temporary name, fsynced, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
