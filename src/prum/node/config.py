"""National configuration of a node: what it offers, to whom, under which rules.

Loaded from a JSON file (``prum node serve --config node.json``). Every default
follows Reg. 2024/982 or the legacy Prüm figures, with the origin in a comment; a
country tightens them to its own law.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prum.categories.face.config import FaceSettings, IndexSettings
from prum.categories.interface import SubjectCategory
from prum.config import Settings
from prum.errors import BadInput, SearchTypeNotOffered
from prum.federation.messages import Category, Party, Purpose
from prum.node.abis.endpoint import ABIS_CATEGORIES, AbisEndpoint


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


# The penalty threshold of criminal-offence searches where the configuration names none
# (Reg. 2024/982): faces and police records only for offences punishable by at least one
# year (Arts 2 and 44); DNA, fingerprints and vehicles for any criminal offence.
REGULATION_MIN_PENALTY_MONTHS: dict[Category, int] = {
    Category.FACE: 12,
    Category.RECORDS: 12,
    Category.DNA: 0,
    Category.FINGER: 0,
    Category.VEHICLE: 0,
}


def _default_exposure() -> dict[Purpose, list[SubjectCategory]]:
    # Offences: the people a criminal file is about (never victims, witnesses or missing
    # persons). A missing-person search looks for the person among the missing and among
    # unidentified remains; a body is compared with the missing (Reg. 2024/982 Art 2:
    # searches for missing persons and identification of human remains).
    return {
        Purpose.INVESTIGATION: [
            SubjectCategory.SUSPECT,
            SubjectCategory.CONVICTED,
            SubjectCategory.UNIDENTIFIED_SUSPECT,
        ],
        Purpose.MISSING_PERSON: [
            SubjectCategory.MISSING_PERSON,
            SubjectCategory.UNIDENTIFIED_REMAINS,
        ],
        Purpose.UNIDENTIFIED_REMAINS: [SubjectCategory.MISSING_PERSON],
    }


class ReleaseThreshold(BaseModel):
    """The weakest candidate this node lets leave (issue 28): candidates below it are
    withheld, and the reply says how many, not who."""

    model_config = ConfigDict(extra="forbid")

    # Candidates scoring below this are withheld (None: no score rule).
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    # Candidates whose calibrated false-match rate is above this are withheld; one whose
    # rate is unknown (an uncalibrated gallery) is withheld too (None: no rate rule).
    max_false_match_rate: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    # Scaled to the gallery: a candidate leaves only if its calibrated false-match rate
    # times the gallery's size is at most this, the number of strangers a search of this
    # gallery would be expected to send (bench/proportionality.py: a fixed per-comparison
    # rate sends far more strangers from a 30 M gallery than from a 13 k one).
    max_expected_strangers: Annotated[float, Field(gt=0.0)] | None = None
    # A probe whose overall quality (0-100) is below this is poor and is held to the
    # stricter rules below: fewer, stronger candidates, never a longer list.
    poor_probe_below: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
    poor_probe_min_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    poor_probe_max_false_match_rate: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    # National "investigative" setting: the top candidates leave whatever their strength
    # (still within the candidate cap). Off unless national law allows it; each search
    # answered this way is counted in the statistics (investigative_answers).
    investigative: bool = False


# Faces: a calibrated false-match rate, so that the rule means the same whatever model set
# the gallery was enrolled with (a dlib score and a fused score of the same strength differ).
# The rate is the one the candidate states (face/calibrated.py: the node's own impostors,
# or the shipped LFW reference times reference_fmr_factor = 3 until the node has enough).
# On the shared sample set (61 photos of 13 people, 140 genuine and 1,690 impostor pairs;
# two of the people are well-known look-alikes), the fused default at a stated 1e-4 kept
# every photo's nearest mate and let no impostor pair pass; at 1e-3 four pairs of the
# look-alikes passed. (For a dlib gallery 1e-4 is distance 0.45: 96.7 % of the nearest
# mates, no impostor.) A probe below the enrolment minimum of quality (30, ICAO capture
# guidance) must reach 1e-5. A candidate whose rate is unknown (an operator's ONNX model
# before `prum face calibrate`) is withheld. DNA, fingerprints, vehicles and records:
# their matchers decide what a hit is (no extra rule by default).
REGULATION_RELEASE: dict[Category, ReleaseThreshold] = {
    Category.FACE: ReleaseThreshold(
        max_false_match_rate=1e-4, poor_probe_below=30.0, poor_probe_max_false_match_rate=1e-5
    ),
}


class CategoryPolicy(BaseModel):
    """The rules this node applies to incoming searches of one category."""

    model_config = ConfigDict(extra="forbid")

    # Purposes national law allows (missing persons and remains only where it says so).
    purposes: list[Purpose] = Field(default_factory=lambda: [Purpose.INVESTIGATION])
    # Criminal-offence searches: the least maximum penalty (months) the offence must
    # carry. None: the Regulation's figure for the category (REGULATION_MIN_PENALTY_MONTHS),
    # written in when the node's configuration is loaded. Missing-person and remains
    # searches name no offence and are not held to it.
    min_penalty_months: Annotated[int, Field(ge=0)] | None = None
    # Candidates returned at most (DESIGN.md section 7: default 10, hard maximum 100).
    max_candidates: Annotated[int, Field(ge=1, le=100)] = 10
    # Searches accepted per requesting party per day (legacy model: TP/TP 100 a day).
    daily_capacity: Annotated[int, Field(ge=0)] = 1000
    # Data-subject categories national law opens to each purpose; a purpose not listed
    # sees nothing. A criminal-offence search sees missing persons or victims only if
    # they are added here.
    exposed_subjects_by_purpose: dict[Purpose, list[SubjectCategory]] = Field(
        default_factory=_default_exposure
    )
    # Older configurations: the categories open to criminal-offence searches (it
    # replaces the investigation entry above when given).
    exposed_subjects: list[SubjectCategory] | None = None
    # The weakest candidate that may leave (None: the category's default,
    # REGULATION_RELEASE, or no rule; written in when the configuration is loaded).
    release: ReleaseThreshold | None = None
    # Records of people younger than this are withheld (None: no age rule).
    min_age: Annotated[int, Field(ge=0, le=30)] | None = 18
    unknown_age_exposed: bool = True
    # Search types with their own capacity and candidate cap (empty: the category has
    # none; fingerprints: see LEGACY_FINGER_TYPES). A request must name one of them.
    search_types: dict[str, SearchTypePolicy] = Field(default_factory=dict)
    # DNA: profiles accepted per requesting party per day in bulk and continuous
    # comparisons (counted per profile, so a connecting country is paced, not refused).
    daily_bulk_profiles: Annotated[int, Field(ge=0)] = 2_000_000
    # The category's matcher is this external ABIS instead of the built-in one.
    abis: AbisEndpoint | None = None

    def subjects_for(self, purpose: Purpose) -> frozenset[SubjectCategory]:
        """The data-subject categories a search of this purpose is compared against."""
        if purpose is Purpose.INVESTIGATION and self.exposed_subjects is not None:
            return frozenset(self.exposed_subjects)
        return frozenset(self.exposed_subjects_by_purpose.get(purpose, []))

    def with_defaults(self, category: Category) -> CategoryPolicy:
        """This policy with the Regulation's figures where it names none."""
        return self.model_copy(
            update={
                "min_penalty_months": (
                    REGULATION_MIN_PENALTY_MONTHS.get(category, 12)
                    if self.min_penalty_months is None
                    else self.min_penalty_months
                ),
                "release": (
                    REGULATION_RELEASE.get(category, ReleaseThreshold())
                    if self.release is None
                    else self.release
                ),
            }
        )

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


class RetentionSettings(BaseModel):
    """How long this node keeps each class of data (prum.node.retention); None keeps it
    until deleted by hand. The defaults are a starting point a country sets by its law:
    the Regulation fixes only the logs (Art 40: kept three years, then deleted)."""

    model_config = ConfigDict(extra="forbid")

    # Own probes and the candidate lists received: long enough to verify and follow up.
    searches_days: Annotated[int, Field(ge=1)] | None = 180
    # Core data received after a release: they belong in the national case file.
    core_data_days: Annotated[int, Field(ge=1)] | None = 365
    verifications_days: Annotated[int, Field(ge=1)] | None = 730
    audit_log_days: Annotated[int, Field(ge=1)] | None = 3 * 365
    # How often the node looks for what is due.
    check_seconds: Annotated[float, Field(gt=0)] = 3600.0


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
    # HTTPS with this node's certificate (clients trust the federation CA, ca.pem) for the
    # systems' tokens; off only where the listener is bound to a protected host network.
    systems_tls: bool = False
    # Processes that decode and embed faces and fingerprints of incoming batches (one per
    # core: a 2-core node enrols about twice as fast with 2).
    systems_workers: Annotated[int, Field(ge=1, le=64)] = 2
    # How often records whose retention date has passed are looked for and erased.
    retention_check_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # What the node keeps of its searches, received data, decisions and logs.
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    categories: dict[Category, CategoryPolicy] = Field(
        default_factory=lambda: {Category.FACE: CategoryPolicy()}
    )
    # Art 47: core data within 48 hours of a reasoned request.
    core_data_deadline_hours: Annotated[int, Field(ge=1)] = 48
    # National option: four-eyes verification. A match is confirmed only when a second
    # examiner, who has not seen the first verdict, confirms it too; only then can core
    # data be requested (so no examiner can search, confirm and request alone).
    four_eyes: bool = False
    face: FaceSettings = Field(default_factory=FaceSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    # Seconds before an undelivered outbox message is retried (doubling, up to 60 s).
    outbox_retry_seconds: Annotated[float, Field(gt=0)] = 1.0
    comparison: ComparisonSettings = Field(default_factory=ComparisonSettings)
    # The federation's police-records key (shared by the parties that take part);
    # default: records.key in the PKI directory (``prum pki records-key`` makes one).
    records_key: Path | None = None

    @model_validator(mode="after")
    def _explicit_defaults(self) -> NodeConfig:
        # Every category's penalty threshold and release threshold are explicit once
        # loaded, so what applies can be read (and shown) from the configuration alone.
        for category, policy in list(self.categories.items()):
            self.categories[category] = policy.with_defaults(category)
            if policy.abis is not None and category not in ABIS_CATEGORIES:
                raise ValueError(
                    f"the {category.value} category cannot use an external ABIS (only"
                    f" {', '.join(sorted(c.value for c in ABIS_CATEGORIES))})"
                )
        return self

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
