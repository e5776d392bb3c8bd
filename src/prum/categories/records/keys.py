"""The federation's records key: a 32-byte secret with a key id, kept in a file.

Every pseudonym of the police-records exchange is a keyed hash (HMAC-SHA256, RFC 2104)
under this key, so that requester and holder compute the same pseudonym of the same
normalised token while nobody without the key can test a guessed name against it.
All participating nodes hold the same key (the ADEP model); docs/records.md says what
that does and does not protect against, and how the key is rotated.

File format: one JSON object ``{"key_id": "...", "secret": "<64 hex digits>"}``,
created with mode 0600.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from prum.errors import InvalidRecordsKey

_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
SECRET_BYTES = 32


@dataclass(frozen=True)
class FederationKey:
    """The shared secret of the records exchange and the id under which it travels."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.key_id):
            raise InvalidRecordsKey(
                f"key id {self.key_id!r} must be 1-40 letters, digits, '.', '_' or '-'"
            )
        if len(self.secret) != SECRET_BYTES:
            raise InvalidRecordsKey(
                f"the records key must be {SECRET_BYTES} bytes, not {len(self.secret)}"
            )

    def mac(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 of ``domain`` and ``value`` (separated so no two pairs collide)."""
        return hmac.digest(self.secret, f"{domain}\x1f{value}".encode(), "sha256")

    def pseudonym(self, domain: str, value: str) -> str:
        """A 64-bit pseudonym in hex: a chance collision of two different tokens has
        probability about 10^-19 per pair, and the wire stays short."""
        return _pseudonym(self, domain, value)


# Names, years and their combinations repeat across a register: caching their
# pseudonyms halves the cost of a bulk enrolment.
@functools.lru_cache(maxsize=1 << 18)
def _pseudonym(key: FederationKey, domain: str, value: str) -> str:
    return key.mac(domain, value)[:8].hex()


def new_key(key_id: str) -> FederationKey:
    """A fresh random key (``secrets``, the OS's CSPRNG)."""
    return FederationKey(key_id, secrets.token_bytes(SECRET_BYTES))


def create_key_file(path: Path, key_id: str) -> FederationKey:
    """Create a new key file (refuses to overwrite one); readable by its owner only."""
    key = new_key(key_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InvalidRecordsKey(f"{path} exists already; a key file is never overwritten") from exc
    with os.fdopen(fd, "w") as f:
        json.dump({"key_id": key.key_id, "secret": key.secret.hex()}, f)
        f.write("\n")
    return key


def load_key_file(path: Path) -> FederationKey:
    """Read a key file written by :func:`create_key_file`."""
    try:
        data = json.loads(path.read_text())
        key_id, secret = data["key_id"], bytes.fromhex(data["secret"])
    except FileNotFoundError as exc:
        raise InvalidRecordsKey(
            f"the records key file {path} does not exist: copy the federation's key there"
            " (made once with `prum pki records-key`) or set PRUM_RECORDS_KEY_FILE"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRecordsKey(f"the records key file {path} is unreadable: {exc}") from exc
    if not isinstance(key_id, str):
        raise InvalidRecordsKey(f"the records key file {path} has no key id")
    return FederationKey(key_id, secret)
