"""The federation PKI over real TLS 1.3: who may connect, and who is refused at the handshake."""

from __future__ import annotations

import datetime as dt
import queue
import shutil
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from prum.errors import BadCertificate, BadInput, InvalidPartyCode
from prum.federation.security import signing
from prum.federation.security.cli import pki_app
from prum.federation.security.pki import (
    PeerIdentity,
    client_context,
    identity_from_der,
    init_ca,
    issue,
    list_certs,
    peer_identity,
    revoke,
    server_context,
)

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_ca(directory)
    issue(directory, "ROUTER", role="router")
    issue(directory, "AT", role="node")
    return directory


@pytest.fixture
def rogue_at(tmp_path: Path, pki_dir: Path) -> Path:
    """An attacker's folder: the federation's public CA and CRL, but an AT certificate
    from another CA that even has the same name as the federation's."""
    rogue_ca = tmp_path / "rogue-ca"
    init_ca(rogue_ca)
    issue(rogue_ca, "AT", role="node")
    folder = tmp_path / "attacker"
    folder.mkdir()
    for name in ("ca.pem", "crl.pem"):
        shutil.copy(pki_dir / name, folder / name)
    for name in ("AT.pem", "AT.key"):
        shutil.copy(rogue_ca / name, folder / name)
    return folder


class TlsServer:
    """A TLS server on 127.0.0.1 that greets each client by its certificate's party and
    records what happened: the client's identity, or the handshake error."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.outcomes: queue.Queue[PeerIdentity | Exception] = queue.Queue()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.address: tuple[str, int] = self._listener.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def outcome(self) -> PeerIdentity | Exception:
        return self.outcomes.get(timeout=10)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    identity = peer_identity(tls)
                    tls.sendall(f"hello {identity.party}".encode())
                    self.outcomes.put(identity)
            except (ssl.SSLError, OSError, BadCertificate) as exc:
                self.outcomes.put(exc)
            finally:
                conn.close()


def talk(context: ssl.SSLContext, address: tuple[str, int]) -> bytes:
    """Connect, complete the handshake and read the greeting (raise if there is none).

    In TLS 1.3 the client finishes its handshake before the server has judged the
    client certificate, so a refusal of the client shows up at the first read.
    """
    with (
        socket.create_connection(address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        data = tls.recv(100)
    if not data:
        raise ConnectionError("the server closed the connection without a greeting")
    return data


def refused(server: TlsServer) -> str:
    """The server's reason for refusing the last client."""
    outcome = server.outcome()
    assert isinstance(outcome, ssl.SSLError), f"expected a refusal, got {outcome!r}"
    return str(outcome)


# --- TLS: who gets in ---------------------------------------------------------------------


def test_valid_client_is_identified_by_its_certificate(pki_dir: Path) -> None:
    at = list_certs(pki_dir)[0]
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        assert talk(client_context(pki_dir, "AT"), server.address) == b"hello AT"
        identity = server.outcome()
    assert identity == PeerIdentity(
        party="AT", role="node", serial=at.serial, not_after=at.not_after
    )


def test_client_certificate_from_another_ca_is_refused(pki_dir: Path, rogue_at: Path) -> None:
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            talk(client_context(rogue_at, "AT"), server.address)
        assert "unable to get local issuer certificate" in refused(server)


def test_expired_client_certificate_is_refused(pki_dir: Path) -> None:
    issue(pki_dir, "DE", role="node", not_before=NOW - dt.timedelta(days=10), days=1)
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            talk(client_context(pki_dir, "DE"), server.address)
        assert "certificate has expired" in refused(server)


def test_revoked_client_certificate_is_refused_by_a_new_context(pki_dir: Path) -> None:
    client = client_context(pki_dir, "AT")
    old_context = server_context(pki_dir, "ROUTER")
    revoke(pki_dir, "AT")
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            talk(client, server.address)
        assert "certificate revoked" in refused(server)
    # The CRL is read when a context is built: the old one still lets AT in.
    with TlsServer(old_context) as server:
        assert talk(client, server.address) == b"hello AT"


def test_a_followed_context_refuses_a_certificate_revoked_while_it_runs(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "CRL_RECHECK_SECONDS", 0.0)
    client = client_context(pki_dir, "AT")
    running = server_context(pki_dir, "ROUTER")
    verifier = signing.Verifier(pki_dir)
    verifier.follow(running)
    with TlsServer(running) as server:
        assert talk(client, server.address) == b"hello AT"
        assert server.outcome().party == "AT"  # type: ignore[union-attr]
        revoke(pki_dir, "AT")
        verifier.revoked_serials()  # what the process does every second
        with pytest.raises((ssl.SSLError, ConnectionError)):
            talk(client, server.address)
        assert "certificate revoked" in refused(server)
        issue(pki_dir, "DE", role="node")
        assert talk(client_context(pki_dir, "DE"), server.address) == b"hello DE"


def test_client_without_certificate_is_refused(pki_dir: Path) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cafile=pki_dir / "ca.pem")
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            talk(anonymous, server.address)
        assert "peer did not return a certificate" in refused(server)


def test_tls_1_2_is_refused(pki_dir: Path) -> None:
    old = client_context(pki_dir, "AT")
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with TlsServer(server_context(pki_dir, "ROUTER")) as server:
        with pytest.raises(ssl.SSLError, match=r"VERSION|PROTOCOL"):
            talk(old, server.address)
        assert "unsupported protocol" in refused(server)


def test_client_refuses_a_server_from_another_ca(pki_dir: Path, rogue_at: Path) -> None:
    with (
        TlsServer(server_context(rogue_at, "AT")) as server,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        talk(client_context(pki_dir, "ROUTER"), server.address)


def test_contexts_require_tls_1_3_certificates_and_crl(pki_dir: Path) -> None:
    for context in (server_context(pki_dir, "ROUTER"), client_context(pki_dir, "AT")):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_context_for_a_party_without_certificate_says_how_to_get_one(pki_dir: Path) -> None:
    with pytest.raises(BadInput, match="prum pki issue DE"):
        server_context(pki_dir, "DE")


# --- the CA and certificates ---------------------------------------------------------------


def test_ca_is_not_overwritten(pki_dir: Path) -> None:
    before = (pki_dir / "ca.pem").read_bytes()
    with pytest.raises(BadInput, match="already holds a federation CA"):
        init_ca(pki_dir)
    assert (pki_dir / "ca.pem").read_bytes() == before


def test_private_keys_are_readable_by_owner_only(pki_dir: Path) -> None:
    for name in ("ca.key", "AT.key", "ROUTER.key"):
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600


def test_certificate_names_party_role_hosts_and_both_tls_uses(pki_dir: Path) -> None:
    cert = x509.load_pem_x509_certificate((pki_dir / "AT.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "AT"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "node"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


@pytest.mark.parametrize("code", ["at", "DEU", "ROUTERS", "", "A1", "EUROPOL "])
def test_bad_party_code_is_refused(pki_dir: Path, code: str) -> None:
    with pytest.raises(InvalidPartyCode):
        issue(pki_dir, code, role="node")


def test_router_certificate_must_have_router_role(pki_dir: Path) -> None:
    with pytest.raises(BadInput, match="role 'router'"):
        issue(pki_dir, "ROUTER", role="node")
    with pytest.raises(BadInput, match="role 'node'"):
        issue(pki_dir, "EUROPOL", role="router")


def test_revoke_by_serial_marks_only_that_certificate(pki_dir: Path) -> None:
    renewed = issue(pki_dir, "AT", role="node")
    assert revoke(pki_dir, format(renewed.serial, "x")) == [renewed.serial]
    revoked = {r.serial: r.revoked for r in list_certs(pki_dir) if r.party == "AT"}
    assert len(revoked) == 2 and revoked[renewed.serial] and sum(revoked.values()) == 1
    assert revoke(pki_dir, format(renewed.serial, "x")) == []  # already revoked


def test_revoking_something_never_issued_is_refused(pki_dir: Path) -> None:
    with pytest.raises(BadInput, match="no certificate was issued to DE"):
        revoke(pki_dir, "DE")
    with pytest.raises(BadInput, match="no certificate with serial"):
        revoke(pki_dir, "0x1234")
    with pytest.raises(BadInput, match="neither a party code nor"):
        revoke(pki_dir, "not-a-serial")


def test_identity_from_garbage_is_a_bad_certificate() -> None:
    with pytest.raises(BadCertificate):
        identity_from_der(b"\x30\x03\x02\x01\x00")


# --- prum pki --------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("PRUM_PKI_DIR", str(tmp_path / "cli-pki"))
    yield CliRunner()


def test_cli_init_issue_revoke_list(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(pki_app, ["init"]).exit_code == 0
    result = cli.invoke(pki_app, ["issue", "DE", "--role", "node", "--host", "de.example"])
    assert result.exit_code == 0, result.output
    assert cli.invoke(pki_app, ["revoke", "DE"]).exit_code == 0
    listing = cli.invoke(pki_app, ["list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    assert "DE" in listing.output and "de.example" in listing.output and "revoked" in listing.output
    assert (tmp_path / "cli-pki" / "crl.pem").is_file()


def test_cli_reports_errors_without_a_traceback(cli: CliRunner) -> None:
    result = cli.invoke(pki_app, ["issue", "DEU", "--role", "node"])
    assert result.exit_code == 2
    assert "invalid_party_code" in result.output
