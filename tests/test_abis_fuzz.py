"""API fuzzing of our ABIS (``prum abis serve``) from its own OpenAPI document
(schemathesis): whatever a node, or anything else holding the token, sends, the ABIS
answers with a clear error (a code and a message), never a crash, and what it held
before still answers as before."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from prum.categories.dna.frequencies import AlleleFrequencies
from prum.categories.dna.generate import Generator, profile_of
from prum.categories.dna.loci import LocusSet
from prum.federation.messages import Category
from prum.node.abis.contract import PREFIX
from prum.node.abis.server import create_abis_app
from prum.node.abis.service import AbisService

TOKEN = "abis-fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEEDED = 3


def dna_profiles(n: int) -> list[dict[str, Any]]:
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(n, seed=5, trace_share=0, family_share=0)
    return [json.loads(profile_of(row, loci, identified=True).to_json()) for row in database.codes]


def identify_dna(client: TestClient, profile: dict[str, Any]) -> list[str]:
    probe = {"format": "dna_profile", "data": base64.b64encode(json.dumps(profile).encode())}
    answer = client.post(
        f"{PREFIX}/identify",
        headers=AUTH,
        json={"probe": {**probe, "data": probe["data"].decode()}, "max_candidates": 5},
    )
    assert answer.status_code == 200, answer.text
    return [c["reference"] for c in answer.json()["candidates"]]


def fuzz_every_operation(app: Any, examples: int) -> int:
    """Every operation of the app's OpenAPI document, ``examples`` generated requests
    each; returns how many operations there were."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call(headers=AUTH)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert {"code", "message"} <= set(body), f"{where}: {body}"
                assert body["message"], f"{where}: an error without words"

        fuzz()
    return len(operations)


def test_a_dna_abis_answers_every_input_without_crashing_and_keeps_its_records(
    tmp_path: Path,
) -> None:
    service = AbisService(Category.DNA, tmp_path / "abis")
    app = create_abis_app(service, token=TOKEN)
    client = TestClient(app)
    profiles = dna_profiles(SEEDED)
    records = [
        {
            "reference": f"DE-FUZZ-SEED-{i}",
            "subject": "convicted",
            "sample": {"kind": "dna", "profile": profile},
        }
        for i, profile in enumerate(profiles)
    ]
    inserted = client.post(f"{PREFIX}/insert", headers=AUTH, json={"records": records})
    assert inserted.status_code == 200, inserted.text
    assert [o["outcome"] for o in inserted.json()["results"]] == ["inserted"] * SEEDED
    before = [identify_dna(client, p) for p in profiles]
    assert [found[0] for found in before] == [r["reference"] for r in records]

    assert fuzz_every_operation(app, 12) == 4  # insert, delete, identify, health

    # The seeded records answer as before; the store and the matcher agree on the count.
    assert [identify_dna(client, p)[0] for p in profiles] == [found[0] for found in before]
    health = client.get(f"{PREFIX}/health", headers=AUTH)
    assert health.status_code == 200 and health.json()["records"] >= SEEDED


@pytest.mark.parametrize("category", [Category.FACE, Category.FINGER])
def test_face_and_finger_abis_answer_every_input_without_crashing(
    tmp_path: Path, category: Category
) -> None:
    service = AbisService(category, tmp_path / "abis")
    app = create_abis_app(service, token=TOKEN)
    # Fewer requests: each generated image or card is decoded (seconds per operation).
    assert fuzz_every_operation(app, 8) == 4
    health = TestClient(app).get(f"{PREFIX}/health", headers=AUTH)
    assert health.status_code == 200 and health.json()["category"] == category.value
