"""What each demo country's national systems send to its node, before the processes
start: the face database, the DNA database, the police-records index, the vehicle
register and the AFIS, each through the node's national-systems interface
(prum.node.systems, the same code path as its HTTP listener), with core data for every
biometric record. No demo code writes a node table.

The data: real sample photos and fingerprints; generated, fictional DNA profiles,
persons, registrations and core data.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from prum.categories.interface import SubjectCategory
from prum.demo.samples import SampleSet
from prum.demo.scenarios import (
    DNA_HOLDER,
    DNA_PROFILES,
    DNA_TRACES_AT_AT,
    FINGER_HOLDER,
    FINGER_IMPRESSIONS_HELD,
    OFFERS,
    RECORDS_HOLDER,
    RECORDS_PEOPLE,
    STOLEN_IN,
    VEHICLES_PER_COUNTRY,
    WANTED,
    Facts,
)
from prum.errors import SampleDataUnavailable, Unavailable
from prum.federation.messages import Category
from prum.node.core import Node
from prum.node.systems.accounts import SystemAccount
from prum.node.systems.contract import Outcome, RecordIn, RecordResult
from prum.node.systems.service import NationalSystems

# Fictional people: the sample photos are of public figures, the core data is invented.
SURNAMES = ["Novak", "Weber", "Horvath", "de Vries", "Moreau", "Rossi", "Berg", "Kovac"]
FIRST_NAMES = ["Anton", "Lena", "Bence", "Sanne", "Luc", "Giulia", "Erik", "Mira"]
# Europol's third-country data name the country they came from (Art 48).
EUROPOL_ORIGIN = "UA"


def feed(
    node: Node, records: Iterable[RecordIn], *, system: str, workers: int = 1
) -> list[RecordResult]:
    """Send records to a node through its national-systems interface; the results."""
    account = SystemAccount(system, frozenset(node.config.categories))
    systems = NationalSystems(node, workers=workers)
    try:
        return list(systems.apply(records, account))
    finally:
        systems.close()


def record(**fields: Any) -> RecordIn:
    """A record as a national system would send it (validated like one)."""
    return RecordIn.model_validate(fields)


def _created(results: list[RecordResult], what: str) -> list[str]:
    """The references, in order; Unavailable if a record the demo needs was refused."""
    refused = [r for r in results if r.outcome is Outcome.REFUSED]
    if refused:
        first = refused[0].error.message if refused[0].error else "?"
        raise Unavailable(f"{len(refused)} {what} were refused; the first: {first}")
    return [r.reference or "" for r in results]


def fictional_core_data(party: str, n: int, offence: str = "robbery (demo)") -> dict[str, Any]:
    born = dt.date(1970, 1, 1) + dt.timedelta(days=(n * 977) % 12_000)
    return {
        "surnames": [SURNAMES[n % len(SURNAMES)]],
        "first_names": [FIRST_NAMES[(n // len(SURNAMES)) % len(FIRST_NAMES)]],
        "date_of_birth": born.isoformat(),
        "place_of_birth": "fictional demo data",
        "nationalities": [party if party != "EUROPOL" else EUROPOL_ORIGIN],
        "gender": "U",
        "biometric_taken_at": "2024-03-01",
        "biometric_taken_place": f"{party} police custody (demo)",
        "offence": offence,
        "case_number": f"{party}-CASE-{1000 + n}",
        "responsible_authority": f"{party} national contact point (demo)",
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- faces -----------------------------------------------------------------------------


def enrol_faces(
    nodes: dict[str, Node],
    samples: SampleSet,
    *,
    requester: str,
    holder: str,
    workers: int,
    out: Console,
) -> Path:
    """Spread identities over the parties (the holder gets the probe person's other
    photos); each face database sends its photos with core data. Returns the probe."""
    by_identity: dict[str, list[Path]] = defaultdict(list)
    for path, identity in samples.images:
        by_identity[identity].append(path)
    ordered = sorted(by_identity, key=lambda i: (-len(by_identity[i]), i))
    probe_identity = ordered[0]
    probe = by_identity[probe_identity][0]
    parties = list(nodes)
    owners = {probe_identity: holder}
    others = [p for p in parties if p != requester] + [requester]
    for n, identity in enumerate(ordered[1:]):
        owners[identity] = others[n % len(others)]
    out.print(f"probe: {probe.name}; its person's other photos are held by {holder} only")
    counter = 0
    for party, node in nodes.items():
        records = []
        for identity, paths in sorted(by_identity.items()):
            if owners[identity] != party:
                continue
            for path in paths:
                if path == probe:
                    continue
                records.append(
                    record(
                        category=Category.FACE,
                        national_id=f"{party}-FACE-{path.stem}"[:128],
                        sample={"format": "image", "data": _b64(path.read_bytes())},
                        subject_category=SubjectCategory.CONVICTED,
                        provenance=(
                            "third-country data via Europol"
                            if party == "EUROPOL"
                            else f"{party} national collection"
                        ),
                        origin_country=EUROPOL_ORIGIN if party == "EUROPOL" else None,
                        person_key=re.sub(r"[^A-Za-z0-9._-]", "-", f"{party}-P-{identity}")[:128],
                        core_data=fictional_core_data(party, counter),
                    )
                )
                counter += 1
        results = feed(node, records, system="face-database", workers=workers)
        refused = sum(r.outcome is Outcome.REFUSED for r in results)
        enrolled = sum(r.outcome is Outcome.CREATED for r in results)
        out.print(
            f"  {party:8s} face database sent {len(records)} photos: {enrolled} enrolled"
            + (f", {refused} refused (quality or no face)" if refused else "")
        )
    return probe


def add_synthetic_faces(nodes: dict[str, Node], scale: int) -> None:
    """Synthetic background templates (flagged as synthetic wherever they appear)."""
    from prum.categories.face.synthetic import add_synthetic

    for party, node in nodes.items():
        gallery = node.matcher(Category.FACE).gallery  # type: ignore[attr-defined]
        add_synthetic(gallery, scale, seed=hash(party) % 1000)


# --- the other categories -------------------------------------------------------------


def enrol_others(nodes: dict[str, Node], out: Console, *, seed: int = 7) -> Facts:
    """DNA, police records, vehicles and fingerprints of the demo countries."""
    facts = Facts()
    _dna(nodes, out, facts, seed=seed)
    _records(nodes, out, facts, seed=seed)
    _vehicles(nodes, out, facts, seed=seed)
    _fingers(nodes, out, facts)
    return facts


def _dna(nodes: dict[str, Node], out: Console, facts: Facts, *, seed: int) -> None:
    from prum.categories.dna.frequencies import AlleleFrequencies
    from prum.categories.dna.generate import Generator, profile_of
    from prum.categories.dna.loci import LocusSet

    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    rng = np.random.default_rng(seed)
    traces_at_at: list[RecordIn] = []
    for party in OFFERS[Category.DNA]:
        n = DNA_PROFILES if party == DNA_HOLDER else DNA_PROFILES // 10
        database = generator.database(n, seed=seed + len(party) * 31 + ord(party[0]))
        source = -1
        if party == DNA_HOLDER:
            source = int(rng.integers(0, n))
            while not database.identified[source]:
                source = int(rng.integers(0, n))
        records = []
        for i, (row, identified) in enumerate(
            zip(database.codes, database.identified, strict=True)
        ):
            profile = profile_of(row, loci, identified=bool(identified))
            records.append(
                record(
                    category=Category.DNA,
                    national_id=f"{party}-DNA-{i:06d}",
                    sample={"format": "dna-profile", "content": profile.to_dict()},
                    provenance=f"{party} national DNA database (generated)",
                    synthetic=True,
                    core_data=(
                        fictional_core_data(party, i, "burglary (demo; DNA reference sample)")
                        if identified
                        else None
                    ),
                )
            )
        references = _created(feed(nodes[party], records, system="dna-database"), "DNA profiles")
        if party == DNA_HOLDER:
            facts.dna_source = references[source]
            facts.dna_trace = profile_of(
                generator.trace(database.codes[source], rng, keep=10), loci, identified=False
            ).to_json()
            # Traces of DE's people left in Austria: the initial bulk comparison finds them.
            for k, i in enumerate(rng.choice(n, DNA_TRACES_AT_AT, replace=False)):
                trace = generator.trace(database.codes[int(i)], rng, keep=int(rng.integers(8, 12)))
                traces_at_at.append(
                    record(
                        category=Category.DNA,
                        national_id=f"AT-DNA-TRACE-{k:03d}",
                        sample={
                            "format": "dna-profile",
                            "content": profile_of(trace, loci, identified=False).to_dict(),
                        },
                        provenance="AT crime-scene traces (generated)",
                        synthetic=True,
                    )
                )
    _created(feed(nodes["AT"], traces_at_at, system="dna-database"), "DNA traces")
    for party in OFFERS[Category.DNA]:
        held = nodes[party].matcher(Category.DNA).describe()["records"]
        out.print(f"  {party:8s} DNA database: {held} generated profiles (persons and traces)")


def _records(nodes: dict[str, Node], out: Console, facts: Facts, *, seed: int) -> None:
    from prum.categories.records.person import person_from_dict
    from prum.categories.records.synthetic import PersonGenerator

    for party in OFFERS[Category.RECORDS]:
        n = RECORDS_PEOPLE if party == RECORDS_HOLDER else RECORDS_PEOPLE // 4
        people = PersonGenerator(seed=seed + ord(party[0])).people(n)
        if party == RECORDS_HOLDER:
            people.append(person_from_dict(WANTED))
        records = []
        for i, person in enumerate(people):
            data = person.to_dict()
            records.append(
                record(
                    category=Category.RECORDS,
                    national_id=f"{party}-PR-{i:06d}",
                    sample={"format": "police-record", "content": data},
                    subject_category=SubjectCategory.CONVICTED,
                    provenance=f"{party} police records (generated)",
                    synthetic=True,
                    core_data={
                        "surnames": data.get("surnames", []),
                        "first_names": data.get("first_names", []),
                        "date_of_birth": person.born.complete(),
                        "nationalities": data.get("nationalities", []),
                        "offence": "armed robbery (demo)",
                        "case_number": f"{party}-PR-2025-0311",
                        "responsible_authority": f"{party} national contact point (demo)",
                    },
                )
            )
        references = _created(feed(nodes[party], records, system="records-index"), "police records")
        if party == RECORDS_HOLDER:
            facts.records_reference = references[-1]
        held = nodes[party].matcher(Category.RECORDS).describe()["records"]
        out.print(f"  {party:8s} police records: {held} generated persons (pseudonymised index)")


def _vehicles(nodes: dict[str, Node], out: Console, facts: Facts, *, seed: int) -> None:
    from prum.categories.vehicle.generate import Generator as VehicleGenerator

    for party in OFFERS[Category.VEHICLE]:
        registrations = VehicleGenerator(party).registrations(
            VEHICLES_PER_COUNTRY, seed=seed + ord(party[1])
        )
        if party == STOLEN_IN:
            stolen = registrations[0].model_copy(
                update={"stolen_since": dt.date.today() - dt.timedelta(days=3)}
            )
            registrations[0] = stolen
            facts.stolen_plate, facts.stolen_vin = stolen.plate, stolen.vin
        records = [
            record(
                category=Category.VEHICLE,
                national_id=f"{party}-VRD-{i:06d}",
                sample={
                    "format": "vehicle-registration",
                    "content": r.model_dump(mode="json", exclude_none=True),
                },
                synthetic=True,
            )
            for i, r in enumerate(registrations)
        ]
        _created(feed(nodes[party], records, system="vehicle-register"), "registrations")
        out.print(f"  {party:8s} vehicle register: {len(registrations)} generated registrations")


def finger_transaction(path: Path, position: int, control: str) -> bytes:
    """A real print as an ANSI/NIST-ITL transaction (Type-1, Type-14, WSQ)."""
    from prum.categories.finger.images import decode_image
    from prum.categories.finger.nist import write_transaction
    from prum.categories.finger.types import FingerImage, Transaction

    decoded = decode_image(path.read_bytes())
    image = FingerImage(position=position, impression="plain", ppi=500, pixels=decoded.pixels)
    return write_transaction(
        Transaction(
            tot="CAR",
            originating_agency="ATNCP0000",
            destination_agency="DENCP0000",
            control_number=control,
            date=dt.date.today(),
            images=[image],
        )
    )


def _fingers(nodes: dict[str, Node], out: Console, facts: Facts) -> None:
    from prum.demo.samples import sample_prints

    try:
        prints = sample_prints()
    except SampleDataUnavailable as exc:
        out.print(f"  fingerprints: no real prints ({exc.message}); that case cannot run")
        return
    probe_finger, probe_impression = prints.probe
    records: list[RecordIn] = []
    fingers: list[str] = []
    for n, finger in enumerate(prints.fingers):
        position = n % 10 + 1  # a finger position per sample finger (ANSI/NIST 1-10)
        impressions = [
            p
            for p in prints.impressions(finger)
            if (finger, p.impression) != (probe_finger, probe_impression)
        ]
        for sample in impressions[:FINGER_IMPRESSIONS_HELD]:
            control = f"DE-{finger}-{sample.impression}"
            records.append(
                record(
                    category=Category.FINGER,
                    national_id=control[:128],
                    sample={
                        "format": "ansi-nist",
                        "data": _b64(finger_transaction(sample.path, position, control)),
                        "collection": "tenprint",
                    },
                    provenance="DE national AFIS (demo: FVC2002 development prints)",
                    core_data=fictional_core_data(FINGER_HOLDER, n, "burglary (demo; tenprint)"),
                )
            )
            fingers.append(finger)
        if finger == probe_finger:
            probe = next(p for p in prints.impressions(finger) if p.impression == probe_impression)
            facts.finger_probe = finger_transaction(probe.path, position, "AT-2026-0001")
            facts.finger_position = position
    results = feed(nodes[FINGER_HOLDER], records, system="afis")
    for finger, result in zip(fingers, results, strict=True):
        if result.outcome is Outcome.CREATED and finger == probe_finger and result.reference:
            facts.finger_source.add(result.reference)
    facts.finger_records = sum(r.outcome is Outcome.CREATED for r in results)
    out.print(
        f"  {FINGER_HOLDER:8s} AFIS: {facts.finger_records} tenprint records of"
        f" {len(prints.fingers)} real fingers ({prints.source})"
    )
