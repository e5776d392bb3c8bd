"""The fingerprint 1:N index: the approximate (FAISS) path against the exact one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from prum.categories.finger.index import FingerIndex, IndexParams, Label, dice
from prum.categories.finger.match import Cylinders, compare, compare_many, cylinders
from prum.categories.finger.shards import ShardedIndex, shard_of
from prum.categories.finger.synthetic import impression
from prum.errors import StorageError

# Small enough that a few hundred fingers go through PCA and the inverted lists.
SMALL = IndexParams(exact_below=2_000, train_sample=2_000)


def random_finger(rng: np.random.Generator, n: int = 45) -> np.ndarray:
    """Minutiae spread over a print-sized area (no real data needed)."""
    xy = rng.uniform(40, 360, size=(n, 2))
    return np.column_stack(
        [xy, rng.uniform(0, 2 * math.pi, n), rng.integers(0, 2, n), rng.uniform(0.3, 1, n)]
    ).astype(np.float32)


@pytest.fixture(scope="module")
def gallery() -> tuple[list[Cylinders], list[Cylinders]]:
    rng = np.random.default_rng(5)
    fingers = [random_finger(rng) for _ in range(300)]
    enrolled = [cylinders(impression(f, rng, dropout=0.1)) for f in fingers]
    probes = [cylinders(impression(f, rng, dropout=0.1)) for f in fingers[:20]]
    return enrolled, probes


def build(enrolled: list[Cylinders], params: IndexParams) -> FingerIndex:
    index = FingerIndex(params=params)
    for i, cyl in enumerate(enrolled):
        index.add(i, cyl, Label(i, 0, False))
    return index


@pytest.fixture(scope="module")
def approximate(gallery: tuple[list[Cylinders], list[Cylinders]]) -> FingerIndex:
    """Trained twice on the way (at 2,000 cylinders and at four times that)."""
    return build(gallery[0], SMALL)


def tops(index: FingerIndex, probes: list[Cylinders]) -> list[int]:
    return [index.search(p, max_candidates=1)[0].finger for p in probes]


def test_dice_is_the_binary_similarity_of_the_bits() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 1536)) < 0.05
    b = rng.random((4, 1536)) < 0.1
    expected = 2 * (a[:, None, :] & b[None, :, :]).sum(2) / (a.sum(1)[:, None] + b.sum(1))
    got = dice(np.packbits(a, axis=1), np.packbits(b, axis=1))
    assert np.allclose(got, expected)
    assert dice(np.zeros((1, 192), np.uint8), np.zeros((1, 192), np.uint8))[0, 0] == 0.0


def test_comparing_many_at_once_scores_as_one_by_one(
    gallery: tuple[list[Cylinders], list[Cylinders]],
) -> None:
    enrolled, probes = gallery
    others = [*enrolled[:40], cylinders(np.zeros((0, 5), np.float32))]
    together = [c.score for c in compare_many(probes[0], others)]
    assert together == pytest.approx([compare(probes[0], b).score for b in others], abs=1e-6)
    assert compare_many(probes[0], []) == []


def test_large_galleries_use_the_faiss_index_and_still_find_mates(
    gallery: tuple[list[Cylinders], list[Cylinders]], approximate: FingerIndex
) -> None:
    enrolled, probes = gallery
    exact = build(enrolled, IndexParams())
    assert exact.kind == "exact"
    assert approximate.kind.startswith("PCA256,L2norm,IVF")
    found = tops(approximate, probes)
    assert sum(f == i for i, f in enumerate(found)) >= 18
    assert sum(a == b for a, b in zip(found, tops(exact, probes), strict=True)) >= 18


def test_a_saved_index_loads_with_its_faiss_part_and_answers_the_same(
    gallery: tuple[list[Cylinders], list[Cylinders]], approximate: FingerIndex, tmp_path: Path
) -> None:
    probes = gallery[1]
    index = approximate
    index.save(tmp_path, deletion_seq=7)
    index.save(tmp_path, deletion_seq=7)  # the older generation is removed
    assert len(list(tmp_path.glob("rows-*/cylinders-*.faiss"))) == 1
    loaded, meta = FingerIndex.load(tmp_path, params=SMALL)
    assert meta["deletion_seq"] == 7 and loaded.kind == index.kind
    assert isinstance(loaded._rows.bits.saved, np.memmap)  # the rows stay on disk
    assert loaded.disk_nbytes() > loaded.cylinders * 192
    assert tops(loaded, probes) == tops(index, probes)
    loaded.remove(3)  # deleted: out of every answer at once, out of FAISS at the next save
    assert 3 not in loaded and 3 not in tops(loaded, probes)
    assert 3 in index
    loaded.add(1000, gallery[0][3], Label(1000, 0, False))  # added after a load: in memory
    assert tops(loaded, probes)[3] == 1000
    loaded.save(tmp_path)
    again, _ = FingerIndex.load(tmp_path, params=SMALL)
    assert tops(again, probes) == tops(loaded, probes)


def test_a_torn_save_keeps_the_previous_generation(
    gallery: tuple[list[Cylinders], list[Cylinders]], approximate: FingerIndex, tmp_path: Path
) -> None:
    probes = gallery[1]
    approximate.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    torn = tmp_path / "rows-0123456789abcdef"  # a save that died before meta.json
    torn.mkdir()
    (torn / "bits.npy").write_bytes(b"half")
    loaded, _ = FingerIndex.load(tmp_path, params=SMALL)  # the generation meta.json names
    assert tops(loaded, probes) == tops(approximate, probes)
    loaded.save(tmp_path)
    assert not torn.exists()  # swept by the next save
    meta = json.loads((tmp_path / "meta.json").read_text())
    for faiss_file in (tmp_path / f"rows-{meta['generation']}").glob("*.faiss"):
        faiss_file.unlink()  # the FAISS part lost: trained again from the rows
    loaded, _ = FingerIndex.load(tmp_path, params=SMALL)
    assert loaded.kind.startswith("PCA256,L2norm,IVF")
    assert sum(f == i for i, f in enumerate(tops(loaded, probes))) >= 18
    meta["generation"] = "not-saved"
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StorageError, match="incomplete"):  # the matcher rebuilds it
        FingerIndex.load(tmp_path, params=SMALL)


def test_deleted_fingers_leave_answers_at_once_and_their_rows_at_compaction(
    gallery: tuple[list[Cylinders], list[Cylinders]],
) -> None:
    enrolled, probes = gallery
    index = build(enrolled[:120], IndexParams())
    before = tops(index, probes)
    rows = index.cylinders
    for f in range(20, 120):  # none of them a probe's mate
        index.remove(f)
    assert index.cylinders == rows  # still there, marked dead
    assert all(h.finger < 20 for p in probes for h in index.search(p, max_candidates=5))
    assert tops(index, probes) == before
    index.compact()
    assert index.cylinders == sum(int((c.bits.sum(axis=1) > 0).sum()) for c in enrolled[:20])
    assert tops(index, probes) == before
    index.add(7, enrolled[8], Label(7, 0, False))  # a finger replaced: its new cylinders
    assert index.search(probes[8], max_candidates=1)[0].finger in (7, 8)


def test_bulk_loading_trains_once_and_answers_as_adding_one_by_one(
    gallery: tuple[list[Cylinders], list[Cylinders]], approximate: FingerIndex
) -> None:
    enrolled, probes = gallery
    index = FingerIndex(params=SMALL)  # trained twice on the way without bulk()
    with index.bulk():
        for i, cyl in enumerate(enrolled):
            index.add(i, cyl, Label(i, 0, False))
        assert index.kind == "exact"  # nothing trained yet
    assert index.kind.startswith("PCA256,L2norm,IVF")  # trained on all the rows at once
    assert index.cylinders == approximate.cylinders
    assert sum(f == i for i, f in enumerate(tops(index, probes))) >= 18


def test_a_card_finds_its_mate_card_by_fused_votes_and_comparisons(
    gallery: tuple[list[Cylinders], list[Cylinders]],
) -> None:
    """30 cards of 10 fingers from the gallery's 300; the probe card: its fingers'
    other impressions (only the first 20 fingers have one), positions 1-10."""
    enrolled, probes = gallery
    index = FingerIndex(params=SMALL)
    with index.bulk():
        for i, cyl in enumerate(enrolled):
            index.add(i, cyl, Label(record=100 + i // 10, position=1 + i % 10, latent=False))
    assert index.kind.startswith("PCA256,L2norm,IVF")
    for card in (0, 1):
        probe = [(1 + j, probes[card * 10 + j]) for j in range(10)]
        hits = index.search_cards(probe, max_candidates=3)
        assert hits[0].record == 100 + card
        assert len(hits[0].fingers) == 10  # every finger compared with its own position
        assert {f for f, _ in hits[0].fingers.values()} == set(range(card * 10, card * 10 + 10))
        assert hits[0].score > 2 * hits[1].score
    # A finger's position keeps it from other positions: thumb probe vs index fingers.
    only_thumb = index.search_cards([(1, probes[0])], max_candidates=30)
    assert all(f % 10 == 0 for h in only_thumb for f, _ in h.fingers.values())
    index.remove_record(100)
    assert all(h.record != 100 for h in index.search_cards(probe, max_candidates=30))


def test_shards_in_their_own_processes_answer_as_one_index(
    gallery: tuple[list[Cylinders], list[Cylinders]], tmp_path: Path
) -> None:
    enrolled, probes = gallery
    whole = FingerIndex(params=SMALL)
    shards = [FingerIndex(params=SMALL), FingerIndex(params=SMALL)]
    with whole.bulk(), shards[0].bulk(), shards[1].bulk():
        for i, cyl in enumerate(enrolled):
            label = Label(record=i // 10, position=1 + i % 10, latent=False)
            whole.add(i, cyl, label)
            shards[shard_of(label.record, 2)].add(i, cyl, label)
    for k, shard in enumerate(shards):
        shard.save(tmp_path / f"shard-{k}")
    card = [(1 + j, probes[10 + j]) for j in range(10)]  # card 1: in shard 1
    with ShardedIndex([tmp_path / "shard-0", tmp_path / "shard-1"], params=SMALL) as sharded:
        assert sharded.shards == 2
        hits = sharded.search_cards(card, max_candidates=3)
        alone = whole.search_cards(card, max_candidates=3)
        assert hits[0].record == alone[0].record == 1
        assert hits[0].score == pytest.approx(alone[0].score)
        single = sharded.search(probes[4], max_candidates=1, position=5)
        assert single[0].finger == 4
        assert sharded.exhaustive(probes[4], max_candidates=1, position=5)[0].finger == 4
        stats = sharded.stats()
        assert sum(s.fingers for s in stats) == len(enrolled)
        assert all(s.disk_bytes > 0 and s.index_bytes > 0 for s in stats)
    with pytest.raises(StorageError, match="finger shard 1: cannot load"):
        ShardedIndex([tmp_path / "shard-0", tmp_path / "absent"], params=SMALL)
