"""The demo's other categories: what each party holds, and one scripted case each.

prum.demo runs the face case; this module adds the national policies of the other
categories to the demo federation, fills each database with generated (fictional)
data before the processes start, and then drives one case per category through the
national APIs, exactly as an officer's client would.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from rich.console import Console

from prum.errors import Unavailable
from prum.messages import Category, Purpose
from prum.node.config import CategoryPolicy
from prum.node.core import Node
from prum.node.schema import core_data

# Which party offers which category in the demo (every party offers faces).
OFFERS: dict[Category, list[str]] = {
    Category.DNA: ["AT", "DE", "NL"],
}
# DNA has no penalty threshold in the Regulation (faces and police records do).
POLICIES: dict[Category, CategoryPolicy] = {
    Category.DNA: CategoryPolicy(
        purposes=list(Purpose), min_penalty_months=0, min_age=None, max_candidates=10
    ),
}
DNA_HOLDER, DNA_PROFILES, DNA_TRACES_AT_AT = "DE", 3_000, 6


def policies(parties: list[str]) -> dict[str, dict[Category, CategoryPolicy]]:
    """Each party's categories: faces everywhere, the others where OFFERS says."""
    plan: dict[str, dict[Category, CategoryPolicy]] = {
        p: {Category.FACE: CategoryPolicy()} for p in parties
    }
    for category, offering in OFFERS.items():
        for party in offering:
            if party in plan:
                plan[party][category] = POLICIES[category]
    return plan


@dataclass
class Facts:
    """What the scripted cases need to know about the generated data."""

    dna_trace: bytes = b""  # a crime-scene trace at AT of a person DE holds
    dna_source: str = ""  # DE's reference of that person
    notes: list[str] = field(default_factory=list)


def enrol(nodes: dict[str, Node], out: Console, *, seed: int = 7) -> Facts:
    """Fill the non-face databases (before the processes start)."""
    facts = Facts()
    _enrol_dna(nodes, out, facts, seed=seed)
    return facts


def _enrol_dna(nodes: dict[str, Node], out: Console, facts: Facts, *, seed: int) -> None:
    from prum.dna.frequencies import AlleleFrequencies
    from prum.dna.generate import Generator, profile_of
    from prum.dna.loci import LocusSet

    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    rng = np.random.default_rng(seed)
    for party in OFFERS[Category.DNA]:
        node = nodes[party]
        matcher: Any = node.matcher(Category.DNA)
        n = DNA_PROFILES if party == DNA_HOLDER else DNA_PROFILES // 10
        database = generator.database(n, seed=seed + len(party) * 31 + ord(party[0]))
        references = []
        for row, identified in zip(database.codes, database.identified, strict=True):
            profile = profile_of(row, loci, identified=bool(identified))
            references.append(matcher.enroll(profile.to_json()))
        if party == DNA_HOLDER:
            source = int(rng.integers(0, n))
            while not database.identified[source]:
                source = int(rng.integers(0, n))
            facts.dna_source = references[source]
            facts.dna_trace = profile_of(
                generator.trace(database.codes[source], rng, keep=10), loci, identified=False
            ).to_json()
            _core_data(node, references[source], party, "DNA reference sample")
            # Traces of DE's people left in Austria: the initial bulk comparison finds them.
            at_matcher: Any = nodes["AT"].matcher(Category.DNA)
            for i in rng.choice(n, DNA_TRACES_AT_AT, replace=False):
                trace = generator.trace(database.codes[int(i)], rng, keep=int(rng.integers(8, 12)))
                at_matcher.enroll(profile_of(trace, loci, identified=False).to_json())
    for party in OFFERS[Category.DNA]:
        held = nodes[party].matcher(Category.DNA).describe()["records"]
        out.print(f"  {party:8s} DNA database: {held} generated profiles (persons and traces)")


def _core_data(node: Node, reference: str, party: str, what: str) -> None:
    with node.engine.begin() as conn:
        conn.execute(
            core_data.insert().values(
                reference=reference,
                data={
                    "surnames": ["Brandt"],
                    "first_names": ["Jonas"],
                    "date_of_birth": "1987-05-14",
                    "nationalities": [party],
                    "gender": "M",
                    "biometric_taken_at": "2023-09-12",
                    "biometric_taken_place": f"{party} police custody (demo)",
                    "offence": f"burglary (demo; {what})",
                    "case_number": f"{party}-DNA-2023-118",
                    "responsible_authority": f"{party} national contact point (demo)",
                },
            )
        )


# --- the scripted cases -----------------------------------------------------------------


Api = Callable[[str, str], httpx.Client]
Check = Callable[[httpx.Response], Any]


def poll(what: str, fetch: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return value
        time.sleep(0.5)
    raise Unavailable(f"timed out waiting for {what}")


def run_cases(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Any]:
    """One case per category; returns what each saw."""
    return {"dna": _dna_case(facts, api, check, out)}


def _dna_case(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Any]:
    out.rule("[bold]AT searches the federation with a crime-scene DNA trace")
    with api("AT", "olga") as officer:
        search = check(
            officer.post(
                "/api/searches",
                json={
                    "category": "dna",
                    "purpose": "investigation",
                    "offence": "0500 00",
                    "max_penalty_months": 120,
                    "case_reference": "AT-LKA-2026-0977",
                    "probe": {
                        "format": "dna_profile",
                        "data": base64.b64encode(facts.dna_trace).decode(),
                    },
                },
            )
        )
    for reply in search["replies"]:
        hits = reply["candidates"]
        words = hits[0]["false_match_words"] if hits else ""
        out.print(f"  {reply['party']:8s} {reply['status']:10s} {len(hits)} hit(s) {words}")
    hit = next(c for r in search["replies"] if r["party"] == DNA_HOLDER for c in r["candidates"])
    assert hit["reference"] == facts.dna_source, "the trace must find its source"
    out.print(
        f"  {DNA_HOLDER}'s matching profile: {len(hit['details']['profile'])} loci;"
        " the examiner verifies it like any candidate"
    )
    out.rule("[bold]AT connects its DNA database: initial bulk comparison with DE and NL")
    with api("AT", "ada") as admin:
        check(admin.post("/api/dna/comparisons", json={"parties": ["DE", "NL"]}))
        jobs = poll(
            "the initial bulk comparisons",
            lambda: (
                (
                    j := [
                        x
                        for x in check(admin.get("/api/dna/comparisons"))
                        if x["mode"] == "initial_bulk"
                    ]
                )
                and all(x["status"] == "done" for x in j)
                and j
            ),
        )
    for job in jobs:
        out.print(
            f"  with {job['party']}: {job['compared']} profiles compared in"
            f" {job['batches']} batch(es), {job['hits']} hit(s) for verification;"
            " continuous comparison of new profiles follows"
        )
    return {"search": search, "comparisons": jobs, "started": dt.datetime.now(dt.UTC).isoformat()}
