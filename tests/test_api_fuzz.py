"""API fuzzing of the national node API from its own OpenAPI document (schemathesis):
whatever a client sends, the node answers with a clear error, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from prum.federation.messages import Category
from prum.federation.security import pki
from prum.node.api import create_national_app
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.users import Role, add_user

PASSWORD = "fuzz-password-1"


@pytest.fixture(scope="module")
def national_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("fuzz")
    pki.init_ca(root / "pki")
    pki.issue(root / "pki", "AT", role="node")
    node = Node(
        NodeConfig(
            party="AT",
            data_dir=root / "at",
            pki_dir=root / "pki",
            router_url="https://localhost:1",
            categories={Category.FACE: CategoryPolicy()},
        )
    )
    add_user(node.engine, "olga", PASSWORD, set(Role))
    app = create_national_app(node)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_national_api_answers_every_input_without_crashing(national_api: Any) -> None:
    operations = [result.ok() for result in national_api.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call(auth=("olga", PASSWORD))
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code != 500, f"{where}: {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert {"code", "message"} <= set(body), f"{where}: {body}"

        fuzz()
