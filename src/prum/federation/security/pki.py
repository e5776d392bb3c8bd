"""A small federation PKI: one CA, one certificate per party, a CRL, TLS 1.3 contexts.

Layout of a PKI directory (``var/pki`` by default)::

    ca.pem  ca.key          the federation CA (key 0600; only the CA operator needs it)
    crl.pem                 revocation list signed by the CA, rewritten on each revocation
    revoked.json            the revoked serials the CRL is built from
    certs/<serial>.pem      every certificate ever issued (what ``prum pki list`` shows)
    <PARTY>.pem <PARTY>.key the current certificate and key of a party (key 0600)

A party's own deployment needs only ``ca.pem``, ``crl.pem`` and its own two files; every
function that reads certificates works on such a directory too. Keys are unencrypted
PEM protected by file permissions: right for demos, tests and small deployments; the
CA key of a real federation belongs in an HSM.

A party is known by its certificate (subject CN = party code, OU = role) and by nothing
else: :func:`identity_from_der` is the only way the system learns who a caller is.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from prum.errors import BadCertificate, BadInput, InvalidPartyCode

Role = Literal["node", "router"]
ROLES: tuple[Role, ...] = ("node", "router")

# EU member states and associated countries by their two-letter code (the EU writes EL
# for Greece, so the pattern is not tied to the ISO list), Europol, and the router.
PARTY_PATTERN = re.compile(r"[A-Z]{2}|EUROPOL|ROUTER")
ROUTER = "ROUTER"
ORGANISATION = "Prüm federation"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")

# Certificates and CRLs start a few minutes in the past so that a peer whose clock is
# slightly behind does not see them as "not yet valid" (Let's Encrypt backdates too).
BACKDATE = dt.timedelta(minutes=5)

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CRL = "crl.pem"
REVOKED = "revoked.json"
CERTS = "certs"


@dataclass(frozen=True)
class IssuedCert:
    """Where :func:`issue` wrote a party's certificate and key."""

    cert_path: Path
    key_path: Path
    serial: int


@dataclass(frozen=True)
class PeerIdentity:
    """Who a certificate belongs to, as the federation CA vouched for it."""

    party: str
    role: Role
    serial: int
    not_after: dt.datetime

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)


@dataclass(frozen=True)
class CertRecord:
    """One issued certificate, as ``prum pki list`` shows it."""

    party: str
    role: Role
    serial: int
    hosts: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    revoked: bool
    path: Path


# --- party codes and names ------------------------------------------------------------


def validate_party(party: str) -> str:
    """Return ``party`` if it is a party code, else raise InvalidPartyCode."""
    if not isinstance(party, str) or not PARTY_PATTERN.fullmatch(party):
        raise InvalidPartyCode(
            f"{party!r} is not a party code: use two upper-case letters (AT, DE, EL ...), "
            "EUROPOL or ROUTER",
            party=str(party),
        )
    return party


def expected_role(party: str) -> Role:
    """The router holds the ROUTER certificate; every other party is a node."""
    return "router" if party == ROUTER else "node"


def format_serial(serial: int) -> str:
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """A serial as ``prum pki list`` prints it (hex; ``0x`` prefix and colons allowed)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise BadInput(
            f"{text!r} is neither a party code nor a certificate serial "
            "(hexadecimal, as `prum pki list` shows it)"
        ) from None


def cert_path(directory: Path, party: str) -> Path:
    return Path(directory) / f"{validate_party(party)}.pem"


def key_path(directory: Path, party: str) -> Path:
    return Path(directory) / f"{validate_party(party)}.key"


def identity_of(cert: x509.Certificate) -> PeerIdentity:
    """Read party (CN) and role (OU) from a federation certificate.

    Does not check who issued the certificate: call it on certificates that TLS or
    :class:`prum.federation.security.signing.Verifier` has already verified.
    """
    party = _single_attribute(cert, NameOID.COMMON_NAME, "common name (CN)")
    role = _single_attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)")
    if not PARTY_PATTERN.fullmatch(party):
        raise BadCertificate(f"certificate CN {party!r} is not a party code", party=party)
    if role not in ROLES or role != expected_role(party):
        raise BadCertificate(
            f"certificate of {party} claims role {role!r}; expected {expected_role(party)!r}",
            party=party,
        )
    return PeerIdentity(
        party=party,
        role=role,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
    )


def identity_from_der(der: bytes) -> PeerIdentity:
    """The identity of a TLS peer, from ``ssl_object.getpeercert(binary_form=True)``.

    TLS has already verified the chain, validity and revocation when this is called
    on a peer certificate; never take a party code from a message body instead.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, TypeError):
        raise BadCertificate("the peer certificate is not a DER X.509 certificate") from None
    return identity_of(cert)


def peer_identity(conn: ssl.SSLSocket | ssl.SSLObject) -> PeerIdentity:
    """The identity of the other end of an established TLS connection."""
    der = conn.getpeercert(binary_form=True)
    if not der:
        raise BadCertificate("the peer presented no certificate")
    return identity_from_der(der)


# --- the CA -------------------------------------------------------------------------------


def init_ca(directory: Path, *, name: str = "Prüm federation CA", days: int = 3650) -> Path:
    """Create the federation CA (ECDSA P-256) and an empty CRL; return the CA cert path.

    Refuses to overwrite an existing CA: every certificate it issued would die with it.
    """
    directory = Path(directory)
    _positive_days(days)
    if (directory / CA_CERT).exists() or (directory / CA_KEY).exists():
        raise BadInput(
            f"{directory} already holds a federation CA; refusing to overwrite it "
            "(remove the directory to start over: every certificate it issued becomes "
            "useless)",
            directory=str(directory),
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory / CA_KEY, _key_pem(key), private=True)
    state: dict[str, Any] = {"crl_number": 1, "revoked": []}
    crl = _build_crl(cert, key, state)
    _write(directory / REVOKED, json.dumps(state, indent=2).encode())
    _write(directory / CRL, crl)
    _write(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def load_ca_certificate(directory: Path) -> x509.Certificate:
    """The federation CA certificate of a PKI directory (BadInput when absent)."""
    path = Path(directory) / CA_CERT
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise BadInput(
            f"no federation CA in {directory} (create one with `prum pki init`)",
            directory=str(directory),
        ) from None
    except ValueError:
        raise BadInput(f"{path} is not a PEM certificate", path=str(path)) from None


def load_crl(directory: Path, ca: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL of a PKI directory, after checking that the CA signed it."""
    path = Path(directory) / CRL
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        raise BadInput(
            f"no revocation list {path}: copy crl.pem from the CA operator", path=str(path)
        ) from None
    except ValueError:
        raise BadInput(f"{path} is not a PEM CRL", path=str(path)) from None
    public_key = ca.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
        public_key
    ):
        raise BadInput(f"{path} is not signed by the federation CA", path=str(path))
    return crl


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = load_ca_certificate(directory)
    try:
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    except FileNotFoundError:
        raise BadInput(
            f"the CA key {directory / CA_KEY} is absent: issuing and revoking need the CA "
            "operator's directory",
            directory=str(directory),
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInput(f"{directory / CA_KEY} is not an ECDSA key")
    return cert, key


# --- party certificates ---------------------------------------------------------------


def issue(
    directory: Path,
    party: str,
    *,
    role: Role,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 825,
    not_before: dt.datetime | None = None,
) -> IssuedCert:
    """Issue an ECDSA P-256 certificate for ``party``, valid for TLS client and server.

    ``hosts`` become the subject alternative names (IP addresses or DNS names) the
    party's server answers on. Issuing again for the same party replaces its current
    files (renewal); the old certificate stays valid until it expires or is revoked.
    ``not_before`` and ``days`` let tests mint an already expired certificate. The
    validity never outlasts the CA's.
    """
    directory = Path(directory)
    validate_party(party)
    if role not in ROLES or role != expected_role(party):
        raise BadInput(
            f"{party} must have role {expected_role(party)!r}, not {role!r}", party=party
        )
    _positive_days(days)
    start = _now() - BACKDATE if not_before is None else _aware(not_before, "not_before")
    ca_cert, ca_key = _load_ca(directory)
    end = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, party),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / CERTS).mkdir(exist_ok=True)
    _write(directory / CERTS / f"{format_serial(cert.serial_number)}.pem", cert_pem)
    _write(key_path(directory, party), _key_pem(key), private=True)
    _write(cert_path(directory, party), cert_pem)
    return IssuedCert(
        cert_path=cert_path(directory, party),
        key_path=key_path(directory, party),
        serial=cert.serial_number,
    )


def revoke(directory: Path, party_or_serial: str) -> list[int]:
    """Revoke a certificate (by hex serial) or every certificate of a party (by code).

    Rewrites ``crl.pem`` with all revoked serials and returns the serials newly revoked
    (empty when they already were). A running router or node rereads the new CRL
    within a second (signing.Verifier, and the TLS contexts it follows): the revoked
    party's signed messages and its next connections are refused without a restart.
    """
    directory = Path(directory)
    ca_cert, ca_key = _load_ca(directory)
    records = list_certs(directory)
    if PARTY_PATTERN.fullmatch(party_or_serial):
        targets = [r for r in records if r.party == party_or_serial]
        if not targets:
            raise BadInput(
                f"no certificate was issued to {party_or_serial} from {directory}",
                party=party_or_serial,
            )
    else:
        serial = parse_serial(party_or_serial)
        targets = [r for r in records if r.serial == serial]
        if not targets:
            raise BadInput(
                f"no certificate with serial {format_serial(serial)} was issued from {directory}",
                serial=format_serial(serial),
            )
    state = _revocation_state(directory)
    now = _now()
    fresh = [r for r in targets if not r.revoked]
    if not fresh:
        return []
    for record in fresh:
        state["revoked"].append(
            {
                "serial": format_serial(record.serial),
                "party": record.party,
                "revoked_at": now.isoformat(),
            }
        )
    state["crl_number"] = int(state["crl_number"]) + 1
    crl = _build_crl(ca_cert, ca_key, state)  # records its last update in the state
    _write(directory / REVOKED, json.dumps(state, indent=2).encode())
    _write(directory / CRL, crl)
    return [r.serial for r in fresh]


def list_certs(directory: Path) -> list[CertRecord]:
    """Every certificate issued from this directory, by party then age."""
    directory = Path(directory)
    load_ca_certificate(directory)  # a clear error when this is not a CA directory
    revoked = {int(entry["serial"], 16) for entry in _revocation_state(directory)["revoked"]}
    records = []
    for path in sorted((directory / CERTS).glob("*.pem")):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        identity = identity_of(cert)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = tuple(str(name.value) for name in san)
        except x509.ExtensionNotFound:
            hosts = ()
        records.append(
            CertRecord(
                party=identity.party,
                role=identity.role,
                serial=cert.serial_number,
                hosts=hosts,
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                revoked=cert.serial_number in revoked,
                path=path,
            )
        )
    return sorted(records, key=lambda r: (r.party, r.not_before))


# --- TLS ------------------------------------------------------------------------------------


def server_context(directory: Path, party: str) -> ssl.SSLContext:
    """TLS 1.3 server context for ``party``: client certificates required.

    Trusts only the federation CA of ``directory`` and checks the client certificate
    against ``crl.pem``, read here; a running process keeps it current with
    ``Verifier.follow`` (a revocation takes effect within a second). Who the
    client is comes from :func:`peer_identity` / :func:`identity_from_der`.
    """
    return _context(Path(directory), party, server=True)


def client_context(directory: Path, party: str) -> ssl.SSLContext:
    """TLS 1.3 client context for ``party``, presenting its certificate.

    Verifies the server against the federation CA, its CRL (read here; kept current
    with ``Verifier.follow``) and the host name (the certificate's SANs). In
    demos every party shares ``localhost``, so a caller that must reach one party
    checks :func:`peer_identity` of the connection, or the signer of the reply.
    """
    return _context(Path(directory), party, server=False)


def token_server_context(directory: Path, party: str) -> ssl.SSLContext:
    """TLS 1.3 server context for ``party`` that asks no client certificate: for a
    listener whose callers authenticate otherwise (the national-systems interface's
    bearer tokens). Clients verify it against the federation CA (``ca.pem``)."""
    directory = Path(directory)
    cert, key = cert_path(directory, party), key_path(directory, party)
    for path in (cert, key):
        if not path.is_file():
            raise BadInput(f"{path} is missing: issue one with `prum pki issue {party}`")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise BadInput(f"cannot load the TLS files of {party} from {directory}: {exc}") from None
    return context


def _context(directory: Path, party: str, *, server: bool) -> ssl.SSLContext:
    validate_party(party)
    ca, crl = directory / CA_CERT, directory / CRL
    cert, key = cert_path(directory, party), key_path(directory, party)
    for path, hint in (
        (ca, "copy ca.pem from the CA operator"),
        (crl, "copy crl.pem from the CA operator"),
        (cert, f"issue one with `prum pki issue {party}`"),
        (key, f"issue one with `prum pki issue {party}`"),
    ):
        if not path.is_file():
            raise BadInput(f"{path} is missing: {hint}", path=str(path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    try:
        context.load_verify_locations(cafile=ca)
        context.load_verify_locations(cafile=crl)  # OpenSSL reads the CRL into the store
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise BadInput(
            f"cannot load the TLS files of {party} from {directory}: {exc}", party=party
        ) from None
    return context


# --- helpers --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise BadInput(f"{name} must carry a time zone (UTC)")
    return value.astimezone(dt.UTC)


def _positive_days(days: int) -> None:
    if days < 1:
        raise BadInput(f"validity must be at least one day, not {days}")


def _single_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    values = [a.value for a in cert.subject.get_attributes_for_oid(oid)]
    if len(values) != 1 or not isinstance(values[0], str):
        raise BadCertificate(f"certificate {cert.subject.rfc4514_string()!r} has no single {what}")
    return values[0]


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not DNS_NAME.fullmatch(host):
        raise BadInput(f"{host!r} is neither an IP address nor a DNS name", host=host)
    return x509.DNSName(host.rstrip("."))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _revocation_state(directory: Path) -> dict[str, Any]:
    try:
        state = json.loads((directory / REVOKED).read_text())
    except FileNotFoundError:
        return {"crl_number": 1, "revoked": []}
    return cast(dict[str, Any], state)


def _build_crl(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, state: dict[str, Any]
) -> bytes:
    # The CRL is valid as long as the CA: OpenSSL refuses every connection once the
    # CRL's next update has passed, and a demo federation has no CRL refresh job.
    # Each CRL's last update strictly later than the one before (second resolution):
    # a running TLS context given the new CRL beside the old checks with the newest.
    last_update = (_now() - BACKDATE).replace(microsecond=0)
    if state.get("last_update"):
        previous = dt.datetime.fromisoformat(state["last_update"])
        last_update = max(last_update, previous + dt.timedelta(seconds=1))
    state["last_update"] = last_update.isoformat()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(last_update)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.CRLNumber(int(state["crl_number"])), critical=False)
    )
    for entry in state["revoked"]:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"], 16))
            .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically (a reader never sees half a CRL); keys are created 0600."""
    tmp = path.with_name(path.name + ".tmp")
    mode = 0o600 if private else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # a leftover temporary file may have had other modes
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
