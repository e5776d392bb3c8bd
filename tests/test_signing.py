"""Signed messages: who signed is proven by the federation CA, any change is caught,
and a message is accepted once."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prum.errors import (
    BadCertificate,
    BadInput,
    BadSignature,
    Expired,
    MalformedRequest,
    NotAuthorised,
    Replay,
    Revoked,
)
from prum.federation.security import signing
from prum.federation.security.pki import init_ca, issue, revoke
from prum.federation.security.signing import (
    AuditSigner,
    AuditVerifier,
    ReplayGuard,
    Signer,
    Verifier,
    canonical_json,
    new_message_fields,
)

NOW = dt.datetime.now(dt.UTC)


def _federation(directory: Path) -> Path:
    init_ca(directory)
    for party in ("AT", "DE"):
        issue(directory, party, role="node")
    issue(directory, "ROUTER", role="router")
    return directory


@pytest.fixture(scope="module")
def shared_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A federation nobody revokes anything in (for the property tests)."""
    return _federation(tmp_path_factory.mktemp("shared") / "pki")


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    return _federation(tmp_path / "pki")


def search_body(**extra: Any) -> dict[str, Any]:
    return {**new_message_fields(), "category": "face", "targets": ["DE", "NL"], **extra}


def signed(pki_dir: Path, party: str = "AT") -> dict[str, Any]:
    """An envelope as the receiver gets it: through JSON."""
    envelope = Signer(pki_dir, party).sign(search_body())
    return dict(json.loads(envelope.to_json()))


# --- envelopes ---------------------------------------------------------------------------------


def test_signed_message_round_trips(pki_dir: Path) -> None:
    body = search_body(case_reference="AT-2026-0001 Wien")
    envelope = Signer(pki_dir, "AT").sign(body)
    message = Verifier(pki_dir).verify(json.loads(envelope.to_json()), expected_signer="AT")
    assert message.body == body
    assert message.signer == "AT"
    assert message.signature == envelope.signature
    assert message.message_id == body["message_id"]
    assert abs(message.issued_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_envelope_keeps_the_body_as_signed(pki_dir: Path) -> None:
    body = search_body()
    envelope = Signer(pki_dir, "AT").sign(body)
    body["category"] = "dna"
    assert Verifier(pki_dir).verify(envelope).body["category"] == "face"


def test_tampered_body_is_a_bad_signature(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["body"]["targets"].append("FR")
    with pytest.raises(BadSignature, match="altered after signing"):
        Verifier(pki_dir).verify(envelope)


def test_signer_name_must_match_the_certificate(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["signer"] = "DE"
    with pytest.raises(
        BadCertificate, match="names DE as signer but carries the certificate of AT"
    ):
        Verifier(pki_dir).verify(envelope)


def test_swapped_certificate_is_a_bad_signature(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["signer"], envelope["cert"] = "DE", (pki_dir / "DE.pem").read_text()
    with pytest.raises(BadSignature):
        Verifier(pki_dir).verify(envelope)


def test_valid_signer_other_than_expected_is_not_authorised(pki_dir: Path) -> None:
    with pytest.raises(NotAuthorised, match="signed by AT, but only DE"):
        Verifier(pki_dir).verify(signed(pki_dir), expected_signer="DE")


def test_certificate_from_another_ca_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    rogue = _federation(tmp_path / "rogue")  # its CA even has the same name
    with pytest.raises(BadCertificate, match="not issued by the federation CA"):
        Verifier(pki_dir).verify(signed(rogue))


def test_expired_certificate_is_refused(pki_dir: Path) -> None:
    issue(pki_dir, "FR", role="node", not_before=NOW - dt.timedelta(days=10), days=1)
    with pytest.raises(Expired, match="certificate of FR expired on"):
        Verifier(pki_dir).verify(signed(pki_dir, "FR"))


def test_certificate_not_yet_valid_is_refused(pki_dir: Path) -> None:
    issue(pki_dir, "FR", role="node", not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(Expired, match="not valid before"):
        Verifier(pki_dir).verify(signed(pki_dir, "FR"))


def test_revoked_certificate_is_refused(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    revoke(pki_dir, "AT")
    with pytest.raises(Revoked, match="of AT is revoked"):
        Verifier(pki_dir).verify(envelope)


def test_a_running_verifier_picks_up_a_revocation(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "CRL_RECHECK_SECONDS", 0.0)
    verifier = Verifier(pki_dir)
    verifier.verify(signed(pki_dir))  # AT's certificate is cached as good
    revoke(pki_dir, "AT")
    with pytest.raises(Revoked, match="of AT is revoked"):
        verifier.verify(signed(pki_dir))
    verifier.verify(signed(pki_dir, "DE"))


def test_a_crl_that_does_not_verify_keeps_the_last_good_one(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "CRL_RECHECK_SECONDS", 0.0)
    revoke(pki_dir, "AT")
    verifier = Verifier(pki_dir)
    (pki_dir / "crl.pem").write_text("-----BEGIN X509 CRL-----\nhalf a file")
    with pytest.raises(Revoked):
        verifier.verify(signed(pki_dir))


def test_bad_base64_is_a_bad_signature(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["signature"] = envelope["signature"][:-4] + "!!!!"
    with pytest.raises(BadSignature, match="not valid base64"):
        Verifier(pki_dir).verify(envelope)


def test_truncated_signature_is_a_bad_signature(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["signature"] = base64.b64encode(base64.b64decode(envelope["signature"])[:63]).decode()
    with pytest.raises(BadSignature, match="63 bytes"):
        Verifier(pki_dir).verify(envelope)


@pytest.mark.parametrize("field", ["body", "signer", "cert", "alg", "signature"])
def test_envelope_missing_a_field_is_refused(pki_dir: Path, field: str) -> None:
    envelope = signed(pki_dir)
    del envelope[field]
    with pytest.raises(BadSignature, match=f"lacks {field}"):
        Verifier(pki_dir).verify(envelope)


@pytest.mark.parametrize("field", ["message_id", "issued_at"])
def test_signed_body_missing_message_fields_is_refused(pki_dir: Path, field: str) -> None:
    envelope = signed(pki_dir)
    del envelope["body"][field]
    with pytest.raises(BadSignature, match=f"lacks {field}"):
        Verifier(pki_dir).verify(envelope)


def test_other_algorithms_are_refused(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["alg"] = "none"
    with pytest.raises(BadSignature, match="only ES256"):
        Verifier(pki_dir).verify(envelope)


def test_garbage_certificate_is_a_bad_certificate(pki_dir: Path) -> None:
    envelope = signed(pki_dir)
    envelope["cert"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(BadCertificate, match=r"not a PEM X\.509 certificate"):
        Verifier(pki_dir).verify(envelope)


def test_body_without_message_fields_cannot_be_signed(pki_dir: Path) -> None:
    with pytest.raises(BadInput, match="lacks message_id"):
        Signer(pki_dir, "AT").sign({"category": "face"})


def test_signer_for_a_party_without_certificate_says_how_to_get_one(pki_dir: Path) -> None:
    with pytest.raises(BadInput, match="prum pki issue NL"):
        Signer(pki_dir, "NL")


# --- canonical JSON -------------------------------------------------------------------------


def test_canonical_json_sorts_keys_without_whitespace_in_utf8() -> None:
    assert canonical_json({"b": [1, "ü"], "a": None}) == '{"a":null,"b":[1,"ü"]}'.encode()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(BadInput):
        canonical_json({"score": float("nan")})


# --- byte signatures for the audit log ----------------------------------------------------


def test_byte_signature_round_trips_and_names_the_signer(pki_dir: Path) -> None:
    signer = Signer(pki_dir, "AT")
    signature = signer.sign_bytes(b"checkpoint 42")
    assert len(signature) == 64
    identity = Verifier(pki_dir).verify_bytes(b"checkpoint 42", signature, signer.cert_pem)
    assert identity.party == "AT"
    with pytest.raises(BadSignature):
        Verifier(pki_dir).verify_bytes(b"checkpoint 43", signature, signer.cert_pem)


def test_message_signature_is_not_a_byte_signature(pki_dir: Path) -> None:
    signer = Signer(pki_dir, "AT")
    envelope = signer.sign(search_body())
    signature = base64.b64decode(envelope.signature)
    with pytest.raises(BadSignature):
        Verifier(pki_dir).verify_bytes(canonical_json(envelope.body), signature, signer.cert_pem)


def test_audit_signature_verifies_after_renewal_but_not_after_revocation(pki_dir: Path) -> None:
    audit = AuditSigner(Signer(pki_dir, "AT"))
    signature = audit.sign(b'{"seq":1}')
    issue(pki_dir, "AT", role="node")  # renewal: AT.pem now holds another key
    assert AuditVerifier(pki_dir).verify(b'{"seq":1}', signature, "AT")
    assert not AuditVerifier(pki_dir).verify(b'{"seq":2}', signature, "AT")
    assert not AuditVerifier(pki_dir).verify(b'{"seq":1}', signature, "DE")
    revoke(pki_dir, "AT")
    assert not AuditVerifier(pki_dir).verify(b'{"seq":1}', signature, "AT")


# --- replays ----------------------------------------------------------------------------------


def test_replayed_message_id_is_refused() -> None:
    guard = ReplayGuard()
    fields = new_message_fields()
    guard.check(fields["message_id"], fields["issued_at"])
    with pytest.raises(Replay, match="already received"):
        guard.check(fields["message_id"], fields["issued_at"])


def test_stale_message_is_refused() -> None:
    with pytest.raises(Replay, match="more than the 0:05:00 window"):
        ReplayGuard(300).check("m1", NOW - dt.timedelta(seconds=301), now=NOW)


def test_message_from_the_future_is_refused() -> None:
    with pytest.raises(Replay, match="clock is ahead"):
        ReplayGuard(300).check("m1", NOW + dt.timedelta(seconds=301), now=NOW)


def test_ids_are_forgotten_once_the_time_check_covers_them() -> None:
    guard = ReplayGuard(300)
    for n in range(100):
        guard.check(f"m{n}", NOW, now=NOW)
    assert len(guard) == 100
    guard.check("late", NOW + dt.timedelta(seconds=301), now=NOW + dt.timedelta(seconds=301))
    assert len(guard) == 1
    with pytest.raises(Replay, match="more than"):
        guard.check("m0", NOW, now=NOW + dt.timedelta(seconds=301))


def test_concurrent_replays_let_exactly_one_through() -> None:
    guard = ReplayGuard()
    fields = new_message_fields()
    accepted: list[bool] = []
    start = threading.Barrier(16)

    def receive() -> None:
        start.wait()
        try:
            guard.check(fields["message_id"], fields["issued_at"])
            accepted.append(True)
        except Replay:
            accepted.append(False)

    threads = [threading.Thread(target=receive) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accepted.count(True) == 1


# --- properties -------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6)


@given(extra=BODIES)
def test_any_json_body_round_trips(shared_pki: Path, extra: dict[str, Any]) -> None:
    body = {**extra, **new_message_fields()}
    envelope = Signer(shared_pki, "DE").sign(body)
    assert Verifier(shared_pki).verify(json.loads(envelope.to_json())).body == body


@given(extra=BODIES, data=st.data())
def test_any_single_byte_change_fails_verification(
    shared_pki: Path, extra: dict[str, Any], data: st.DataObject
) -> None:
    signer = Signer(shared_pki, "DE")
    envelope = signer.sign({**extra, **new_message_fields()})
    original = canonical_json(envelope.body)
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
    changed = original[:position] + bytes([byte]) + original[position + 1 :]

    # As bytes, every change breaks the signature.
    signature = signer.sign_bytes(original)
    with pytest.raises(BadSignature):
        Verifier(shared_pki).verify_bytes(changed, signature, signer.cert_pem)

    # As a message, every change that still parses to another body is refused. (A
    # change that parses to the same body, such as \u001f -> \u001F, alters nothing.)
    try:
        body = json.loads(changed)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    try:
        if canonical_json(body) == original:
            return
    except BadInput:  # e.g. a lone surrogate: the verifier cannot canonicalise it either
        pass
    with pytest.raises((BadSignature, BadCertificate)):
        Verifier(shared_pki).verify({**envelope.to_dict(), "body": body})


# --- envelopes as bytes: the fast path and the general path agree ---------------------------


@given(extra=BODIES)
def test_an_envelope_verifies_from_its_bytes_with_the_body_as_signed(
    shared_pki: Path, extra: dict[str, Any]
) -> None:
    body = {**extra, **new_message_fields()}
    envelope = Signer(shared_pki, "DE").sign(body)
    message = Verifier(shared_pki).verify_json(envelope.to_json(), expected_signer="DE")
    assert message.body == body
    assert message.body_json == canonical_json(body)
    assert message.signature == envelope.signature


def test_an_envelope_in_another_key_order_takes_the_general_path(pki_dir: Path) -> None:
    envelope = Signer(pki_dir, "AT").sign(search_body())
    reordered = json.dumps(envelope.to_dict(), indent=2).encode()  # body first, with spaces
    assert Verifier(pki_dir).verify_json(reordered).body == envelope.body


def test_an_envelope_that_is_not_json_is_malformed(pki_dir: Path) -> None:
    with pytest.raises(MalformedRequest, match="not JSON"):
        Verifier(pki_dir).verify_json(b'{"alg":"ES256","body":')


def test_a_relay_signs_spliced_canonical_bytes(pki_dir: Path) -> None:
    inner = Signer(pki_dir, "DE").sign(search_body())
    outer = {**new_message_fields(), "kind": "relay", "replies": "@"}
    spliced = canonical_json(outer).replace(
        b'"replies":"@"', b'"replies":[' + inner.body_json + b"]"
    )
    raw = Signer(pki_dir, "ROUTER").sign_json(spliced)
    message = Verifier(pki_dir).verify_json(raw, expected_signer="ROUTER")
    assert message.body["replies"] == [inner.body]
    assert Verifier(pki_dir).verify(json.loads(raw)).body == message.body  # the general path


@given(extra=BODIES, data=st.data())
def test_a_changed_envelope_is_accepted_only_as_the_general_path_reads_it(
    shared_pki: Path, extra: dict[str, Any], data: st.DataObject
) -> None:
    raw = Signer(shared_pki, "DE").sign({**extra, **new_message_fields()}).to_json()
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]), label="byte")
    insert = data.draw(st.booleans(), label="insert")
    changed = raw[:position] + bytes([byte]) + raw[position + (0 if insert else 1) :]
    verifier = Verifier(shared_pki)
    try:
        fast = verifier.verify_json(changed)
    except (BadSignature, BadCertificate, NotAuthorised, MalformedRequest):
        return
    general = verifier.verify(json.loads(changed))  # must accept it too, and read the same
    assert (fast.body, fast.signer, fast.signature) == (
        general.body,
        general.signer,
        general.signature,
    )
