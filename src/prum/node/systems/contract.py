"""The national-systems interface's JSON contract (v1): what a country's systems of
record send to their node and what they get back. The OpenAPI document of the
interface and docs/national-systems.md derive from these models.

A record is keyed by the national system's own identifier (``national_id``: a record
number, never a name) within its category. The node answers each record with an
outcome: ``created``, ``replaced`` (a new version of the reference data: new template,
new reference), ``updated`` (only node-side data changed: core data, retention,
origin), ``unchanged``, ``deleted`` or ``refused`` with the error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from prum.categories.interface import SubjectCategory
from prum.federation.messages import Category, CoreData, ErrorInfo

# Printable, no spaces and no slash (it names a record in a URL): what record numbers of
# AFIS, DNA and vehicle systems look like.
NationalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:#+-]{1,128}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
SystemName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{2,64}$")]


class SampleFormat(StrEnum):
    IMAGE = "image"  # a face photo or a single finger image (JPEG, PNG, ...), base64
    ANSI_NIST = "ansi-nist"  # an ANSI/NIST-ITL transaction, base64
    DNA_PROFILE = "dna-profile"  # a profile as JSON (as `prum dna import` reads it)
    CSV = "csv"  # a DNA profile as CSV text, base64
    VEHICLE_REGISTRATION = "vehicle-registration"  # JSON, Directive 1999/37/EC fields
    POLICE_RECORD = "police-record"  # JSON: names, date of birth ... (docs/records.md)


# Formats whose content is JSON (``content``); the others are bytes (``data``).
JSON_FORMATS = frozenset(
    {SampleFormat.DNA_PROFILE, SampleFormat.VEHICLE_REGISTRATION, SampleFormat.POLICE_RECORD}
)
# What each category takes.
CATEGORY_FORMATS: dict[Category, frozenset[SampleFormat]] = {
    Category.FACE: frozenset({SampleFormat.IMAGE, SampleFormat.ANSI_NIST}),
    Category.FINGER: frozenset({SampleFormat.ANSI_NIST, SampleFormat.IMAGE}),
    Category.DNA: frozenset({SampleFormat.DNA_PROFILE, SampleFormat.ANSI_NIST, SampleFormat.CSV}),
    Category.VEHICLE: frozenset({SampleFormat.VEHICLE_REGISTRATION}),
    Category.RECORDS: frozenset({SampleFormat.POLICE_RECORD}),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sample(_Model):
    """The reference data of a record, in one of the formats police systems hold."""

    format: SampleFormat
    data: Annotated[str, Field(description="base64 bytes (image, ansi-nist, csv)")] | None = None
    content: (
        Annotated[
            dict[str, Any],
            Field(description="JSON (dna-profile, vehicle-registration, police-record)"),
        ]
        | None
    ) = None
    # A single finger image: its position (ANSI/NIST-ITL finger codes 1-10).
    position: Annotated[int, Field(ge=1, le=10)] | None = None
    # Fingerprints: a tenprint card or an unsolved latent (default: from the transaction).
    collection: Literal["tenprint", "latent"] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Sample:
        if self.format in JSON_FORMATS:
            if self.content is None or self.data is not None:
                raise ValueError(f"a {self.format.value} sample is given as 'content' (JSON)")
        elif self.data is None or self.content is not None:
            raise ValueError(f"a {self.format.value} sample is given as 'data' (base64)")
        return self

    def raw(self) -> bytes:
        """The sample as the category reads it."""
        if self.content is not None:
            return json.dumps(self.content, ensure_ascii=False).encode()
        assert self.data is not None
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the sample's data is not base64") from None


class DeletionReason(StrEnum):
    """Why a national system deletes a record (recorded in the audit log)."""

    ERASURE = "erasure"  # the law requires it (e.g. a data subject's right, Art 16 LED)
    RECTIFICATION = "rectification"  # wrong data withdrawn (send the corrected record too)
    RETENTION_EXPIRED = "retention_expired"
    ACQUITTAL = "acquittal"
    COURT_ORDER = "court_order"
    DUPLICATE = "duplicate"
    UNLAWFUL = "unlawful_processing"


class RecordIn(_Model):
    """Create or replace one record (an upsert keyed by category and national_id)."""

    op: Literal["upsert"] = "upsert"
    category: Category
    national_id: NationalId
    sample: Sample
    subject_category: SubjectCategory | None = None
    provenance: Annotated[str, StringConstraints(max_length=200)] = ""
    origin_country: Country | None = None
    date_of_birth: dt.date | None = None
    retention_until: dt.date | None = None
    core_data: CoreData | None = None
    synthetic: bool = False
    # The national system's own key of the person (several photos of one person share
    # it): used inside the node only, so that the node's own impostor statistics never
    # pair a person with themself; it never leaves the node.
    person_key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:#+-]{1,128}$")] | None = (
        None
    )

    def content_hash(self) -> str:
        """SHA-256 of everything sent, in canonical JSON (docs/national-systems.md).

        Fields absent, null or equal to their default are left out, so that a system
        computes the same hash from what it sends without knowing the defaults (op,
        provenance, synthetic, the core data's empty lists ...).
        """
        return _digest(self.model_dump(mode="json", exclude_none=True, exclude_defaults=True))

    def record_hash(self) -> str:
        """SHA-256 of what the category stores: a new version when it changes."""
        fields = self.model_dump(
            mode="json",
            include={"category", "sample", "subject_category", "provenance"}
            | {"date_of_birth", "synthetic", "person_key"},
            exclude_none=True,
        )
        return _digest(fields)


class DeletionIn(_Model):
    """Delete one record (erasure, rectification ...)."""

    op: Literal["delete"] = "delete"
    category: Category
    national_id: NationalId
    reason: DeletionReason


BatchLine = Annotated[RecordIn | DeletionIn, Field(discriminator="op")]


class Outcome(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    REFUSED = "refused"


class RecordResult(_Model):
    """What became of one record of a request or a batch line."""

    line: int | None = None  # in a batch, the line number (1-based)
    category: Category | None = None
    national_id: str | None = None
    outcome: Outcome
    reference: str | None = None  # the node's reference of the record (after the change)
    error: ErrorInfo | None = None


class BatchResult(_Model):
    counts: dict[str, int]
    results: list[RecordResult]


class Change(_Model):
    seq: int
    category: Category
    national_id: str
    operation: Literal["created", "replaced", "updated", "deleted"]
    reference: str
    content_hash: str | None
    at: dt.datetime


class ChangesPage(_Model):
    changes: list[Change]
    last_seq: int  # pass as ``after`` for the next page


class ListedRecord(_Model):
    national_id: str
    reference: str
    content_hash: str
    updated_at: dt.datetime
    retention_until: dt.date | None = None


class ListingPage(_Model):
    category: Category
    records: list[ListedRecord]
    next_after: str | None  # pass as ``after`` for the next page; None at the end


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


CONTRACT_MODELS: tuple[type[BaseModel], ...] = (
    RecordIn,
    DeletionIn,
    RecordResult,
    BatchResult,
    ChangesPage,
    ListingPage,
)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every model of the interface, keyed by name (`prum schema --systems`)."""
    return {m.__name__: m.model_json_schema() for m in CONTRACT_MODELS}
