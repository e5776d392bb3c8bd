"""The in-memory pseudonym index of a records holder: blocking lookup, then scoring.

Built from the store (prum.categories.records.store) at start and kept in step with it on every
enrolment and deletion; never the system of record. Per entry (one name of a person)
it keeps the 1,024-bit name filter and the 64-bit date and attribute pseudonyms in
numpy arrays; the blocking keys are a sorted array of (key, entry) pairs searched with
``np.searchsorted``, plus a small dictionary of keys added since the last compaction.
A search scores only the entries that share at least one blocking key with the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from prum.categories.records.encode import FILTER_WORDS, Encoding
from prum.categories.records.score import Scores, score
from prum.errors import RecordsKeyMismatch
from prum.federation.messages import RecordsField

# Keys added since the last compaction live in a dict; past this many they are merged
# into the sorted arrays (one sort of the whole key array: about a second at 10^7).
COMPACT_AFTER = 200_000
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(words: NDArray[np.uint64]) -> NDArray[np.int32]:
    """Set bits per row of a (n, words) uint64 array (a byte table: numpy < 2)."""
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(len(words), words.shape[1] * 8)
    counts: NDArray[np.int32] = _POPCOUNT[as_bytes].sum(axis=1, dtype=np.int32)
    return counts


def pseudonym_int(value: str | None) -> int:
    """A hex pseudonym as a uint64 (0 stands for "absent")."""
    return 0 if value is None else int(value[:16], 16)


@dataclass(frozen=True)
class Hit:
    record_id: int
    entry: int  # 0 the person's name, 1.. an alias
    quality: float
    matched_on: tuple[RecordsField, ...]
    name_similarity: float


class RecordsIndex:
    """Pseudonymised entries of one holder, under one federation key."""

    def __init__(self, key_id: str, capacity: int = 1024):
        self.key_id = key_id
        self.size = 0
        self.record_ids = np.zeros(capacity, dtype=np.int64)
        self.entries = np.zeros(capacity, dtype=np.int16)
        self.alive = np.zeros(capacity, dtype=bool)
        self.filters = np.zeros((capacity, FILTER_WORDS), dtype=np.uint64)
        self.filter_bits = np.zeros(capacity, dtype=np.int32)
        # year, month, day, gender, country of birth, place of birth, 4 nationalities
        self.attributes = np.zeros((capacity, 10), dtype=np.uint64)
        self.keys = np.zeros(0, dtype=np.uint64)
        self.key_rows = np.zeros(0, dtype=np.int32)
        # Keys not yet merged into the sorted arrays: single enrolments in a dict,
        # bulk ones as (keys, rows) arrays.
        self.fresh: dict[int, list[int]] = {}
        self.pending: list[tuple[NDArray[np.uint64], NDArray[np.int32]]] = []
        self._unsorted = 0
        self.records = 0

    def __len__(self) -> int:
        """Records (people) in the index."""
        return self.records

    def nbytes(self) -> int:
        arrays = (self.record_ids, self.entries, self.alive, self.filters, self.filter_bits)
        return sum(a.nbytes for a in arrays) + self.attributes.nbytes + self.keys.nbytes * 3 // 2

    def _grow(self, need: int) -> None:
        capacity = len(self.record_ids)
        if need <= capacity:
            return
        new = max(need, capacity * 2)
        for name in ("record_ids", "entries", "alive", "filters", "filter_bits", "attributes"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def add(self, record_id: int, encodings: list[Encoding]) -> None:
        """Add one person's entries (the name, then aliases)."""
        self.add_many([(record_id, encodings)])

    def add_many(self, people: Sequence[tuple[int, list[Encoding]]]) -> None:
        """Add persons' entries in one vectorised step (bulk loads, the rebuild)."""
        flat = [(rid, entry, e) for rid, es in people for entry, e in enumerate(es)]
        for _, _, encoding in flat:
            if encoding.key_id != self.key_id:
                raise RecordsKeyMismatch(
                    f"an entry under key {encoding.key_id!r} cannot join an index under"
                    f" {self.key_id!r}"
                )
        if not flat:
            return
        start, n = self.size, len(flat)
        self._grow(start + n)
        rows = slice(start, start + n)
        self.record_ids[rows] = [rid for rid, _, _ in flat]
        self.entries[rows] = [entry for _, entry, _ in flat]
        self.alive[rows] = True
        filters = np.frombuffer(b"".join(e.name_filter for _, _, e in flat), dtype=np.uint64)
        self.filters[rows] = filters.reshape(n, FILTER_WORDS)
        self.filter_bits[rows] = popcount(self.filters[rows])
        self.attributes[rows] = [_attribute_values(e) for _, _, e in flat]
        self.size += n
        self.records += len(people)
        keys = [pseudonym_int(k) for _, _, e in flat for k in e.blocking]
        key_rows = [start + i for i, (_, _, e) in enumerate(flat) for _ in e.blocking]
        if n == 1:
            for k, row in zip(keys, key_rows, strict=True):
                self.fresh.setdefault(k, []).append(row)
        else:
            self.pending.append(
                (np.array(keys, dtype=np.uint64), np.array(key_rows, dtype=np.int32))
            )
        self._unsorted += len(keys)
        # Merge when the unsorted part reaches the sorted one (or COMPACT_AFTER): the
        # sorts then cost O(n log n) in all, however the keys arrive.
        if self._unsorted > max(COMPACT_AFTER, len(self.keys)):
            self.compact()

    def compact(self) -> None:
        """Merge the keys added since the last compaction into the sorted arrays."""
        if not self.fresh and not self.pending:
            return
        parts_keys = [self.keys] + [k for k, _ in self.pending]
        parts_rows = [self.key_rows] + [r for _, r in self.pending]
        if self.fresh:
            parts_keys.append(
                np.array([k for k, rs in self.fresh.items() for _ in rs], dtype=np.uint64)
            )
            parts_rows.append(
                np.array([r for rs in self.fresh.values() for r in rs], dtype=np.int32)
            )
        keys, rows = np.concatenate(parts_keys), np.concatenate(parts_rows)
        order = np.argsort(keys, kind="stable")
        self.keys, self.key_rows = keys[order], rows[order]
        self.fresh.clear()
        self.pending.clear()
        self._unsorted = 0

    def remove(self, record_id: int) -> None:
        """Forget a person's entries (their keys stay in the arrays, dead)."""
        rows = np.flatnonzero(self.record_ids[: self.size] == record_id)
        if len(rows) and self.alive[rows].any():
            self.records -= 1
        self.alive[rows] = False

    def candidates(self, query: Encoding) -> NDArray[np.intp]:
        """Live entries sharing at least one blocking key with the query."""
        found: list[NDArray[np.int32]] = []
        wanted = np.array([pseudonym_int(k) for k in query.blocking], dtype=np.uint64)
        lo = np.searchsorted(self.keys, wanted, side="left")
        hi = np.searchsorted(self.keys, wanted, side="right")
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            if b > a:
                found.append(self.key_rows[a:b])
        for k in wanted.tolist():
            if k in self.fresh:
                found.append(np.array(self.fresh[k], dtype=np.int32))
        for chunk_keys, chunk_rows in self.pending:
            found.append(chunk_rows[np.isin(chunk_keys, wanted)])
        if not found:
            return np.zeros(0, dtype=np.intp)
        rows: NDArray[np.intp] = np.unique(np.concatenate(found)).astype(np.intp)
        live: NDArray[np.intp] = rows[self.alive[rows]]
        return live

    def score_rows(self, query: Encoding, rows: NDArray[np.intp]) -> Scores:
        qfilter = np.frombuffer(query.name_filter, dtype=np.uint64)
        common = popcount(self.filters[rows] & qfilter)
        return score(
            common=common,
            bits=self.filter_bits[rows],
            query_bits=int(popcount(qfilter[None, :])[0]),
            attributes=self.attributes[rows],
            query=_attribute_row(query),
            query_near_years=np.array([pseudonym_int(y) for y in query.year_near], dtype=np.uint64),
        )

    def search(self, query: Encoding, *, threshold: float, limit: int) -> list[Hit]:
        """The best entry of each person at or above ``threshold``, best first."""
        if query.key_id != self.key_id:
            raise RecordsKeyMismatch(
                f"the query was pseudonymised under key {query.key_id!r}; this holder's"
                f" index is under {self.key_id!r}"
            )
        rows = self.candidates(query)
        if len(rows) == 0:
            return []
        scores = self.score_rows(query, rows)
        return self._best(rows, scores, threshold, limit)

    def search_all(self, query: Encoding, *, threshold: float, limit: int) -> list[Hit]:
        """The naive baseline: score every live entry (no blocking)."""
        rows = np.flatnonzero(self.alive[: self.size])
        return self._best(rows, self.score_rows(query, rows), threshold, limit)

    def _best(
        self, rows: NDArray[np.intp], scores: Scores, threshold: float, limit: int
    ) -> list[Hit]:
        keep = np.flatnonzero(scores.quality >= threshold)
        keep = keep[np.argsort(-scores.quality[keep], kind="stable")]
        hits: list[Hit] = []
        seen: set[int] = set()
        for i in keep.tolist():
            record_id = int(self.record_ids[rows[i]])
            if record_id in seen:
                continue
            seen.add(record_id)
            hits.append(
                Hit(
                    record_id=record_id,
                    entry=int(self.entries[rows[i]]),
                    quality=float(scores.quality[i]),
                    matched_on=scores.matched_on(i),
                    name_similarity=float(scores.name[i]),
                )
            )
            if len(hits) == limit:
                break
        return hits


def _attribute_values(encoding: Encoding) -> list[int]:
    nationalities = [pseudonym_int(n) for n in encoding.nationalities[:4]]
    return [
        pseudonym_int(encoding.year),
        pseudonym_int(encoding.month),
        pseudonym_int(encoding.day),
        pseudonym_int(encoding.gender),
        pseudonym_int(encoding.country_of_birth),
        pseudonym_int(encoding.place_of_birth),
        *nationalities,
        *[0] * (4 - len(nationalities)),
    ]


def _attribute_row(encoding: Encoding) -> NDArray[np.uint64]:
    return np.array(_attribute_values(encoding), dtype=np.uint64)
