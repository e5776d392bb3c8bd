"""Biometric evaluation: error rates, EER, identification, groups and DET curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prum.categories.face import evaluation
from prum.categories.face.evaluation import equal_error_rate, evaluate, plot_det, summary_lines
from prum.errors import InvalidLabelledSet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Seven samples on a line (dim 1). Genuine distances: A 1.0, B 2.6, C 0.2; D has no mate.
LINE = np.array([[0.0], [1.0], [0.4], [3.0], [5.0], [5.2], [10.0]])
LINE_IDS = ["A", "A", "B", "B", "C", "C", "D"]


def test_eer_of_two_gaussians_is_where_their_tails_balance() -> None:
    # Genuine N(0.4, 0.05), impostor N(0.6, 0.05): EER = Phi(-2) = 0.02275 at 0.5.
    rng = np.random.default_rng(0)
    eer, threshold = equal_error_rate(rng.normal(0.4, 0.05, 40_000), rng.normal(0.6, 0.05, 40_000))
    assert eer == pytest.approx(0.02275, abs=0.003)
    assert threshold == pytest.approx(0.5, abs=0.005)


def test_perfectly_separated_sets_have_zero_eer_with_the_threshold_in_the_gap() -> None:
    assert equal_error_rate([0.1, 0.2, 0.3], [0.7, 0.8]) == (0.0, pytest.approx(0.5))


def test_eer_on_a_plateau_takes_the_middle_of_it() -> None:
    # At 0.4 both rates are 1/4, and stay so until 0.5.
    eer, threshold = equal_error_rate([0.1, 0.2, 0.3, 0.5], [0.4, 0.6, 0.7, 0.8])
    assert (eer, threshold) == (pytest.approx(0.25), pytest.approx(0.45))


def test_eer_interpolates_between_the_operating_points_that_cross() -> None:
    # At 0.2: FMR 0, FNMR 1/3; at 0.25: FMR 1/2, FNMR 1/3. The segment meets FMR = FNMR
    # two thirds of the way along.
    eer, threshold = equal_error_rate([0.1, 0.2, 0.3], [0.25, 0.35])
    assert eer == pytest.approx(1 / 3)
    assert threshold == pytest.approx(0.2 + 2 / 3 * 0.05)


def test_leave_one_out_ranks_match_a_hand_count() -> None:
    # Nearest mate, and impostors at least as close: A0 1.0 (B0) -> 2; A1 1.0 (B0) -> 2;
    # B0 2.6 (A0, A1) -> 3; B1 2.6 (A1, C0, C1) -> 4; C0, C1 0.2 -> 1. D has no mate.
    f = evaluate(LINE, LINE_IDS).overall
    assert f.probes == 6
    assert f.rank1 == pytest.approx(2 / 6)
    assert f.rank10 == 1.0


def test_error_rates_at_a_threshold_match_a_hand_count() -> None:
    # 18 impostor pairs, of which A0-B0 (0.4) and A1-B0 (0.6) are within 1.0; of the
    # three genuine pairs only B's (2.6) is beyond it.
    f = evaluate(LINE, LINE_IDS, thresholds=[1.0]).overall
    point = f.operating_points[0]
    assert (point.false_matches, point.false_non_matches) == (2, 1)
    assert point.fmr == pytest.approx(2 / 18)
    assert point.fnmr == pytest.approx(1 / 3)
    assert (f.genuine.count, f.impostor.count) == (3, 18)
    assert (f.genuine.min, f.genuine.max) == (pytest.approx(0.2), pytest.approx(2.6))


def test_separated_clusters_evaluate_to_zero_eer_and_perfect_identification() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(8) * 3
    ids = [i % 8 for i in range(64)]
    x = centres[ids] + rng.normal(0, 0.05, (64, 8))
    f = evaluate(x, [str(i) for i in ids]).overall
    assert f.eer == 0.0
    assert f.genuine.max < f.eer_threshold < f.impostor.min
    assert f.rank1 == 1.0


def test_blockwise_distances_equal_the_full_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 16))
    ids = [str(i) for i in rng.integers(0, 30, 120)]
    whole = evaluate(x, ids)
    monkeypatch.setattr(evaluation, "BLOCK_ELEMENTS", 500)  # four rows at a time
    blocks = evaluate(x, ids)
    for name in ("eer", "eer_threshold", "rank1", "rank10"):
        assert getattr(blocks.overall, name) == pytest.approx(getattr(whole.overall, name))
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    same = np.array(ids)[:, None] == np.array(ids)[None]
    upper = np.triu(np.ones_like(same), 1)
    assert blocks.overall.genuine.median == pytest.approx(np.median(d[same & upper]))
    assert blocks.overall.impostor.median == pytest.approx(np.median(d[~same & upper]))


def test_impostor_pairs_can_be_sampled_for_large_sets() -> None:
    x = np.random.default_rng(3).normal(size=(200, 8))
    ids = [str(i // 4) for i in range(200)]
    f = evaluate(x, ids, max_impostor_pairs=1000).overall
    assert f.impostor.count == 1000
    assert f.impostor_pairs_total == 200 * 199 // 2 - 50 * 6
    assert f.probes == 200  # identification still uses every pair


def test_groups_are_evaluated_within_themselves() -> None:
    rng = np.random.default_rng(4)
    ids = [i // 4 for i in range(80)]
    x = rng.normal(size=(20, 16))[ids] + rng.normal(0, 0.3, (80, 16))
    groups = ["north" if i < 10 else "south" for i in ids]
    report = evaluate(x, [str(i) for i in ids], groups)
    assert [g.group for g in report.groups] == ["north", "south"]
    for g in report.groups:
        assert g.figures is not None and g.samples == 40
        assert g.figures.impostor.count == 40 * 39 // 2 - 10 * 6  # within the group only
        assert g.fmr_at_global_eer_threshold is not None


def test_a_group_that_cannot_be_evaluated_alone_is_reported_as_skipped() -> None:
    groups = ["x", "x", "x", "x", "y", "y", "x"]  # y holds only C: no impostor pair
    report = evaluate(LINE, LINE_IDS, groups)
    y = next(g for g in report.groups if g.group == "y")
    assert y.figures is None and y.skipped is not None and "two identities" in y.skipped


def test_report_is_json_serialisable() -> None:
    report = evaluate(LINE, LINE_IDS, ["g1"] * 4 + ["g2"] * 3)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["overall"]["operating_points"][0]["threshold"] == 0.5
    assert len(data["overall"]["genuine"]["histogram_counts"]) == evaluation.HISTOGRAM_BINS


def test_summary_lines_name_the_eer_and_each_group() -> None:
    report = evaluate(LINE, LINE_IDS, ["g1"] * 4 + ["g2"] * 3)
    text = "\n".join(summary_lines(report))
    assert "EER" in text and "rank-1" in text
    assert "group g1" in text and "group g2" in text


def test_det_curve_is_written_as_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [i // 3 for i in range(60)]
    x = rng.normal(size=(20, 8))[ids] + rng.normal(0, 0.4, (60, 8))
    report = evaluate(x, [str(i) for i in ids], ["a" if i % 2 else "b" for i in ids])
    out = plot_det(report, tmp_path / "det.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    pair = plot_det((rng.normal(0.4, 0.1, 500), rng.normal(0.9, 0.1, 500)), tmp_path / "p.png")
    assert pair.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("vectors", "identities", "groups"),
    [
        (LINE, ["A"] * 7, None),  # one identity: no impostor pair
        (LINE, [str(i) for i in range(7)], None),  # no genuine pair
        (LINE, LINE_IDS[:-1], None),  # identities shorter than vectors
        (LINE, LINE_IDS, ["g"] * 3),  # groups shorter than vectors
        (np.where(LINE == 5.0, np.nan, LINE), LINE_IDS, None),
    ],
)
def test_unusable_labelled_sets_are_refused(
    vectors: np.ndarray, identities: list[str], groups: list[str] | None
) -> None:
    with pytest.raises(InvalidLabelledSet):
        evaluate(vectors, identities, groups)
