"""Settings of the central router, from the environment (``PRUM_ROUTER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_ROUTER_", extra="forbid")

    pki_dir: Path = Path("var/pki")
    directory_file: Path = Path("var/router/directory.json")
    # Metadata only: the audit log and statistics (the router keeps no payload).
    data_dir: Path = Path("var/router")
    # SQLAlchemy URL of the audit log and statistics; default SQLite in data_dir.
    audit_url: str | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8443
    # This process's name among the router's replicas: its own audit hash chain in a
    # shared audit store (docs/architecture.md, "Scaling the router out").
    replica: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = "main"
    # Share the port with the other replicas on this host (SO_REUSEPORT).
    reuse_port: bool = False
    # The longest a requester may make the router wait for a fan-out. The schema lets
    # a request ask for up to 15 minutes (the legacy DNA answer time); holding an HTTP
    # request that long belongs to batch comparisons, not to one-off searches.
    max_deadline_ms: Annotated[int, Field(ge=100, le=900_000)] = 120_000
    # How long a destination node's inbox may take to acknowledge a delivery.
    deliver_timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    # The replay window of the protocol (docs/protocol.md: 5 minutes).
    replay_window_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # The largest answer accepted from a node: 100 candidates with their images.
    max_reply_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    # Audit entries waiting to be written before new requests are refused (503): the
    # router does nothing it cannot log. ~20 s of writes on a slow disk.
    audit_backlog: Annotated[int, Field(ge=10)] = 2000
    # Searches one router process answers at once; more are refused at once with 503
    # and Retry-After (load shedding) instead of queueing past their deadlines. At
    # about 10 ms of CPU per search, 256 in flight is a few seconds of work.
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 256

    def audit_database_url(self) -> str:
        return self.audit_url or f"sqlite:///{self.data_dir / 'audit.sqlite'}"
