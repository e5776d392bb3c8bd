"""Accuracy regression on the shared development set (issue 2 targets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prum.categories.face.bulk import PhotoResult
from prum.categories.face.evaluation import evaluate
from prum.categories.face.fused import MODEL_SET, model_set_of
from prum.categories.face.fusion import fused_block_distances

pytestmark = pytest.mark.realdata


def test_rank1_and_eer_on_the_development_set(
    shared_data: Path, embedded: list[PhotoResult]
) -> None:
    assert len(embedded) == 61, "every labelled photo must yield a template"
    vectors = np.stack([r.vector for r in embedded if r.vector is not None])
    fused = model_set_of(embedded[0].model_id) == MODEL_SET
    report = evaluate(
        vectors,
        [r.item.identity or "" for r in embedded],
        distances=fused_block_distances if fused else None,
    )
    assert report.overall.rank1 >= 0.98
    assert report.overall.eer <= 0.01
