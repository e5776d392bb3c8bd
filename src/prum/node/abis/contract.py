"""The JSON contract between a node and an external matcher (a national ABIS), version 1.

One module of pydantic models: the node's adapter (prum.node.abis.adapter), our own
ABIS (``prum abis serve``, prum.node.abis.server) and ``prum schema --abis`` all derive
from it, and docs/abis.md describes it. After MOSIP's ABIS interface: ``insert``,
``identify``, ``delete`` and ``health``. The ABIS receives reference data only (the
node's opaque reference, the data-subject category and the sample in a standard
format), never core data: no name, no date of birth, no case.

Endpoints (all JSON, bearer token and/or mutual TLS)::

    POST /abis/v1/insert     InsertRequest   -> InsertResponse    idempotent per reference
    POST /abis/v1/delete     DeleteRequest   -> DeleteResponse    idempotent per reference
    POST /abis/v1/identify   IdentifyRequest -> IdentifyResponse
    GET  /abis/v1/health                     -> Health

Errors: HTTP 4xx/5xx with :class:`AbisError` as body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, StringConstraints

from prum.categories.interface import SubjectCategory
from prum.federation.messages import HitDetails, Probe

VERSION = "abis-v1"
PREFIX = "/abis/v1"
MAX_RECORDS = 500  # records per insert or delete request
MAX_EXCLUDED = 100_000  # references an identify request may withhold

Reference = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- reference data, one standard format per category ---------------------------------


class FaceTemplate(_Model):
    """A face template the node computed (ISO/IEC 19794-5 leaves templates to vendors:
    an ABIS running the same model may store it as is, any other uses the image)."""

    model_id: Annotated[str, StringConstraints(max_length=200)]
    # The vector as little-endian float32, base64.
    vector: Base64Bytes


class FaceSample(_Model):
    """A facial image (JPEG, PNG, JPEG 2000 ... as the national system sent it)."""

    kind: Literal["face"] = "face"
    image: Base64Bytes
    # The enrolled face (left, top, right, bottom) when the photo shows several.
    face_box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = None
    template: FaceTemplate | None = None
    quality: Annotated[float, Field(ge=0, le=100)] | None = None


class FingerSample(_Model):
    """One finger of a card: its position (ANSI/NIST-ITL finger codes) and its image,
    with the minutiae the node extracted (``template_format`` names the encoding)."""

    position: Annotated[int, Field(ge=0, le=40)]
    image: Base64Bytes | None = None
    template: Base64Bytes | None = None
    template_format: Annotated[str, StringConstraints(max_length=40)] = "prum-minutiae-1"


class FingerCard(_Model):
    """A tenprint card or a latent: the fingers with usable minutiae."""

    kind: Literal["finger"] = "finger"
    collection: Literal["tenprint", "latent"]
    fingers: Annotated[list[FingerSample], Field(min_length=1, max_length=40)]


class DnaSample(_Model):
    """A DNA profile: the loci and alleles in the node's JSON profile format
    (docs/dna.md), which the ANSI/NIST-ITL Type-18 record carries too."""

    kind: Literal["dna"] = "dna"
    profile: dict[str, Any]


Sample = Annotated[FaceSample | FingerCard | DnaSample, Field(discriminator="kind")]


# --- insert and delete --------------------------------------------------------------


class InsertRecord(_Model):
    reference: Reference
    subject: SubjectCategory
    sample: Sample


class InsertRequest(_Model):
    """Records to hold, in order. Inserting a reference the ABIS holds changes nothing
    (``exists``): the node's outbox may send a record twice after a crash."""

    records: Annotated[list[InsertRecord], Field(min_length=1, max_length=MAX_RECORDS)]


class RecordOutcome(_Model):
    reference: Reference
    # inserted | exists | deleted | absent | refused (with the reason in ``message``)
    outcome: Literal["inserted", "exists", "deleted", "absent", "refused"]
    message: Annotated[str, StringConstraints(max_length=500)] | None = None


class InsertResponse(_Model):
    results: list[RecordOutcome]


class DeleteRequest(_Model):
    """References to forget, with why (retention, erasure, rectification). Deleting a
    reference the ABIS does not hold is ``absent``, not an error."""

    references: Annotated[list[Reference], Field(min_length=1, max_length=MAX_RECORDS)]
    reason: Annotated[str, StringConstraints(max_length=200)]


class DeleteResponse(_Model):
    results: list[RecordOutcome]


# --- identify -----------------------------------------------------------------------


class IdentifyRequest(_Model):
    """A 1:N search. The exposure filter is what national law lets this search see:
    ``subjects`` (data-subject categories; None: all) and ``exclude`` (references the
    node withholds, for example records of minors: the ABIS knows no dates of birth)."""

    probe: Probe
    search_type: Annotated[str, StringConstraints(max_length=16)] | None = None
    max_candidates: Annotated[int, Field(ge=1, le=100)]
    # Target false-positive identification rate: a candidate whose calibrated
    # false-match rate times the gallery size exceeds it is left out (None: no rule).
    target_fpir: Annotated[float, Field(gt=0, le=1)] | None = None
    subjects: list[SubjectCategory] | None = None
    exclude: Annotated[list[Reference], Field(max_length=MAX_EXCLUDED)] = Field(
        default_factory=list
    )


class AbisCandidate(_Model):
    """One candidate, best first. Only ``reference`` and ``score`` are required; the
    node fills in what it keeps itself (provenance)."""

    reference: Reference
    score: Annotated[float, Field(ge=0, le=1)]
    distance: Annotated[float, Field(ge=0)] | None = None
    false_match_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    false_match_words: Annotated[str, StringConstraints(max_length=600)] = ""
    quality: Annotated[float, Field(ge=0, le=100)] | None = None
    # The enrolled sample, for the examiner's side-by-side comparison.
    image: Base64Bytes | None = None
    details: HitDetails | None = None


class IdentifyResponse(_Model):
    candidates: Annotated[list[AbisCandidate], Field(max_length=100)]
    gallery_size: Annotated[int, Field(ge=0)]
    # The probe's overall quality (0-100) where the matcher measures one (faces).
    probe_quality: Annotated[float, Field(ge=0, le=100)] | None = None


# --- health and errors --------------------------------------------------------------


class Health(_Model):
    version: Literal["abis-v1"] = "abis-v1"
    category: Literal["face", "finger", "dna"]
    records: Annotated[int, Field(ge=0)]
    # What the ABIS says of its matcher (model, index kind ...).
    matcher: dict[str, Any] = Field(default_factory=dict)


class AbisError(_Model):
    """The body of every error answer: a stable code and a message a person can act on."""

    code: Annotated[str, StringConstraints(max_length=64)]
    message: Annotated[str, StringConstraints(max_length=2000)]
    details: dict[str, Any] = Field(default_factory=dict)


CONTRACT_MODELS: tuple[type[BaseModel], ...] = (
    InsertRequest,
    InsertResponse,
    DeleteRequest,
    DeleteResponse,
    IdentifyRequest,
    IdentifyResponse,
    Health,
    AbisError,
)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every model of the contract, keyed by name (`prum schema --abis`)."""
    return {m.__name__: m.model_json_schema() for m in CONTRACT_MODELS}
