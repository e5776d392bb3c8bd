"""What the federation tests whose DE node is fed by national systems over HTTP share
(test_national_systems_api, test_abis_federation): the users and DE's systems account
made before the processes start, clients for DE's national-systems interface and a
party's national API, and the records they send."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.demo.national import finger_transaction
from prum.demo.processes import Federation, Layout
from prum.demo.samples import PrintSet, SampleSet
from prum.federation.messages import Category
from prum.node.core import Node
from prum.node.systems.accounts import add_system
from prum.node.users import Role, add_user

PASSWORD = "systems-test-password"


@dataclass
class SystemsWorld:
    """The running federation, and DE's national systems' bearer token."""

    layout: Layout
    processes: Federation
    token: str

    def systems(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.layout.parties["DE"].systems_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=300,
        )

    def api(self, party: str, user: str = "olga") -> httpx.Client:
        return httpx.Client(
            base_url=self.layout.parties[party].api_url, auth=(user, PASSWORD), timeout=120
        )


def add_people_and_systems(
    layout: Layout, users: Mapping[str, Role], categories: set[Category]
) -> str:
    """Before the processes start: ``users`` on AT's and DE's nodes, and DE's national
    systems' account for ``categories``; its bearer token."""
    token = ""
    for party in ("AT", "DE"):
        node = Node(layout.config(party))
        for name, role in users.items():
            add_user(node.engine, name, PASSWORD, {role})
        if party == "DE":
            token = add_system(node.engine, "de-systems", categories)
        node.close()
    return token


def check(response: httpx.Response) -> Any:
    assert response.status_code < 400, f"{response.request.url}: {response.text}"
    return response.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def people(samples: SampleSet) -> list[list[Path]]:
    """The sample faces of each person with two photos or more, most photos first."""
    by_person: dict[str, list[Path]] = defaultdict(list)
    for path, identity in samples.images:
        by_person[identity].append(path)
    return sorted((p for p in by_person.values() if len(p) >= 2), key=len, reverse=True)


def afis_card(prints: PrintSet) -> dict[str, Any]:
    """DE's AFIS card of the probe finger (another impression of it), as the national
    systems send it."""
    finger, impression = prints.probe
    held = [p for p in prints.impressions(finger) if p.impression != impression]
    return {
        "format": "ansi-nist",
        "data": b64(finger_transaction(held[0].path, 2, "DE-CARD-1")),
        "collection": "tenprint",
    }


def probe_transaction(prints: PrintSet, probe_id: str) -> bytes:
    """The probe impression as an ANSI/NIST transaction numbered ``probe_id``."""
    finger, impression = prints.probe
    probe_print = next(p for p in prints.impressions(finger) if p.impression == impression)
    return finger_transaction(probe_print.path, 2, probe_id)


def dna_batch(count: int, seed: int, prefix: str, **record: Any) -> bytes:
    """An NDJSON batch of ``count`` generated DNA profiles, national ids ``prefix-00000``
    on, each with the fields of ``record`` (core data, for example)."""
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(count, seed=seed, trace_share=0, family_share=0)
    return "\n".join(
        json.dumps(
            {
                "category": "dna",
                "national_id": f"{prefix}-{i:05d}",
                "sample": {
                    "format": "dna-profile",
                    "content": profile_of(row, loci, identified=True).to_dict(),
                },
                **record,
            }
        )
        for i, row in enumerate(database.codes)
    ).encode()
