"""API fuzzing of the router, in process: from its own OpenAPI document (schemathesis),
and with validly signed messages whose fields are fuzzed (hypothesis). Whatever a party
sends, the router answers with a clear error, never a crash.

The router learns who calls from the TLS client certificate, which the server's protocol
puts into the ASGI scope (prum.federation.transport.PeerCertProtocol); :func:`as_peer`
puts AT's certificate there the same way, so every handler runs as behind mutual TLS.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from prum.demo.processes import free_port
from prum.federation.messages import Category, CoreDataRequest, Probe, Purpose, SearchRequest
from prum.federation.router.api import create_app
from prum.federation.router.settings import RouterSettings
from prum.federation.security import pki
from prum.federation.security.signing import Signer
from prum.federation.transport import MAX_BODY_BYTES, BodyLimit

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def as_peer(app: ASGIApp, der: bytes) -> ASGIApp:
    """``app`` called as over mutual TLS by the holder of the certificate ``der``."""

    async def with_peer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = {**(scope.get("extensions") or {}), "tls": {"client_cert_der": der}}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return with_peer


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("router-fuzz-pki")
    pki.init_ca(path)
    pki.issue(path, "ROUTER", role="router")
    for party in ("AT", "DE"):
        pki.issue(path, party, role="node")
    return path


def router_app(root: Path, pki_dir: Path) -> ASGIApp:
    """The router's app as served (behind the body limit), called by AT. DE is in the
    directory at a port nobody listens on: a search that passes every check is answered
    with DE 'unavailable' or 'timeout', a delivery to DE with 503."""
    entry = {"offers": ["dna", "face"], "accepts": ["investigation"]}
    directory = {
        "parties": {p: {"url": f"https://localhost:{free_port()}", **entry} for p in ("AT", "DE")}
    }
    (root / "directory.json").write_text(json.dumps(directory))
    app = create_app(
        RouterSettings(
            pki_dir=pki_dir,
            directory_file=root / "directory.json",
            data_dir=root / "router",
            max_deadline_ms=300,  # DE never answers: no search waits longer
        )
    )
    cert = x509.load_pem_x509_certificate(pki.cert_path(pki_dir, "AT").read_bytes())
    return BodyLimit(as_peer(app, cert.public_bytes(Encoding.DER)))


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Iterator[TestClient]:
    """One client for the module: one event loop; leaving it closes the router."""
    with TestClient(router_app(tmp_path_factory.mktemp("router"), pki_dir)) as client:
        yield client


def assert_clear(status: int, body: bytes, where: str) -> None:
    """No 5xx but the 503 of a destination that cannot be reached (DE, by design); an
    error is JSON with a code and a message."""
    error = json.loads(body) if status >= 400 else {}
    unreachable = status == 503 and error.get("code") == "destination_unavailable"
    assert status < 500 or unreachable, f"{where}: {status} {body[:300]!r}"
    if status >= 400:
        assert isinstance(error.get("code"), str), f"{where}: {error}"
        assert isinstance(error.get("message"), str) and error["message"], f"{where}: {error}"


def test_router_answers_every_generated_request_without_crashing(
    tmp_path: Path, pki_dir: Path
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", router_app(tmp_path, pki_dir))
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {f"{o.method.upper()} {o.path}" for o in operations} >= {
        "POST /v1/search",
        "POST /v1/deliver",
        "GET /v1/stats",
    }
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            try:
                fuzz_operation(operation, mode)
            except Exception as exc:  # an operation without inputs has no negative case
                if type(exc).__name__ != "Unsatisfiable":
                    raise


def fuzz_operation(operation: Any, mode: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ
    def fuzz(case: Any) -> None:
        response = case.call()
        assert_clear(response.status_code, response.content, f"{case.method} {case.path}")

    fuzz()


# --- signed messages with fuzzed fields --------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def valid_search() -> dict[str, Any]:
    return SearchRequest(
        request_number="AT-FUZZ-1",
        requesting_party="AT",
        requesting_user="fuzz",
        category=Category.DNA,
        purpose=Purpose.INVESTIGATION,
        offence="0500 00",
        max_penalty_months=120,
        case_reference="AT-FUZZ",
        probe=Probe(format="dna_profile", data=b'{"loci": {}}'),
        targets=["DE"],
        deadline_ms=500,
    ).model_dump(mode="json")


def valid_request() -> dict[str, Any]:
    return CoreDataRequest(
        requesting_party="AT",
        holder_party="DE",
        reference="DE-D-1",
        category=Category.DNA,
        search_message_id="9b2f1c9e-1f1a-4c39-9d0e-2f0d3f1b1a11",
        requesting_user="fuzz",
        verified_by="examiner",
        facts="seen at the scene on 2 January 2026",
        offence="0500 00",
        max_penalty_months=120,
        case_reference="AT-FUZZ",
    ).model_dump(mode="json")


@st.composite
def fuzzed(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` with one to three fields replaced by any JSON, dropped, or added."""
    body = dict(valid)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*sorted(valid), "extra"]))
        if name in ("message_id", "issued_at"):
            continue  # the signer needs them; their checks are the replay tests'
        if draw(st.booleans()):
            body[name] = draw(JSON_VALUES)
        else:
            body.pop(name, None)
    body["issued_at"] = dt.datetime.now(dt.UTC).isoformat()
    return body


@pytest.mark.parametrize(
    ("path", "valid"), [("/v1/search", valid_search), ("/v1/deliver", valid_request)]
)
def test_router_refuses_signed_messages_with_fuzzed_fields_clearly(
    router: TestClient, pki_dir: Path, path: str, valid: Any
) -> None:
    signer = Signer(pki_dir, "AT")

    @given(body=fuzzed(valid()))
    @FUZZ
    def fuzz(body: dict[str, Any]) -> None:
        envelope = signer.sign({**body, "message_id": str(uuid.uuid4())})
        response = router.post(path, content=envelope.to_json())
        assert_clear(response.status_code, response.content, f"{path} {body}")

    fuzz()


def chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes in chunks of 1 MB, sent without a Content-Length."""
    for start in range(0, size, 2**20):
        yield b"x" * min(2**20, size - start)


@pytest.mark.parametrize("path", ["/v1/search", "/v1/deliver"])
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400, "malformed_request"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, "malformed_request"),
        (None, 413, "body_too_large"),  # 43 MB, chunked
    ],
    ids=["array nested 100,000 deep", "object nested 50,000 deep", "43 MB chunked"],
)
def test_router_refuses_hostile_bodies_clearly(
    router: TestClient, path: str, body: bytes | None, status: int, code: str
) -> None:
    content = chunks(MAX_BODY_BYTES + 2**20) if body is None else body
    response = router.post(path, content=content, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (status, code)
