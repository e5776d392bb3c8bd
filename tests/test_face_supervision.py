"""The supervisor's report of `prum face evaluate` (face/supervision.py)."""

from __future__ import annotations

import numpy as np
import pytest

from prum.categories.face.calibration import ImpostorDistribution
from prum.categories.face.fused import MODEL_SET
from prum.categories.face.supervision import supervise, systems_for


def _people(
    rng: np.random.Generator, sizes: list[int], spread: float
) -> tuple[np.ndarray, list[str]]:
    vectors, names = [], []
    for n, size in enumerate(sizes):
        centre = rng.normal(size=8)
        vectors.append(centre + spread * rng.normal(size=(size, 8)))
        names += [f"p{n}"] * size
    return np.vstack(vectors), names


def test_one_person_with_many_photos_does_not_make_the_per_person_figure_his() -> None:
    rng = np.random.default_rng(0)
    x, names = _people(rng, [2] * 300, spread=0.05)
    # One more person with 60 photos spread so widely that his genuine pairs all fail.
    wide = rng.normal(size=8) + 3.0 * rng.normal(size=(60, 8))
    x = np.vstack([x, wide])
    names += ["many"] * 60
    r = supervise(x, names, None, attempted=len(names) + 5, model_set=None, reference=None)
    assert r["fte_rate"] == pytest.approx(5 / (len(names) + 5))
    level = r["systems"]["model"]["levels"][0]
    # 1,770 of 2,070 genuine pairs are his: pooled FNMR is mostly his, per person it is not.
    assert level["fnmr"] > 0.7
    assert level["fnmr_per_person"] < 0.05


def test_levels_without_enough_impostor_pairs_say_so() -> None:
    rng = np.random.default_rng(1)
    x, names = _people(rng, [3] * 20, spread=0.1)
    r = supervise(x, names, None, attempted=len(names), model_set=None, reference=None)
    levels = {p["fmr"]: p["resolved"] for p in r["systems"]["model"]["levels"]}
    assert levels == {1e-3: False, 1e-4: False, 1e-5: False}  # 1,710 impostor pairs


def test_calibration_check_compares_the_reference_with_what_this_set_shows() -> None:
    rng = np.random.default_rng(2)
    x, names = _people(rng, [2] * 400, spread=0.05)
    own = supervise(x, names, None, attempted=800, model_set=None, reference=None)
    assert "calibration" not in own["systems"]["model"]
    d = np.linalg.norm(x[:400, None] - x[None, 400:], axis=2).ravel()
    reference = ImpostorDistribution.from_distances(d, source="half of this set", model_id="x")
    r = supervise(x, names, None, attempted=800, model_set=None, reference=reference)
    check = r["systems"]["model"]["calibration"]
    first = check["levels"][0]
    assert first["predicted"] == 1e-2 and first["resolved"]
    assert 0.5 < first["ratio"] < 2.0


def test_a_fused_set_is_reported_with_each_model_alone_beside_it() -> None:
    assert list(systems_for(MODEL_SET)) == [
        "dlib+sface (fused)",
        "dlib alone",
        "SFace + mirror alone",
    ]
    assert list(systems_for("dlib")) == ["dlib"]
