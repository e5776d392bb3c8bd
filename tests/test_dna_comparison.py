"""DNA bulk and continuous comparison through the router (Art 7), with real processes.

AT connects with a database of its own: unrelated people, plus crime-scene traces left
by people DE holds. The initial bulk comparison must find exactly the hits an
in-process comparison against DE's matcher finds, survive kill -9 of AT mid-way with
nothing lost and nothing twice, and then compare every newly enrolled profile.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.categories.interface import Exposure, SubjectCategory
from prum.demo.processes import Federation, Layout, lay_out
from prum.federation.messages import Category, Purpose
from prum.node.config import CategoryPolicy, ComparisonSettings
from prum.node.core import Node
from prum.node.schema import searches
from prum.node.users import Role, add_user
from prum.node.web.evidence import dna_probe

pytestmark = pytest.mark.slow

PASSWORD = "test-admin-password"
DNA_POLICY = CategoryPolicy(
    purposes=[Purpose.INVESTIGATION], min_penalty_months=0, min_age=None, max_candidates=10
)
EVERYONE = Exposure(subjects=frozenset(SubjectCategory), min_age=None)


def _profiles(n_at: int, n_de: int, n_traces: int) -> tuple[list[bytes], list[bytes], Any]:
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    rng = np.random.default_rng(11)
    de = generator.population(n_de, rng)
    at = generator.population(n_at, rng)
    sources = rng.choice(n_de, n_traces, replace=False)
    traces = [generator.trace(de[int(s)], rng, keep=10) for s in sources]
    at_json = [profile_of(row, loci, identified=True).to_json() for row in at]
    at_json += [profile_of(row, loci, identified=False).to_json() for row in traces]
    de_json = [profile_of(row, loci, identified=True).to_json() for row in de]
    spare = generator.trace(de[int(sources[0])], rng, keep=9)
    return at_json, de_json, profile_of(spare, loci, identified=False).to_json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Federation, Any]]:
    root: Path = tmp_path_factory.mktemp("dna-comparison")
    layout = lay_out(
        root,
        ["AT", "DE"],
        policies={p: {Category.DNA: DNA_POLICY} for p in ("AT", "DE")},
    )
    # Small batches, so the comparison takes several and can be interrupted.
    for party in ("AT", "DE"):
        config = layout.config(party).model_copy(
            update={"comparison": ComparisonSettings(batch_size=40, poll_seconds=0.5)}
        )
        layout.parties[party].config_path.write_text(config.model_dump_json(indent=2))
    at_json, de_json, spare = _profiles(n_at=200, n_de=400, n_traces=12)

    expected: set[tuple[str, str]] = set()
    de_node = Node(layout.config("DE"))
    de_matcher: Any = de_node.matcher(Category.DNA)
    for profile in de_json:
        de_matcher.enroll(profile)
    at_node = Node(layout.config("AT"))
    at_matcher: Any = at_node.matcher(Category.DNA)
    add_user(at_node.engine, "ada", PASSWORD, {Role.ADMIN, Role.AUDITOR})
    add_user(at_node.engine, "olga", PASSWORD, {Role.OFFICER})
    for profile in at_json:
        reference = at_matcher.enroll(profile)
        probe = at_matcher.store.records([at_matcher.index.last_id])[at_matcher.index.last_id]
        result = de_matcher.search_profile(
            _parse(at_matcher, probe.profile), max_candidates=10, exposure=EVERYONE
        )
        expected |= {(reference, c.reference) for c in result.candidates}
    at_node.close()
    de_node.close()
    assert len(expected) >= 12  # every trace finds its source (and chance hits may add)

    with Federation(layout) as running:
        running.start_all()
        yield layout, running, {"expected": expected, "spare": spare}


def _parse(matcher: Any, profile_json: str) -> Any:
    from prum.categories.dna.profile import parse_json

    return parse_json(profile_json, loci=matcher.loci)


def _admin(layout: Layout) -> httpx.Client:
    return httpx.Client(base_url=layout.parties["AT"].api_url, auth=("ada", PASSWORD), timeout=60)


def _wait(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _jobs(layout: Layout) -> dict[str, dict[str, Any]]:
    with _admin(layout) as admin:
        response = admin.get("/api/dna/comparisons")
        response.raise_for_status()
        return {job["mode"]: job for job in response.json()}


def _hits(layout: Layout) -> Counter[tuple[str, str]]:
    """Every (AT profile, DE profile) hit stored at AT, counted."""
    found: Counter[tuple[str, str]] = Counter()
    with _admin(layout) as admin:
        response = admin.get("/api/searches")
        response.raise_for_status()
        for summary in response.json():
            search = admin.get(f"/api/searches/{summary['id']}").json()
            for answer in search["replies"]:
                for c in answer["candidates"]:
                    found[(c["probe_reference"], c["reference"])] += 1
    return found


def test_initial_bulk_comparison_survives_kill_9_and_finds_exactly_the_hits(
    world: tuple[Layout, Federation, Any],
) -> None:
    layout, federation, facts = world
    with _admin(layout) as admin:
        started = admin.post("/api/dna/comparisons", json={"parties": ["DE"]})
    assert started.status_code == 200, started.text
    _wait("a first batch", lambda: _jobs(layout)["initial_bulk"]["batches"] >= 1)
    federation.kill("AT")
    federation.restart("AT")
    jobs = _wait(
        "the initial comparison to finish",
        lambda: (j := _jobs(layout))["initial_bulk"]["status"] == "done" and j,
    )
    assert jobs["initial_bulk"]["compared"] == 212
    hits = _hits(layout)
    assert set(hits) == facts["expected"]
    assert max(hits.values()) == 1  # nothing twice
    # Each hit keeps the own profile that found it: the examiner sees both profiles.
    node = Node(layout.config("AT"))
    try:
        with node.engine.connect() as conn:
            stored = [dict(r._mapping) for r in conn.execute(select(searches))]
        store = node.matcher(Category.DNA).store
        profiles = dict(store.iter_profiles())
        own = {r.reference: profiles[i] for i, r in store.records(list(profiles)).items()}
        for search in stored:
            for answer in (search["reply"] or {}).get("replies", []):
                for c in answer["candidates"]:
                    shown = dna_probe(search, c)
                    assert not shown["missing"] and shown["reference"] == c["probe_reference"]
                    loci = json.loads(own[c["probe_reference"]])["loci"]
                    assert shown["loci"] == {k: [str(a) for a in v] for k, v in loci.items()}
    finally:
        node.close()


def test_a_newly_enrolled_profile_is_compared_continuously(
    world: tuple[Layout, Federation, Any],
) -> None:
    layout, _, facts = world
    _wait("the initial comparison", lambda: _jobs(layout)["initial_bulk"]["status"] == "done")
    before = set(_hits(layout))
    node = Node(layout.config("AT"))  # a second writer beside the running node (WAL)
    try:
        reference = node.matcher(Category.DNA).enroll(facts["spare"])
    finally:
        node.close()
    new = _wait(
        "the continuous comparison's hit",
        lambda: {h for h in _hits(layout) if h not in before},
    )
    assert {probe for probe, _ in new} == {reference}


def test_comparison_needs_an_admin_and_names_other_parties(
    world: tuple[Layout, Federation, Any],
) -> None:
    layout, _, _ = world
    with _admin(layout) as admin:
        assert admin.post("/api/dna/comparisons", json={"parties": ["AT"]}).status_code == 400
        assert admin.post("/api/dna/comparisons", json={"parties": []}).status_code == 400
    with httpx.Client(
        base_url=layout.parties["AT"].api_url, auth=("olga", PASSWORD), timeout=60
    ) as officer:
        refused = officer.post("/api/dna/comparisons", json={"parties": ["DE"]})
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
