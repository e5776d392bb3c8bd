"""The DNA bulk comparison engine: a batch against a whole index gives exactly the hits
of one search per probe, kit by kit, in the mixed part and in the delta; batches resume
at a cursor; the matcher answers a batch like single searches."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from prum.categories.dna.bulk import BulkComparison, key_parts
from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.index import DnaIndex
from prum.categories.dna.loci import LocusSet
from prum.categories.dna.matcher import DnaMatcher
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.federation.messages import Probe

LOCI = LocusSet("prum")
Codes = NDArray[np.uint16]
World = tuple[Generator, Codes, Codes]
EVERYONE = Exposure(subjects=frozenset(SubjectCategory), min_age=None)


@pytest.fixture(scope="module")
def world() -> World:
    """An index of 6,000 rows in two kits (ESS-12, ESS-10) and a mixed part, and a batch
    of 400 probes: copies, traces and relatives of stored rows, and strangers."""
    generator = Generator(AlleleFrequencies.default(), LOCI, extended_share=0.0)  # ESS-12 only
    codes = generator.database(6000, seed=21, family_share=0.04, trace_share=0.01).codes
    codes[:2000, [LOCI.position["D12S391"], LOCI.position["D22S1045"]]] = 0  # ESS-10 kit
    rng = np.random.default_rng(22)
    probes = []
    for i in range(400):
        source = codes[int(rng.integers(len(codes)))]
        if i % 4 == 0:
            probes.append(source)
        elif i % 4 == 1:
            probes.append(generator.trace(source, rng, keep=int(rng.integers(6, 13))))
        elif i % 4 == 2:
            other = codes[int(rng.integers(len(codes)))]
            probes.append(generator.child(source, other, rng))
        else:
            probes.append(generator.population(1, rng)[0])
    return generator, codes, np.stack(probes)


def per_probe(index: DnaIndex, probes: Codes) -> set[tuple[int, int, int, int]]:
    return {
        (p, h.id, int(h.kind), h.matching)
        for p in range(len(probes))
        for h in index.search(probes[p], 6)
    }


@pytest.mark.parametrize("batch", [400, 25])  # the mixed part fewer / more than the batch
def test_bulk_gives_the_hits_of_one_search_per_probe(world: World, batch: int) -> None:
    _generator, codes, probes = world
    index = DnaIndex.build(codes[:5900], min_kit_rows=500)
    assert len(index.kit_masks) == 3 and index.kit_rows[0] > 25  # two kits, a mixed part
    for at, row in enumerate(codes[5900:]):  # the delta
        index.add(6001 + at, row)
    assert index.remove(int(index.ids[0])) and index.remove(6001)
    probes = probes[:batch]
    bulk = BulkComparison(index, 6, min_group=8)
    hits = bulk.compare(np.arange(len(probes), dtype=np.int64), probes)
    got = {(h.probe, h.id, int(h.kind), h.matching) for h in hits}
    assert len(got) == len(hits)  # each pair once
    assert got == per_probe(index, probes)
    assert len(got) >= batch // 4  # the copies at least
    assert {h.row for h in hits if h.id > 6000} <= {-1}  # delta hits have no row
    for h in hits:
        if h.row >= 0:
            assert index.ids[h.row] == h.id


def test_bulk_resumes_at_the_batch_cursor_and_reports_progress(
    world: World,
) -> None:
    _generator, codes, probes = world
    index = DnaIndex.build(codes, min_kit_rows=500)
    ids = np.arange(1000, 1000 + len(probes), dtype=np.int64)
    batches = [(ids[s : s + 100], probes[s : s + 100]) for s in range(0, len(probes), 100)]
    seen: list[tuple[int, int]] = []
    bulk = BulkComparison(index, 6, progress=lambda done, total: seen.append((done, total)))
    everything = dict(bulk.run(batches))
    assert list(everything) == [0, 1, 2, 3]
    assert seen[-1] == (100, 100) and all(d <= t for d, t in seen)
    resumed = dict(bulk.run(batches, start=2))  # after a crash past batch 1
    assert list(resumed) == [2, 3] and resumed[3] == everything[3]
    whole = {(h.probe, h.id) for hits in everything.values() for h in hits}
    one = {(int(ids[p]), i) for p, i, _, _ in per_probe(index, probes)}
    assert whole == one


def test_every_hit_shares_one_join_key_whatever_locus_differs() -> None:
    for c in range(6, 24):
        loci = np.arange(c)
        keys = key_parts(loci, 6)
        assert all(len(k) >= min(6, c - 1) for k in keys)
        if c == 6:
            assert [k.tolist() for k in keys] == [loci.tolist()]  # nothing may differ
            continue
        for differing in range(c):
            assert any(differing not in k for k in keys)
    assert key_parts(np.arange(5), 6) == []


def test_matcher_answers_a_batch_like_single_searches(tmp_path: Path, world: World) -> None:
    _generator, codes, probes = world
    matcher = DnaMatcher(Settings(data_dir=tmp_path, country="AT"))
    try:
        for row in codes[:300]:
            matcher.enroll(profile_of(row, LOCI, identified=False).to_json(), provenance="lab")
        mine = np.concatenate([codes[100:120], probes[:20]])  # copies of stored ones too
        batch = [profile_of(p, LOCI, identified=False) for p in mine]
        batch = [p for p in batch if len(p.fully_designated()) >= 6]
        wire = Probe(format="dna_profile", data=base64.b64encode(batch[0].to_json()))
        answers = matcher.search_batch([wire, *batch[1:]], max_candidates=5, exposure=EVERYONE)
        single = [matcher.search_profile(p, max_candidates=5, exposure=EVERYONE) for p in batch]
        assert [a.model_dump() for a in answers[0].candidates] == [
            c.model_dump() for c in single[0].candidates
        ]
        assert [[c.reference for c in a.candidates] for a in answers] == [
            [c.reference for c in s.candidates] for s in single
        ]
        assert sum(len(a.candidates) for a in answers) >= 15
        hit = next(c for a in answers for c in a.candidates)
        assert hit.details is not None and hit.details.kind == "dna"
        stored = json.loads(matcher.store.records([1])[1].profile)["loci"]
        assert set(stored) <= set(LOCI.loci)
    finally:
        matcher.close()


def test_bulk_forgets_its_keys_when_the_index_is_rebuilt(world: World) -> None:
    _generator, codes, probes = world
    index = DnaIndex.build(codes[:3000], min_kit_rows=500)
    bulk = BulkComparison(index, 6)
    positions = np.arange(100, dtype=np.int64)
    before = bulk.compare(positions, probes[:100])
    for at, row in enumerate(codes[3000:]):
        index.add(3001 + at, row)
    index.remove(int(index.ids[5]))
    index.compact()  # rows move: cached keys of the old rows would give wrong rows
    after = {
        (h.probe, h.id, int(h.kind), h.matching) for h in bulk.compare(positions, probes[:100])
    }
    assert after == per_probe(index, probes[:100])
    assert len(after) > len(before)
