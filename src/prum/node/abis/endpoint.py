"""How a node reaches a category's external ABIS (``CategoryPolicy.abis`` in the node's
configuration; docs/abis.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prum.federation.messages import Category

# Categories whose matcher may be an external ABIS (biometrics; vehicles and police
# records are lookups the node answers from its own store).
ABIS_CATEGORIES = frozenset({Category.FACE, Category.FINGER, Category.DNA})


class AbisEndpoint(BaseModel):
    """An external matcher (a national ABIS) that answers this category's searches over
    HTTP. The node keeps its system of record; inserts and deletes reach the ABIS
    through the node's outbox (prum.node.abis.delivery)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(pattern=r"^https?://")]
    # Bearer token the ABIS expects (or a file holding it, read when the node starts).
    token: str | None = None
    token_file: Path | None = None
    # HTTPS: the CA that signed the ABIS's certificate (None: the system's CAs) and, for
    # mutual TLS, this node's client certificate and key.
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    # A search the ABIS has not answered within this is the country's status ``timeout``:
    # keep it below the federation's search deadlines (10 s from the workbench).
    deadline_ms: Annotated[int, Field(ge=50, le=600_000)] = 5000
    # After this many failed searches in a row the breaker opens: searches fail at once
    # (status ``error``, the last failure as reason) until one trial after reset_seconds.
    breaker_failures: Annotated[int, Field(ge=1, le=100)] = 3
    breaker_reset_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # Records per insert or delete request from the outbox (a burst travels in few).
    insert_batch: Annotated[int, Field(ge=1, le=500)] = 100

    @model_validator(mode="after")
    def _pairs(self) -> AbisEndpoint:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mutual TLS)")
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self
