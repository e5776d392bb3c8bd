"""API fuzzing of the national-systems interface from its own OpenAPI document
(schemathesis): whatever a national system sends, the node answers with a clear error,
never a crash, and a refused record changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from prum.categories.records.keys import create_key_file
from prum.federation.messages import Category
from prum.federation.security import pki
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.systems.accounts import add_system
from prum.node.systems.api import create_systems_app
from prum.node.systems.service import NationalSystems


@pytest.fixture(scope="module")
def systems_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("systems-fuzz")
    pki.init_ca(root / "pki")
    pki.issue(root / "pki", "DE", role="node")
    create_key_file(root / "pki" / "records.key", "k1")
    node = Node(
        NodeConfig(
            party="DE",
            data_dir=root / "de",
            pki_dir=root / "pki",
            router_url="https://localhost:1",
            categories={c: CategoryPolicy() for c in Category},
        )
    )
    token = add_system(node.engine, "fuzzer", set(Category))
    app = create_systems_app(node, NationalSystems(node))
    return schemathesis.openapi.from_asgi("/openapi.json", app), token, node, app


def test_systems_interface_answers_every_input_without_crashing(systems_api: Any) -> None:
    schema, token, node, _ = systems_api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert {"code", "message"} <= set(body), f"{where}: {body}"

        fuzz()
    # Random records are refused or, where the fuzzer found a valid one, applied whole:
    # every national record the node lists has its category record.
    for category in Category:
        for listed in NationalSystems(node).listing(category).records:
            assert listed.reference


def test_systems_interface_refuses_requests_without_a_system_token(systems_api: Any) -> None:
    from fastapi.testclient import TestClient

    _, _, _, app = systems_api
    client = TestClient(app)
    # No credential, an officer's password, a made-up token: 401 each, nothing read.
    for headers in (
        {},
        {"Authorization": "Basic b2xnYTpkZW1vLWRlLXBhc3N3b3Jk"},
        {"Authorization": "Bearer prum-sys-not-a-real-token"},
    ):
        response = client.get("/v1/changes", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "no_credentials"
        assert response.headers["www-authenticate"] == "Bearer"
