"""Our face ABIS answers what the node's own gallery answers under the node's age rule:
the node withholds minors in its index; the ABIS (which knows no dates of birth) is asked
for a few more candidates than wanted and the node drops the minors, and only when that
comes back short are their references named as ``exclude``; with more of them than a
face search may return (100), and with a gallery whose own candidate cap is 10, the lists
must still be equal."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

from prum.categories.face.store import NewRecord
from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.demo.samples import SampleSet
from prum.federation.messages import Category, Probe
from prum.node.abis.adapter import make_external
from prum.node.abis.contract import IdentifyRequest
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.abis.server import create_abis_app
from prum.node.abis.service import AbisService
from prum.node.categories import make_matcher

pytestmark = pytest.mark.realdata

MINORS = 150  # more than the 100 candidates a face search returns at most


@dataclasses.dataclass
class Setup:
    node: Any
    abis: AbisService
    probe: Probe
    exposure: Exposure
    adults: set[str]


@pytest.fixture
def setup(tmp_path: Path, samples: SampleSet) -> Iterator[Setup]:
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
        adults = {ref for (_, ref), young in zip(stored, minor, strict=True) if not young}
        probe = Probe(format="image", data=base64.b64encode(photo))
        yield Setup(node, abis, probe, exposure, adults)
    finally:
        abis.close()
        node.close()


def test_a_face_abis_with_many_excluded_minors_answers_as_the_node_does(setup: Setup) -> None:
    node, abis, probe, exposure = setup.node, setup.abis, setup.probe, setup.exposure
    ours = node.search(probe, max_candidates=10, exposure=exposure).candidates
    # What the adapter sends when the short way came back short: the minors, named.
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


@pytest.mark.parametrize(("wanted", "requests"), [(10, 1), (45, 2)])
def test_the_adapter_names_withheld_references_only_when_the_list_came_back_short(
    setup: Setup, wanted: int, requests: int
) -> None:
    """10 wanted: the 15 asked hold the 5 near minors and 10 adults, one request with no
    references named. 45 wanted: the 67 asked hold only the 40 adults there are, so the
    adapter asks again naming the withheld minors. No minor is ever a candidate."""
    node, abis, probe, exposure = setup.node, setup.abis, setup.probe, setup.exposure
    seen: list[IdentifyRequest] = []
    identify = abis.identify

    def observed(request: IdentifyRequest) -> Any:
        seen.append(request)
        return identify(request)

    abis.identify = observed  # type: ignore[method-assign]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            create_abis_app(abis, token="t"), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the ABIS did not start"
            time.sleep(0.05)
        endpoint = AbisEndpoint(url=f"http://127.0.0.1:{port}", token="t", deadline_ms=20_000)
        adapter = make_external(Category.FACE, node, endpoint)
        theirs = adapter.search(probe, max_candidates=wanted, exposure=exposure).candidates
        # The node's own gallery stops at its cap (10); every adult there is, otherwise.
        ours = node.search(probe, max_candidates=wanted, exposure=exposure).candidates
        assert [c.reference for c in theirs[: len(ours)]] == [c.reference for c in ours]
        assert {c.reference for c in theirs} <= setup.adults
        assert len(theirs) == min(wanted, len(setup.adults))
        assert len(seen) == requests
        assert seen[0].exclude == []
        if requests == 2:
            assert len(seen[1].exclude) == MINORS
    finally:
        server.should_exit = True
        thread.join(timeout=10)
