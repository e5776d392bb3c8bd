"""National configuration of a node: what it offers, to whom, under which rules.

Loaded from a JSON file (``prum node serve --config node.json``). Every default
follows Reg. 2024/982 or the legacy Prüm figures, with the origin in a comment; a
country tightens them to its own law.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prum.config import FaceSettings, IndexSettings, Settings
from prum.errors import BadInput
from prum.gallery.schema import SubjectCategory
from prum.messages import Category, Party, Purpose


class CategoryPolicy(BaseModel):
    """The rules this node applies to incoming searches of one category."""

    model_config = ConfigDict(extra="forbid")

    # Purposes national law allows (missing persons and remains only where it says so).
    purposes: list[Purpose] = Field(default_factory=lambda: [Purpose.INVESTIGATION])
    # Faces and police records: offences punishable by at least one year (Art 2).
    min_penalty_months: Annotated[int, Field(ge=0)] = 12
    # Candidates returned at most (DESIGN.md section 7: default 10, hard maximum 100).
    max_candidates: Annotated[int, Field(ge=1, le=100)] = 10
    # Searches accepted per requesting party per day (legacy model: TP/TP 100 a day).
    daily_capacity: Annotated[int, Field(ge=0)] = 1000
    # Data-subject categories that may appear in an answer.
    exposed_subjects: list[SubjectCategory] = Field(
        default_factory=lambda: [
            SubjectCategory.SUSPECT,
            SubjectCategory.CONVICTED,
            SubjectCategory.UNIDENTIFIED_SUSPECT,
        ]
    )
    # Records of people younger than this are withheld (None: no age rule).
    min_age: Annotated[int, Field(ge=0, le=30)] | None = 18
    unknown_age_exposed: bool = True


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Party
    data_dir: Path
    database_url: str = ""
    pki_dir: Path
    router_url: str
    # Router-facing API (mutual TLS).
    federation_host: str = "127.0.0.1"
    federation_port: int = 0
    # National API and web UI (the national intranet).
    api_host: str = "127.0.0.1"
    api_port: int = 0
    categories: dict[Category, CategoryPolicy] = Field(
        default_factory=lambda: {Category.FACE: CategoryPolicy()}
    )
    # Art 47: core data within 48 hours of a reasoned request.
    core_data_deadline_hours: Annotated[int, Field(ge=1)] = 48
    face: FaceSettings = Field(default_factory=FaceSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    # Seconds before an undelivered outbox message is retried (doubling, up to 60 s).
    outbox_retry_seconds: Annotated[float, Field(gt=0)] = 1.0

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise BadInput(f"node configuration {path} does not exist") from None
        except (json.JSONDecodeError, ValidationError) as exc:
            raise BadInput(f"node configuration {path} is invalid: {exc}") from exc

    def settings(self) -> Settings:
        """The gallery settings of this node."""
        return Settings(
            country=self.party[:2] if self.party != "EUROPOL" else "EU",
            data_dir=self.data_dir,
            database_url=self.database_url,
            face=self.face,
            index=self.index,
        )

    def database(self) -> str:
        return self.settings().resolved_database_url()
