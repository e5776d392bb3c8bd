"""Our face ABIS answers what the node's own gallery answers under the node's age rule:
the node withholds minors in its index, the ABIS (which knows no dates of birth) gets
their references as ``exclude``; with more of them than a face search may return (100),
and with a gallery whose own candidate cap is 10, the lists must still be equal."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from prum.categories.face.store import NewRecord
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.demo.samples import SampleSet
from prum.federation.messages import Category, Probe
from prum.node.abis.adapter import make_external
from prum.node.abis.contract import IdentifyRequest
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.abis.service import AbisService
from prum.node.categories import make_matcher

pytestmark = pytest.mark.realdata

MINORS = 150  # more than the 100 candidates a face search returns at most


def test_a_face_abis_with_many_excluded_minors_answers_as_the_node_does(
    tmp_path: Path, samples: SampleSet
) -> None:
    photo = samples.images[0][0].read_bytes()
    node = make_matcher(Category.FACE, Settings(data_dir=tmp_path / "node", country="DE"))
    abis = AbisService(Category.FACE, tmp_path / "abis")
    try:
        gallery = node.gallery  # type: ignore[attr-defined]
        template = gallery.pipeline.extract(photo, use="probe").template
        rng = np.random.default_rng(1)
        # Nearest the probe 5 minors, then 40 adults, then 145 minors further away: the
        # ABIS must skip the near minors and still fill the list with adults.
        minor = [i < 5 or i >= 45 for i in range(MINORS + 40)]
        noise = [0.01 if i < 5 else 0.03 if i < 45 else 0.1 for i in range(MINORS + 40)]
        records = [
            NewRecord(
                subject_category=SubjectCategory.CONVICTED,
                provenance="test",
                model_id=template.model_id,
                template=(
                    template.vector + sigma * rng.standard_normal(len(template.vector))
                ).astype(np.float32),
                date_of_birth=dt.date(2015, 5, 1) if young else dt.date(1980, 5, 1),
            )
            for young, sigma in zip(minor, noise, strict=True)
        ]
        stored = gallery.add_records(records)
        abis.matcher.gallery.add_records(
            [
                dataclasses.replace(r, source_key=reference, date_of_birth=None)
                for r, (_, reference) in zip(records, stored, strict=True)
            ]
        )
        exposure = Exposure(subjects=frozenset({SubjectCategory.CONVICTED}), min_age=18)
        probe = Probe(format="image", data=base64.b64encode(photo))
        ours = node.search(probe, max_candidates=10, exposure=exposure).candidates
        # What the adapter sends: the minors as excluded references.
        adapter = make_external(Category.FACE, node, AbisEndpoint(url="http://127.0.0.1:9"))
        excluded = adapter._withheld(exposure)
        assert len(excluded) == MINORS
        answer = abis.identify(
            IdentifyRequest(
                probe=probe,
                max_candidates=10,
                subjects=[SubjectCategory.CONVICTED],
                exclude=excluded,
            )
        )
        assert len(ours) == 10
        assert [c.reference for c in answer.candidates] == [c.reference for c in ours]
    finally:
        abis.close()
        node.close()
