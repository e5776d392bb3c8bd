"""Signed messages between nodes and router, and protection against replays.

Every message is signed by its sender and verified by its receiver. The router
forwards a requester's envelope unchanged, so the requested node can check who really
asked, and both keep the envelope's signature in their logs (non-repudiation).

An envelope is a JSON object::

    {"body": {...}, "signer": "AT", "cert": "-----BEGIN CERTIFICATE-----...",
     "alg": "ES256", "signature": "<base64>"}

``signature`` is ECDSA P-256 with SHA-256, in the JOSE ``ES256`` form (r || s, 64
bytes), standard base64. It covers ``MESSAGE_CONTEXT + canonical_json(body)``; the
context prefix keeps a message signature from ever passing as an audit checkpoint
signature (:meth:`Signer.sign_bytes`, ``BYTES_CONTEXT``) and the other way round.
The signer is bound by the certificate: its CN must equal ``signer``.

A receiver does, in this order::

    message = verifier.verify(envelope, expected_signer=tls_peer.party)  # direct hop
    replay_guard.check(message.message_id, message.issued_at)
    ... then uses message.body, never the raw envelope

For a request the router forwarded, the TLS peer is ROUTER and the envelope is the
requester's: verify it without ``expected_signer`` and take the requester from
``message.signer``, never from a body field such as ``requesting_party`` (or check that
the two agree).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import functools
import heapq
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

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
from prum.federation.security import pki

ALG = "ES256"
MESSAGE_CONTEXT = b"prum/v1/message\x00"
BYTES_CONTEXT = b"prum/v1/bytes\x00"
ENVELOPE_FIELDS = frozenset({"body", "signer", "cert", "alg", "signature"})
BODY_KEY = b',"body":'
_PREHASHED_ES256 = ec.ECDSA(Prehashed(hashes.SHA256()))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_COORDINATE_BYTES = 32  # P-256
# Certificates whose chain check a Verifier remembers: a few per party of the federation.
CERTIFICATE_CACHE = 256
# How often a Verifier looks whether crl.pem changed: a revocation takes effect in a
# running router or node within this many seconds, without a restart.
CRL_RECHECK_SECONDS = 1.0


def canonical_json(obj: Any) -> bytes:
    """The bytes that are signed: keys sorted (by code point), no whitespace, UTF-8.

    NaN and infinities are refused (BadInput), as is anything JSON cannot hold.
    """
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BadInput(f"not representable as canonical JSON: {exc}") from None


def new_message_fields() -> dict[str, str]:
    """``message_id`` (a fresh uuid4) and ``issued_at`` (now, RFC 3339 UTC) for a body."""
    return {"message_id": str(uuid.uuid4()), "issued_at": format_time(_now())}


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-26T11:01:43.123Z``."""
    utc = moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """An RFC 3339 time with a time zone; ValueError otherwise."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class SignedEnvelope:
    """A signed message as it travels (``to_dict()`` is its JSON object)."""

    body: dict[str, Any]
    signer: str
    cert: str
    alg: str
    signature: str
    # The canonical JSON of body, exactly as signed (to_json() sends it unchanged).
    body_json: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "signer": self.signer,
            "cert": self.cert,
            "alg": self.alg,
            "signature": self.signature,
        }

    def to_json(self) -> bytes:
        """The envelope as bytes, with the signed body bytes last and unchanged, so a
        receiver can check the signature without re-encoding the body
        (:meth:`Verifier.verify_json`)."""
        return envelope_json(
            self.body_json or canonical_json(self.body), self.signer, self.cert, self.signature
        )


def envelope_json(body_json: bytes, signer: str, cert: str, signature: str) -> bytes:
    """``{"alg","cert","signature","signer","body"}`` with ``body_json`` spliced in last."""
    head = json.dumps(
        {"alg": ALG, "cert": cert, "signature": signature, "signer": signer},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return head[:-1] + BODY_KEY + body_json + b"}"


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signer, certificate and signature all checked out."""

    body: dict[str, Any]
    signer: str
    signature: str  # base64, as received: keep it in the log
    cert_serial: int
    # The canonical JSON of body as signed: a relay splices it instead of re-encoding.
    body_json: bytes = field(default=b"", repr=False, compare=False)

    @property
    def message_id(self) -> str:
        return cast(str, self.body["message_id"])

    @property
    def issued_at(self) -> dt.datetime:
        return parse_time(self.body["issued_at"])


class Signer:
    """Signs as one party, with its key and certificate from a PKI directory."""

    def __init__(self, directory: Path, party: str) -> None:
        pki.validate_party(party)
        cert_file, key_file = pki.cert_path(directory, party), pki.key_path(directory, party)
        try:
            cert_pem = cert_file.read_bytes()
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except FileNotFoundError as exc:
            raise BadInput(
                f"{exc.filename} is missing: issue one with `prum pki issue {party}`",
                party=party,
            ) from None
        except ValueError as exc:
            raise BadInput(f"cannot read the key or certificate of {party}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise BadInput(f"{key_file} is not an ECDSA P-256 key")
        if key.public_key() != cert.public_key():
            raise BadInput(f"{key_file} does not belong to the certificate {cert_file}")
        identity = pki.identity_of(cert)
        if identity.party != party:
            raise BadInput(f"{cert_file} is the certificate of {identity.party}, not {party}")
        self.party = party
        self.serial = cert.serial_number
        self.cert_pem = cert_pem.decode("ascii")
        self._key = key

    def sign(self, body: Mapping[str, Any]) -> SignedEnvelope:
        """Sign ``body``, which must hold ``message_id`` and ``issued_at``.

        The envelope carries the body as signed (re-read from its canonical JSON), so
        changing the caller's dict afterwards changes nothing.
        """
        problem = _body_problem(body)
        if problem:
            raise BadInput(f"cannot sign: {problem}")
        data = canonical_json(body)
        signature = self._sign(MESSAGE_CONTEXT + data)
        return SignedEnvelope(
            body=json.loads(data),
            signer=self.party,
            cert=self.cert_pem,
            alg=ALG,
            signature=base64.b64encode(signature).decode("ascii"),
            body_json=data,
        )

    def sign_json(self, body_json: bytes) -> bytes:
        """Sign a body that is already canonical JSON (made by :func:`canonical_json`,
        or spliced from canonical parts); the envelope as bytes (:meth:`SignedEnvelope.
        to_json`). For a relay that must not re-encode what it carries: the caller
        vouches that the bytes are canonical and hold message_id and issued_at."""
        signature = self._sign(MESSAGE_CONTEXT + body_json)
        return envelope_json(
            body_json, self.party, self.cert_pem, base64.b64encode(signature).decode("ascii")
        )

    def sign_bytes(self, data: bytes) -> bytes:
        """Sign arbitrary bytes (an audit checkpoint); 64 bytes, ES256 r || s.

        Keep :attr:`cert_pem` beside the signature; :meth:`Verifier.verify_bytes`
        checks both.
        """
        return self._sign(BYTES_CONTEXT + data)

    def _sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


@dataclass(frozen=True)
class _Issued:
    """A certificate whose chain and key type checked out (cached by :class:`Verifier`)."""

    cert: x509.Certificate
    identity: pki.PeerIdentity
    not_before: dt.datetime
    not_after: dt.datetime


class Verifier:
    """Verifies envelopes and byte signatures against the federation CA and its CRL.

    The CA certificate is read once, when the verifier is built. ``crl.pem`` is read
    again whenever it changes (looked at every CRL_RECHECK_SECONDS, on a verification
    or a call of :meth:`revoked_serials`): a certificate revoked with ``prum pki
    revoke`` is refused from then on by every running process that shares the PKI
    folder, and the TLS contexts given to :meth:`follow` get the new CRL too, so new
    connections with it are refused as well. A CRL that is replaced by one that does
    not verify is ignored, and the last good one stays in force (revocations are never
    lost to a half-copied file).
    """

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._ca = pki.load_ca_certificate(directory)
        self._crl_stamp = self._stamp()
        crl = pki.load_crl(directory, self._ca)
        self._revoked = frozenset(entry.serial_number for entry in crl)
        self._crl_checked = time.monotonic()
        self._contexts: list[ssl.SSLContext] = []
        self._issued = functools.lru_cache(maxsize=CERTIFICATE_CACHE)(self._check_issued)

    def follow(self, context: ssl.SSLContext) -> None:
        """Load every new CRL this verifier reads into ``context`` as well (OpenSSL keeps
        the CRLs it was given and checks with the newest of the CA's)."""
        self._contexts.append(context)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = (self._directory / pki.CRL).stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def revoked_serials(self) -> frozenset[int]:
        """The serials revoked now: the CRL read again if the file changed."""
        now = time.monotonic()
        if now - self._crl_checked < CRL_RECHECK_SECONDS:
            return self._revoked
        self._crl_checked = now
        stamp = self._stamp()
        if stamp is not None and stamp != self._crl_stamp:
            try:
                crl = pki.load_crl(self._directory, self._ca)
            except (BadInput, OSError):
                return self._revoked  # a file being copied in: keep the last good list
            # Revocation is permanent: a list that lacks a serial we knew keeps it.
            self._revoked = self._revoked | {entry.serial_number for entry in crl}
            self._crl_stamp = stamp
            for context in self._contexts:
                with contextlib.suppress(ssl.SSLError, OSError):  # the store keeps the last
                    context.load_verify_locations(cafile=self._directory / pki.CRL)
        return self._revoked

    def verify(
        self, envelope: Mapping[str, Any] | SignedEnvelope, *, expected_signer: str | None = None
    ) -> VerifiedMessage:
        """Check an envelope; raise the SecurityError naming the check that failed.

        BadSignature: malformed envelope, bad base64, unknown alg, altered body.
        BadCertificate: not from the federation CA, or not the certificate of ``signer``.
        Expired, Revoked: the signer's certificate. NotAuthorised: a valid signer, but
        not ``expected_signer`` (e.g. the TLS peer of a direct hop).
        """
        if isinstance(envelope, SignedEnvelope):
            envelope = envelope.to_dict()
        body, signer, cert_pem, signature = _envelope_fields(envelope)
        cert, identity = self._check_certificate(cert_pem, at=_now())
        if identity.party != signer:
            raise BadCertificate(
                f"the envelope names {signer} as signer but carries the certificate of "
                f"{identity.party}",
                signer=signer,
                certificate=identity.party,
            )
        try:
            data = canonical_json(body)
        except BadInput as exc:
            raise BadSignature(f"the body cannot be canonicalised: {exc.message}") from None
        _check_signature(cert, MESSAGE_CONTEXT, data, signature, signer)
        if expected_signer is not None and signer != expected_signer:
            raise NotAuthorised(
                f"the message is signed by {signer}, but only {expected_signer} may send it here",
                signer=signer,
                expected=expected_signer,
            )
        return VerifiedMessage(
            body=body,
            signer=signer,
            signature=base64.b64encode(signature).decode("ascii"),
            cert_serial=cert.serial_number,
            body_json=data,
        )

    def verify_json(self, raw: bytes, *, expected_signer: str | None = None) -> VerifiedMessage:
        """Check an envelope as received (bytes); the same checks as :meth:`verify`,
        and MalformedRequest when the bytes are not JSON at all.

        Fast path: an envelope written by :func:`envelope_json` ends with the signed
        body bytes, so the signature is checked over them as they are and the body is
        parsed once. Anything else (other key order, whitespace) takes the general
        path: parse the whole envelope, re-encode the body canonically, check that.
        Both paths accept exactly the same envelopes.
        """
        try:
            return self._verify_tail(raw, expected_signer)
        except _NotFast:
            pass
        try:
            envelope = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise MalformedRequest("the body is not JSON (a signed envelope)") from None
        return self.verify(envelope, expected_signer=expected_signer)

    def _verify_tail(self, raw: bytes, expected_signer: str | None) -> VerifiedMessage:
        end = len(raw)
        while end and raw[end - 1] in b" \t\r\n":  # trailing whitespace, without a copy
            end -= 1
        split = raw.find(BODY_KEY, 0, end)
        if split < 0 or raw[end - 1 : end] != b"}":
            raise _NotFast
        try:
            head = json.loads(raw[:split] + b"}")
        except (ValueError, UnicodeDecodeError):
            raise _NotFast from None
        if not isinstance(head, dict) or head.keys() != ENVELOPE_FIELDS - {"body"}:
            raise _NotFast
        body_json = raw[split + len(BODY_KEY) : end - 1]
        signer, cert_pem, alg, encoded = (
            head["signer"],
            head["cert"],
            head["alg"],
            head["signature"],
        )
        if alg != ALG or not all(isinstance(v, str) for v in (signer, cert_pem, encoded)):
            raise _NotFast
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _NotFast from None
        try:  # any failure: the general path names it, as it would for any envelope
            cert, identity = self._check_certificate(cert_pem, at=_now())
        except (BadCertificate, Expired, Revoked):
            raise _NotFast from None
        if identity.party != signer:
            raise _NotFast
        try:
            _check_signature(cert, MESSAGE_CONTEXT, body_json, signature, signer)
            body = json.loads(body_json.decode("utf-8"))
        except (BadSignature, ValueError, UnicodeDecodeError):
            raise _NotFast from None
        if _body_problem(body):
            raise _NotFast
        if expected_signer is not None and signer != expected_signer:
            raise NotAuthorised(
                f"the message is signed by {signer}, but only {expected_signer} may send it here",
                signer=signer,
                expected=expected_signer,
            )
        return VerifiedMessage(
            body=body,
            signer=signer,
            signature=base64.b64encode(signature).decode("ascii"),
            cert_serial=cert.serial_number,
            body_json=body_json,
        )

    def verify_bytes(
        self, data: bytes, signature: bytes, cert_pem: str, *, at: dt.datetime | None = None
    ) -> pki.PeerIdentity:
        """Check a :meth:`Signer.sign_bytes` signature; return who made it.

        ``at`` is when the certificate must have been valid (an audit checkpoint's own
        time, so that old checkpoints still verify after the certificate expired);
        default now. A revoked certificate fails whatever ``at`` says.
        """
        cert, identity = self._check_certificate(cert_pem, at=at or _now())
        _check_signature(cert, BYTES_CONTEXT, data, signature, identity.party)
        return identity

    def _check_certificate(
        self, cert_pem: str, *, at: dt.datetime | None
    ) -> tuple[x509.Certificate, pki.PeerIdentity]:
        """Chain, key type, validity at ``at`` (``None``: not checked) and revocation."""
        checked = self._issued(cert_pem)
        identity = checked.identity
        if at is not None and at < checked.not_before:
            raise Expired(
                f"the certificate of {identity.party} is not valid before "
                f"{format_time(checked.not_before)} (is a clock wrong?)",
                party=identity.party,
            )
        if at is not None and at > checked.not_after:
            raise Expired(
                f"the certificate of {identity.party} expired on "
                f"{format_time(checked.not_after)}; it needs a new one "
                "(`prum pki issue`)",
                party=identity.party,
            )
        if checked.cert.serial_number in self.revoked_serials():
            raise Revoked(
                f"the certificate {pki.format_serial(checked.cert.serial_number)} of "
                f"{identity.party} is revoked",
                party=identity.party,
                serial=pki.format_serial(checked.cert.serial_number),
            )
        return checked.cert, identity

    def _check_issued(self, cert_pem: str) -> _Issued:
        """What never changes for a PEM text: issued by the CA, to whom, with a P-256 key.

        Cached per verifier (``_issued``): the chain check is most of a verification's
        cost, and every message of a party carries the same certificate. Only success
        is cached (an exception is not), and time and revocation are checked per call.
        """
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError, x509.InvalidVersion):
            raise BadCertificate(
                "the signer's certificate is not a PEM X.509 certificate"
            ) from None
        try:
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise BadCertificate(
                f"the certificate {_subject(cert)} is not issued by the "
                f"federation CA {self._ca.subject.rfc4514_string()!r}",
            ) from None
        try:
            identity = pki.identity_of(cert)
        except ValueError:  # fields the parser reads lazily, only now found broken
            raise BadCertificate("the signer's certificate cannot be read") from None
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or (
            public_key.curve.name != "secp256r1"
        ):
            raise BadCertificate(f"the certificate of {identity.party} has no P-256 key")
        return _Issued(cert, identity, cert.not_valid_before_utc, cert.not_valid_after_utc)


class AuditSigner:
    """The audit log's checkpoint signer: ``party`` and ``sign(data) -> bytes``.

    Signatures are :meth:`Signer.sign_bytes` signatures (64 raw bytes).
    """

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    @property
    def party(self) -> str:
        return self._signer.party

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign_bytes(data)


async def keep_crl_current(verifier: Verifier) -> None:
    """Look at crl.pem every CRL_RECHECK_SECONDS even while no message arrives, so the
    TLS contexts the verifier follows refuse a revoked party's next handshake."""
    while True:
        await asyncio.to_thread(verifier.revoked_serials)
        await asyncio.sleep(CRL_RECHECK_SECONDS)


class AuditVerifier:
    """The audit log's checkpoint verifier: ``verify(data, signature, party) -> bool``.

    A signature is good if it verifies under any certificate issued to ``party`` by the
    federation CA that the PKI directory holds (``<PARTY>.pem`` and ``certs/*.pem``),
    revoked ones excepted. Expiry is not held against a certificate: a checkpoint
    signed in 2026 must still verify in 2036. Like :class:`Verifier`, it reads the
    directory once.
    """

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        self._verifier = Verifier(directory)
        self._certs: dict[str, list[str]] = {}
        for path in [*sorted(directory.glob("*.pem")), *sorted(directory.glob("certs/*.pem"))]:
            try:
                pem = path.read_text("ascii")
                party = pki.identity_of(x509.load_pem_x509_certificate(pem.encode())).party
            except (ValueError, BadCertificate):
                continue  # ca.pem, crl.pem and anything that is not a party certificate
            if pem not in self._certs.setdefault(party, []):
                self._certs[party].append(pem)

    def verify(self, data: bytes, signature: bytes, party: str) -> bool:
        for pem in self._certs.get(party, []):
            try:
                cert, _ = self._verifier._check_certificate(pem, at=None)
                _check_signature(cert, BYTES_CONTEXT, data, signature, party)
            except (BadCertificate, BadSignature, Revoked):
                continue
            return True
        return False


class ReplayGuard:
    """Refuses a message id seen before, and messages issued outside ±window of now.

    A message is accepted once, and only while ``|now - issued_at| <= window``; so an
    id need only be remembered until ``issued_at + window``, after which the time
    check refuses it anyway. Memory is bounded by the number of messages accepted in
    the last two windows. Thread-safe. Call it *after* :meth:`Verifier.verify`, or an
    unsigned message could burn a genuine message's id.

    The ids live in memory (they are not payload, so even the router may keep them).
    After a restart, a message captured within the last window can be replayed once
    until that window has passed: the time check covers only what is older. A node
    that wants full cover stores ``(message_id, issued_at)`` in its database under a
    unique constraint and deletes rows older than the window, or refuses traffic for
    one window after starting.
    """

    def __init__(self, window_seconds: float = 300) -> None:
        if window_seconds <= 0:
            raise BadInput(f"the replay window must be positive, not {window_seconds}")
        self.window = dt.timedelta(seconds=window_seconds)
        self._forget_after: dict[str, dt.datetime] = {}
        self._queue: list[tuple[dt.datetime, str]] = []
        self._lock = threading.Lock()

    def check(
        self, message_id: str, issued_at: str | dt.datetime, now: dt.datetime | None = None
    ) -> None:
        """Accept ``message_id`` once, or raise Replay saying why not."""
        try:
            issued = parse_time(issued_at)
        except ValueError:
            raise Replay(
                f"message {message_id} has no readable issued_at ({issued_at!r}): its "
                "freshness cannot be checked",
                message_id=message_id,
            ) from None
        if now is not None and now.tzinfo is None:
            raise BadInput("now must carry a time zone (UTC)")
        now = _now() if now is None else now
        age = now - issued
        if age > self.window:
            raise Replay(
                f"message {message_id} was issued {age} ago, more than the "
                f"{self.window} window: a replay, or a sender whose clock is behind",
                message_id=message_id,
            )
        if -age > self.window:
            raise Replay(
                f"message {message_id} is dated {-age} in the future, more than the "
                f"{self.window} window: the sender's clock is ahead",
                message_id=message_id,
            )
        with self._lock:
            self._forget(now)
            if message_id in self._forget_after:
                raise Replay(f"message {message_id} was already received", message_id=message_id)
            self._forget_after[message_id] = issued + self.window
            heapq.heappush(self._queue, (issued + self.window, message_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._forget_after)

    def _forget(self, now: dt.datetime) -> None:
        while self._queue and self._queue[0][0] < now:
            _, message_id = heapq.heappop(self._queue)
            self._forget_after.pop(message_id, None)


def _subject(cert: x509.Certificate) -> str:
    """The subject for a message; a certificate too broken to have one says so."""
    try:
        return repr(cert.subject.rfc4514_string())
    except ValueError:
        return "(with an unreadable subject)"


class _NotFast(Exception):
    """Not an envelope the fast path can take; the general path decides."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _body_problem(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return "the body is not a JSON object"
    message_id, issued_at = body.get("message_id"), body.get("issued_at")
    if not isinstance(message_id, str):
        return "the body lacks message_id (use new_message_fields())"
    if not _UUID.fullmatch(message_id):
        return f"message_id {message_id!r} is not a lower-case UUID"
    if not isinstance(issued_at, str):
        return "the body lacks issued_at (use new_message_fields())"
    try:
        parse_time(issued_at)
    except ValueError:
        return f"issued_at {issued_at!r} is not an RFC 3339 time with a time zone"
    return None


def _envelope_fields(envelope: Any) -> tuple[dict[str, Any], str, str, bytes]:
    if not isinstance(envelope, Mapping):
        raise BadSignature("the envelope is not a JSON object")
    missing = ENVELOPE_FIELDS - envelope.keys()
    if missing:
        raise BadSignature(f"the envelope lacks {', '.join(sorted(missing))}: it is not signed")
    unknown = envelope.keys() - ENVELOPE_FIELDS
    if unknown:
        raise BadSignature(
            f"the envelope has unknown fields {', '.join(sorted(map(str, unknown)))}"
        )
    body, signer, cert, alg, signature = (
        envelope["body"],
        envelope["signer"],
        envelope["cert"],
        envelope["alg"],
        envelope["signature"],
    )
    if alg != ALG:
        raise BadSignature(f"the envelope's alg is {alg!r}; only {ALG} is accepted")
    if not isinstance(signer, str) or not isinstance(cert, str) or not isinstance(signature, str):
        raise BadSignature("signer, cert and signature must be strings")
    problem = _body_problem(body)
    if problem:
        raise BadSignature(f"the signed body is malformed: {problem}")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("the signature is not valid base64") from None
    return dict(body), signer, cert, raw


def _check_signature(
    cert: x509.Certificate, context: bytes, data: bytes, signature: bytes, signer: str
) -> None:
    """ES256 over ``context + data``, hashed in two parts (no copy of a large body)."""
    if len(signature) != 2 * _COORDINATE_BYTES:
        raise BadSignature(
            f"the signature of {signer} has {len(signature)} bytes; ES256 has "
            f"{2 * _COORDINATE_BYTES} (r || s)",
            signer=signer,
        )
    r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
    public_key = cast(ec.EllipticCurvePublicKey, cert.public_key())
    digest = hashes.Hash(hashes.SHA256())
    digest.update(context)
    digest.update(data)
    try:
        public_key.verify(encode_dss_signature(r, s), digest.finalize(), _PREHASHED_ES256)
    except InvalidSignature:
        raise BadSignature(
            f"the signature does not match the content signed by {signer}: it was altered "
            "after signing, or signed with another key",
            signer=signer,
        ) from None
