"""Initial bulk comparison: every profile of a batch against a whole DNA index.

When a country connects, all its profiles are compared with all of ours (2008/616
Annex chapter 1; Reg. 2024/982 keeps the initial comparison), say one million
against one million: too many for one search each. The batch is compared kit by kit,
as a join on exact keys, vectorised with numpy:

- The probes are grouped by *mask* (their fully designated loci), the index rows by
  kit (prum.categories.dna.index). For a probe mask P and a kit K, C = P & K, c = |C|. A hit
  has at least ``min_loci`` matching loci in C and at most one locus of C that is not
  identical (see prum.categories.dna.index for why), so a pair with c < ``min_loci`` is skipped.
- **Pigeonhole.** Split C into ``m`` parts. A hit is identical on C minus the part
  holding its one differing locus (or on all of C), so it shares at least one of the
  ``m`` keys "genotypes on C minus part i" (the only key, C itself, when c equals
  ``min_loci`` and nothing may differ). ``m`` is the smallest that leaves every key
  at least ``KEY_LOCI`` loci (or c - 1), so that chance agreement is rare (about 5e-7
  per pair of profiles at 6 loci).
- Each key is a 64-bit hash of the genotypes (collisions only add candidates); index
  rows' hashes are sorted once per (kit, key loci) and kept for the next batches;
  probes are looked up with ``searchsorted``. Every candidate pair is verified by the
  exact rules (prum.categories.dna.match.classify), so the answer is the one of per-probe search.
- Probes of rare masks (fewer than ``min_group`` in the batch) are searched one by one;
  the index's mixed part and delta (rows of no kit) are compared the other way round:
  the batch is indexed and each of those rows searched in it (the rules are
  symmetric). A batch smaller than the mixed part and delta is simply searched probe
  by probe (a continuous comparison of a few new profiles, say).

A batch is the unit of work and of progress: the node sends batches through the
router and resumes after a crash at the batch cursor (:meth:`BulkComparison.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from prum.categories.dna.index import (
    ALLELE_BITS,
    MAX_KIT_LOCI,
    DnaIndex,
    designated_masks,
    mask_loci,
)
from prum.categories.dna.match import Kind, classify

KEY_LOCI = 6  # loci per join key: chance agreement ~5e-7 per pair at 6 loci (MISSION.md)
MIN_GROUP = 64  # probes of one mask below this are searched one by one
PROBE_CHUNK = 200_000  # probes joined at once (bounds memory of the candidate pairs)
VERIFY_CHUNK = 500_000  # candidate pairs classified at once


@dataclass(frozen=True)
class BulkHit:
    probe: int  # the probe's id, as given with the batch
    id: int  # the matching record's id in the index
    kind: Kind
    matching: int  # number of matching loci
    row: int  # the record's row in the index's code matrix, -1 if in the delta


Progress = Callable[[int, int], None]  # (probes compared so far, probes in the batch)


def key_parts(
    loci: NDArray[np.intp], min_loci: int, key_loci: int = KEY_LOCI
) -> list[NDArray[np.intp]]:
    """The loci of each join key for common loci ``loci`` (see the module docstring)."""
    c = len(loci)
    if c < min_loci:
        return []
    if c == min_loci:
        return [loci]
    want = min(key_loci, c - 1)
    m = next(m for m in range(2, c + 1) if c - -(-c // m) >= want)
    return [np.setdiff1d(loci, part) for part in np.array_split(loci, m)]


class BulkComparison:
    """Compares batches of profiles with ``index``; keeps the index side's sorted keys."""

    def __init__(
        self,
        index: DnaIndex,
        min_loci: int = 6,
        *,
        min_group: int = MIN_GROUP,
        progress: Progress | None = None,
    ):
        if index.n_loci > MAX_KIT_LOCI:
            raise ValueError(f"bulk comparison needs at most {MAX_KIT_LOCI} loci")
        self.index = index
        self.min_loci = min_loci
        self.min_group = min_group
        self.progress = progress
        rng = np.random.default_rng(0x5052554D)  # fixed: hashes are comparable across batches
        self._multipliers = rng.integers(1, 2**63, index.n_loci, dtype=np.uint64) | np.uint64(1)
        # Per (kit, key loci): the kit rows' sorted hashes and the rows in that order.
        self._sorted: dict[tuple[int, bytes], tuple[NDArray[np.uint64], NDArray[np.int32]]] = {}
        self._kit_rows: dict[int, NDArray[np.int32]] = {}
        self._generation = -1

    # --- keys -----------------------------------------------------------------------

    def _hash(self, codes: NDArray[np.uint16], loci: NDArray[np.intp]) -> NDArray[np.uint64]:
        """A 64-bit hash of the genotypes at ``loci`` (equal genotypes, equal hashes)."""
        sub = np.asarray(codes[:, loci]).astype(np.uint64)
        value = ((sub[:, :, 0] << np.uint64(ALLELE_BITS)) | sub[:, :, 1]) + np.uint64(1)
        out: NDArray[np.uint64] = (value * self._multipliers[loci]).sum(axis=1, dtype=np.uint64)
        return out

    def _index_keys(
        self, kit: int, loci: NDArray[np.intp]
    ) -> tuple[NDArray[np.uint64], NDArray[np.int32]]:
        """The sorted hashes of a kit's rows on ``loci`` and the rows in that order."""
        index = self.index
        if self._generation != index.generation:  # rebuilt since: forget the old keys
            self._sorted.clear()
            self._kit_rows = {
                k: np.flatnonzero(index.kit_of == k).astype(np.int32)
                for k in range(1, len(index.kit_masks))
            }
            self._generation = index.generation
        cache = (kit, loci.tobytes())
        if cache not in self._sorted:
            rows = self._kit_rows[kit]
            hashes = np.concatenate(
                [
                    self._hash(np.asarray(index.codes[rows[s : s + 1_000_000]]), loci)
                    for s in range(0, len(rows), 1_000_000)
                ]
                or [np.zeros(0, np.uint64)]
            )
            order = np.argsort(hashes, kind="stable")
            self._sorted[cache] = (hashes[order], rows[order])
        return self._sorted[cache]

    # --- one batch ------------------------------------------------------------------

    def compare(
        self,
        ids: NDArray[np.int64],
        probes: NDArray[np.uint16],
        *,
        progress: Progress | None = None,
    ) -> list[BulkHit]:
        """Every (probe, record) hit of one batch, ordered by probe then record id.

        ``progress`` (else the engine's) hears how many probes of the batch are done."""
        progress = progress or self.progress
        probes = np.asarray(probes, dtype=np.uint16)
        ids = np.asarray(ids, dtype=np.int64)
        if probes.ndim != 3 or probes.shape[1:] != (self.index.n_loci, 2):
            raise ValueError("probes must be an (n, loci, 2) code matrix of the index's loci")
        if len(ids) != len(probes):
            raise ValueError("one id per probe")
        index = self.index
        hits: list[BulkHit] = []
        with index.lock:
            rest = int(((index.kit_of == 0) & index.alive).sum()) + len(index.delta()[0])
            if rest > len(probes):  # a small batch: one search per probe is cheaper
                for p in range(len(probes)):
                    for h in index.search(probes[p], self.min_loci):
                        hits.append(BulkHit(int(ids[p]), h.id, h.kind, h.matching, h.row))
                    if progress:
                        progress(p + 1, len(probes))
                hits.sort(key=lambda h: (h.probe, h.id))
                return hits
            pairs: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
            masks = designated_masks(probes)
            values, inverse, counts = np.unique(masks, return_inverse=True, return_counts=True)
            done = 0
            for group, mask in enumerate(values.tolist()):
                members = np.flatnonzero(inverse == group)
                if counts[group] < self.min_group:
                    for p in members.tolist():
                        for h in index.search(probes[p], self.min_loci, rest=False):
                            hits.append(BulkHit(int(ids[p]), h.id, h.kind, h.matching, h.row))
                else:
                    pairs += self._join(probes, members, int(mask))
                done += len(members)
                if progress:
                    progress(done, len(probes))
            hits += self._verify(ids, probes, pairs)
            hits += self._rest(ids, probes)
        hits.sort(key=lambda h: (h.probe, h.id))
        return hits

    def _join(
        self, probes: NDArray[np.uint16], members: NDArray[np.intp], mask: int
    ) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
        """Candidate (probe position, index row) pairs of one probe mask, all kits."""
        found = []
        for kit in range(1, len(self.index.kit_masks)):
            common = mask_loci(mask & int(self.index.kit_masks[kit]))
            for loci in key_parts(common, self.min_loci):
                hashes, rows = self._index_keys(kit, loci)
                for s in range(0, len(members), PROBE_CHUNK):
                    chunk = members[s : s + PROBE_CHUNK]
                    mine = self._hash(probes[chunk], loci)
                    lo = np.searchsorted(hashes, mine, side="left")
                    count = np.searchsorted(hashes, mine, side="right") - lo
                    total = int(count.sum())
                    if not total:
                        continue
                    first = np.repeat(np.cumsum(count) - count, count)
                    at = np.arange(total) - first + np.repeat(lo, count)
                    pair = (np.repeat(chunk, count).astype(np.int64), rows[at].astype(np.int64))
                    found.append(pair)
        return found

    def _verify(
        self,
        ids: NDArray[np.int64],
        probes: NDArray[np.uint16],
        pairs: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
    ) -> list[BulkHit]:
        """The candidate pairs that are hits by the exact rules (each pair once)."""
        if not pairs:
            return []
        index = self.index
        n = max(1, index.built_rows)
        both = np.unique(np.concatenate([p * n + r for p, r in pairs]))
        hits: list[BulkHit] = []
        for s in range(0, len(both), VERIFY_CHUNK):
            chunk = both[s : s + VERIFY_CHUNK]
            p, r = chunk // n, chunk % n
            keep = index.alive[r]
            p, r = p[keep], r[keep]
            kind, count = classify(probes[p], np.asarray(index.codes[r]), self.min_loci)
            for i in np.flatnonzero(kind).tolist():
                row = int(r[i])
                hits.append(
                    BulkHit(
                        int(ids[p[i]]), int(index.ids[row]), Kind(int(kind[i])), int(count[i]), row
                    )
                )
        return hits

    def _rest(self, ids: NDArray[np.int64], probes: NDArray[np.uint16]) -> list[BulkHit]:
        """Hits among the rows of no kit (the mixed part and the delta), fewer than the
        probes: the batch is indexed and each of those rows searched in it."""
        index = self.index
        mixed = np.flatnonzero((index.kit_of == 0) & index.alive)
        delta_ids, delta = index.delta()
        if not len(mixed) and not len(delta_ids):
            return []
        rest_rows = np.concatenate([mixed, np.full(len(delta_ids), -1, dtype=np.int64)])
        rest_ids = np.concatenate([index.ids[mixed], delta_ids])
        rest_codes = np.concatenate([np.asarray(index.codes[mixed]), delta])
        batch = DnaIndex.build(probes, np.arange(1, len(probes) + 1, dtype=np.int64))
        hits: list[BulkHit] = []
        for i in range(len(rest_ids)):
            row, record = int(rest_rows[i]), int(rest_ids[i])
            for h in batch.search(rest_codes[i], self.min_loci):  # the rules are symmetric
                hits.append(BulkHit(int(ids[h.row]), record, h.kind, h.matching, row))
        return hits

    # --- a stream of batches -----------------------------------------------------------

    def run(
        self,
        batches: Iterable[tuple[NDArray[np.int64], NDArray[np.uint16]]],
        *,
        start: int = 0,
    ) -> Iterator[tuple[int, list[BulkHit]]]:
        """``(cursor, hits)`` per batch; batches before ``start`` (a saved cursor) are
        skipped, so a comparison resumes where a crash left it."""
        for cursor, (ids, probes) in enumerate(batches):
            if cursor < start:
                continue
            yield cursor, self.compare(ids, probes)
