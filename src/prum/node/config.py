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

from prum.categories.face.config import FaceSettings, IndexSettings
from prum.categories.interface import SubjectCategory
from prum.config import Settings
from prum.errors import BadInput, SearchTypeNotOffered
from prum.federation.messages import Category, Party, Purpose


class SearchTypePolicy(BaseModel):
    """A search type's own limits (fingerprints: TP/TP, TP/UL, LT/TP, LT/UL)."""

    model_config = ConfigDict(extra="forbid")

    daily_capacity: Annotated[int, Field(ge=0)]
    max_candidates: Annotated[int, Field(ge=1, le=100)]


# The legacy Prüm figures (2008/616 and its manual) where they exist: TP/TP 100 a day
# with 1 candidate, LT/TP 20 a day with 10, LT/UL 5 a day with 5. TP/UL has no legacy
# figure; it is set like LT/UL (a tenprint against the unsolved latents), tighten it.
LEGACY_FINGER_TYPES: dict[str, SearchTypePolicy] = {
    "TP/TP": SearchTypePolicy(daily_capacity=100, max_candidates=1),
    "TP/UL": SearchTypePolicy(daily_capacity=5, max_candidates=5),
    "LT/TP": SearchTypePolicy(daily_capacity=20, max_candidates=10),
    "LT/UL": SearchTypePolicy(daily_capacity=5, max_candidates=5),
}


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
    # Search types with their own capacity and candidate cap (empty: the category has
    # none; fingerprints: see LEGACY_FINGER_TYPES). A request must name one of them.
    search_types: dict[str, SearchTypePolicy] = Field(default_factory=dict)
    # DNA: profiles accepted per requesting party per day in bulk and continuous
    # comparisons (counted per profile, so a connecting country is paced, not refused).
    daily_bulk_profiles: Annotated[int, Field(ge=0)] = 2_000_000

    def limits(self, search_type: str | None) -> tuple[str, int, int]:
        """(capacity key suffix, daily capacity, candidate cap) for a search type."""
        if not self.search_types:
            return "", self.daily_capacity, self.max_candidates
        chosen = self.search_types.get(search_type or "")
        if chosen is None:
            raise SearchTypeNotOffered(
                f"search type {search_type!r} is not offered here; offered:"
                f" {', '.join(sorted(self.search_types))}"
            )
        return f":{search_type}", chosen.daily_capacity, chosen.max_candidates


class ComparisonSettings(BaseModel):
    """Pacing of the DNA bulk and continuous comparisons this node runs (Art 7)."""

    model_config = ConfigDict(extra="forbid")

    # Profiles per batch at most; halved after a timeout, doubled back after successes.
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 500
    # How long the other party may take for one batch (legacy target: 15 minutes).
    deadline_ms: Annotated[int, Field(ge=100, le=900_000)] = 120_000
    # Seconds between looks for new profiles (continuous comparison).
    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Back-off after a refusal or failure: doubling from 1 s up to this.
    max_backoff_seconds: Annotated[float, Field(gt=0)] = 600.0


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
    # The national-systems interface (machines: AFIS, DNA database ...; bearer tokens).
    systems_host: str = "127.0.0.1"
    systems_port: int = 0
    # Processes that decode and embed faces and fingerprints of incoming batches (one per
    # core: a 2-core node enrols about twice as fast with 2).
    systems_workers: Annotated[int, Field(ge=1, le=64)] = 2
    # How often records whose retention date has passed are looked for and erased.
    retention_check_seconds: Annotated[float, Field(gt=0)] = 3600.0
    categories: dict[Category, CategoryPolicy] = Field(
        default_factory=lambda: {Category.FACE: CategoryPolicy()}
    )
    # Art 47: core data within 48 hours of a reasoned request.
    core_data_deadline_hours: Annotated[int, Field(ge=1)] = 48
    face: FaceSettings = Field(default_factory=FaceSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    # Seconds before an undelivered outbox message is retried (doubling, up to 60 s).
    outbox_retry_seconds: Annotated[float, Field(gt=0)] = 1.0
    comparison: ComparisonSettings = Field(default_factory=ComparisonSettings)
    # The federation's police-records key (shared by the parties that take part);
    # default: records.key in the PKI directory (``prum pki records-key`` makes one).
    records_key: Path | None = None

    def records_key_path(self) -> Path:
        return self.records_key or self.pki_dir / "records.key"

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
            records_key=self.records_key_path(),
        )

    def database(self) -> str:
        return self.settings().resolved_database_url()
