"""The demo's other categories: what each party holds, and one scripted case each.

prum.demo.run runs the face case; this module adds the national policies of the other
categories to the demo federation, fills each database with generated (fictional)
data before the processes start, and then drives one case per category through the
national APIs, exactly as an officer's client would.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from prum.demo.processes import poll
from prum.errors import Unavailable
from prum.federation.messages import Category, Purpose
from prum.node.config import LEGACY_FINGER_TYPES, CategoryPolicy

# Which party offers which category in the demo (every party offers faces).
OFFERS: dict[Category, list[str]] = {
    Category.DNA: ["AT", "DE", "NL"],
    Category.RECORDS: ["AT", "DE", "HU", "EUROPOL"],  # participation is voluntary
    Category.VEHICLE: ["AT", "DE", "HU", "NL"],
    Category.FINGER: ["AT", "DE", "NL"],
}
# DNA has no penalty threshold in the Regulation (faces and police records do).
POLICIES: dict[Category, CategoryPolicy] = {
    Category.DNA: CategoryPolicy(
        purposes=list(Purpose), min_penalty_months=0, min_age=None, max_candidates=10
    ),
    # Police records: offences punishable by at least a year (Art 2), adults only.
    Category.RECORDS: CategoryPolicy(purposes=[Purpose.INVESTIGATION], max_candidates=10),
    # Fingerprints: each search type with the legacy capacity and candidate cap.
    Category.FINGER: CategoryPolicy(
        purposes=list(Purpose),
        min_penalty_months=0,
        min_age=None,
        search_types=dict(LEGACY_FINGER_TYPES),
    ),
    # Vehicle registrations: no penalty threshold, no subject categories.
    Category.VEHICLE: CategoryPolicy(purposes=list(Purpose), min_penalty_months=0, min_age=None),
}
VEHICLES_PER_COUNTRY, STOLEN_IN = 2_000, "NL"
# Fingerprints: DE's AFIS holds up to this many impressions of each real sample finger
# (prum.demo.samples), never the probe itself, which AT searches with.
FINGER_HOLDER, FINGER_IMPRESSIONS_HELD = "DE", 6
DNA_HOLDER, DNA_PROFILES, DNA_TRACES_AT_AT = "DE", 3_000, 6
RECORDS_HOLDER, RECORDS_PEOPLE = "DE", 2_000
# A fictional person DE holds in its police records, written in Greek letters.
WANTED = {
    "surnames": ["Παπαδόπουλος"],
    "first_names": ["Δημήτριος", "Νικόλαος"],
    "date_of_birth": "1983-04-17",
    "place_of_birth": "Θεσσαλονίκη",
    "country_of_birth": "GR",
    "nationalities": ["GR"],
    "gender": "M",
}
# What an Austrian officer types from a hotel register: Latin letters after another
# transliteration scheme, the name order swapped, no middle name.
WANTED_AS_TYPED = {
    "surnames": ["Dimitrios"],
    "first_names": ["Papadopulos"],
    "date_of_birth": "1983-04-17",
    "gender": "M",
}


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
    records_reference: str = ""  # DE's reference of the wanted person
    stolen_plate: str = ""  # a Dutch car signalled stolen, as registered
    stolen_vin: str = ""
    finger_probe: bytes = b""  # an ANSI/NIST-ITL tenprint transaction made at AT
    finger_source: set[str] = field(default_factory=set)  # DE's records of that finger
    finger_position: int = 0  # the probe's ANSI/NIST-ITL finger position
    finger_records: int = 0  # how many prints DE's AFIS holds
    notes: list[str] = field(default_factory=list)


# --- the scripted cases -----------------------------------------------------------------


Api = Callable[[str, str], httpx.Client]
Check = Callable[[httpx.Response], Any]


Case = Callable[[], dict[str, Any]]


def cases(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Case]:
    """One case per category, run in this order; each returns what it saw or raises a
    PrumError saying what went wrong."""
    return {
        "dna": lambda: _dna_case(facts, api, check, out),
        "records": lambda: _records_case(facts, api, check, out),
        "vehicle": lambda: _vehicle_case(facts, api, check, out),
        "finger": lambda: _finger_case(facts, api, check, out),
    }


def _holder_candidates(search: dict[str, Any], holder: str, what: str) -> list[dict[str, Any]]:
    """The holder's candidates in a search answer; Unavailable when there are none."""
    for reply in search["replies"]:
        if reply["party"] == holder and reply["candidates"]:
            return list(reply["candidates"])
    statuses = {r["party"]: r["status"] for r in search["replies"]}
    raise Unavailable(f"{what}: {holder} gave no candidate (statuses {statuses})")


def _finger_case(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Any]:
    if not facts.finger_probe:
        raise Unavailable("no fingerprint probe: the AFIS was not filled (see the enrolment)")
    out.rule("[bold]AT searches the federation with a tenprint (TP/TP, ANSI/NIST-ITL)")
    with api("AT", "olga") as officer:
        search = check(
            officer.post(
                "/api/searches",
                json={
                    "category": "finger",
                    "purpose": "investigation",
                    "offence": "0900 00",
                    "max_penalty_months": 120,
                    "case_reference": "AT-BK-2026-2210",
                    "search_type": "TP/TP",
                    "probe": {
                        "format": "ansi_nist",
                        "data": base64.b64encode(facts.finger_probe).decode(),
                    },
                },
            )
        )
    for reply in search["replies"]:
        hits = reply["candidates"]
        words = f"score {hits[0]['score']:.3f}, {hits[0]['false_match_words']}" if hits else ""
        out.print(f"  {reply['party']:8s} {reply['status']:10s} {len(hits)} candidate(s) {words}")
    top = _holder_candidates(search, FINGER_HOLDER, "the TP/TP search")[0]
    if top["reference"] not in facts.finger_source:
        raise Unavailable(f"{FINGER_HOLDER}'s TP/TP candidate is not the probe's finger")
    out.print(
        f"  {FINGER_HOLDER}'s candidate is another impression of the same finger"
        " (TP/TP returns 1 candidate: the legacy cap)"
    )
    return {"search": search, "found": True}


def _vehicle_case(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Any]:
    out.rule("[bold]AT asks the Netherlands about a plate seen at the robbery (EUCARIS)")
    typed = facts.stolen_plate.lower().replace("-", " ")  # as a witness wrote it down
    with api("AT", "olga") as officer:
        search = check(
            officer.post(
                "/api/searches",
                json={
                    "category": "vehicle",
                    "purpose": "investigation",
                    "offence": "0900 00",
                    "max_penalty_months": 120,
                    "case_reference": "AT-BK-2026-2210",
                    "targets": [STOLEN_IN],
                    "probe": {"format": "vehicle_query", "vehicle": {"plate": typed}},
                },
            )
        )
    [reply] = search["replies"]
    if not reply["candidates"]:
        raise Unavailable(f"{STOLEN_IN} answered {reply['status']} for plate {typed!r}")
    data = reply["candidates"][0]["details"]
    out.print(
        f"  typed {typed!r}; {STOLEN_IN} answered at once (no step 2): A {data['plate']},"
        f" E {data['vin']}, D.1 {data['make']}, D.3 {data['model']},"
        f" C.1.1 {data['holder_surname']}, signals: {', '.join(data['signals']) or 'none'}"
    )
    if "stolen" not in data["signals"]:
        raise Unavailable(f"{STOLEN_IN}'s answer lacks the stolen signal of {data['plate']}")
    return {"search": search, "vehicle": data}


def _records_case(facts: Facts, api: Api, check: Check, out: Console) -> dict[str, Any]:
    out.rule("[bold]AT searches the police records of the federation (pseudonymised)")
    out.print(f"  typed at AT: {WANTED_AS_TYPED}; only keyed hashes and Bloom filters travel")
    with api("AT", "olga") as officer:
        search = check(
            officer.post(
                "/api/searches",
                json={
                    "category": "records",
                    "purpose": "investigation",
                    "offence": "0900 00",
                    "max_penalty_months": 120,
                    "case_reference": "AT-BK-2026-2210",
                    "person": WANTED_AS_TYPED,
                },
            )
        )
    for reply in search["replies"]:
        hits = reply["candidates"]
        words = hits[0]["false_match_words"] if hits else ""
        out.print(f"  {reply['party']:8s} {reply['status']:10s} {len(hits)} match(es) {words}")
    hit = _holder_candidates(search, RECORDS_HOLDER, "the police-records search")[0]
    if hit["reference"] != facts.records_reference:
        raise Unavailable("the records search did not find the wanted person first")
    with api("AT", "eric") as examiner:
        check(
            examiner.post(
                f"/api/searches/{search['id']}/verifications",
                json={
                    "party": RECORDS_HOLDER,
                    "reference": hit["reference"],
                    "decision": "confirmed",
                    "justification": "Name, year of birth and gender agree; quality is high"
                    " and no other candidate comes close.",
                },
            )
        )
    core = release_core_data(
        api,
        check,
        search_id=search["id"],
        holder=RECORDS_HOLDER,
        reference=hit["reference"],
        facts_text="Armed robbery of a jewellery shop in Vienna on 3 November 2026; the"
        " suspect gave this name at a hotel.",
    )
    out.print(
        f"  confirmed by examiner eric, requested with the facts, released by {RECORDS_HOLDER}'s"
        f" approver anna: {core.get('surnames')} {core.get('first_names')},"
        f" born {core.get('date_of_birth')}"
    )
    return {"search": search, "core_data": core}


def release_core_data(
    api: Api, check: Check, *, search_id: int, holder: str, reference: str, facts_text: str
) -> dict[str, Any]:
    """Step 2 for a confirmed candidate: request, the holder's release, the arrival."""
    with api("AT", "olga") as officer:
        check(
            officer.post(
                "/api/core-data-requests",
                json={
                    "search_id": search_id,
                    "party": holder,
                    "reference": reference,
                    "facts": facts_text,
                },
            )
        )
    with api(holder, "anna") as approver:
        pending = poll(
            f"the request in {holder}'s inbox",
            lambda: [
                r
                for r in check(approver.get("/api/inbox"))
                if r["status"] == "pending" and r["reference"] == reference
            ],
        )
        check(approver.post(f"/api/inbox/{pending[0]['id']}/decision", json={"action": "release"}))
    with api("AT", "olga") as officer:
        released = poll(
            "the core data at AT",
            lambda: [
                r
                for r in check(officer.get("/api/core-data-requests"))
                if r["status"] == "released" and r["reference"] == reference
            ],
        )
    return dict(released[0]["reply"]["core_data"])


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
    hit = _holder_candidates(search, DNA_HOLDER, "the DNA trace search")[0]
    if hit["reference"] != facts.dna_source:
        raise Unavailable(f"the DNA trace did not find its source in {DNA_HOLDER} first")
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
    found = {job["party"]: job["hits"] for job in jobs}
    if found.get(DNA_HOLDER, 0) < DNA_TRACES_AT_AT:
        raise Unavailable(
            f"the initial bulk comparison with {DNA_HOLDER} found {found.get(DNA_HOLDER, 0)}"
            f" of the {DNA_TRACES_AT_AT} traces of its people that AT holds"
        )
    return {"search": search, "comparisons": jobs, "started": dt.datetime.now(dt.UTC).isoformat()}
