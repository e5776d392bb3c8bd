"""Wire schemas, version 1: the one place that defines what crosses a border.

Both the router and the nodes import these models; the OpenAPI documents and JSON
Schemas are generated from them (``prum schema``). A field added here appears in
validation, documentation and clients at once. Step-1 messages carry reference data
only (a sample and an opaque reference number), never a name; core data travels in
:class:`CoreDataReply` after a human release.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION: Literal["1"] = "1"

# The largest probe accepted on the wire (a 40 MP JPEG is far smaller than this).
MAX_PROBE_BYTES = 30 * 1024 * 1024

Party = Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}|EUROPOL)$")]
"""An EU member state (ISO 3166 alpha-2) or Europol."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Pseudonym = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
]  # a national user id that identifies the user in the national log only


def _offence_code(value: str) -> str:
    from prum.federation.offences import OFFENCES

    if value not in OFFENCES:
        raise ValueError(f"unknown ECRIS offence category {value!r}")
    return value


OffenceCode = Annotated[str, AfterValidator(_offence_code)]


class Category(StrEnum):
    FACE = "face"
    DNA = "dna"
    FINGER = "finger"
    VEHICLE = "vehicle"
    RECORDS = "records"


class Purpose(StrEnum):
    """Why the search is made (Reg. 2024/982: offences; missing persons; remains)."""

    INVESTIGATION = "investigation"  # prevention, detection, investigation of offences
    MISSING_PERSON = "missing_person"
    UNIDENTIFIED_REMAINS = "unidentified_remains"


class ReplyStatus(StrEnum):
    """What became of the request at one requested party (never silently dropped)."""

    ANSWERED = "answered"  # candidates or hits returned
    NO_HIT = "no_hit"
    TIMEOUT = "timeout"  # no answer before the deadline
    UNAVAILABLE = "unavailable"  # could not be reached
    REFUSED = "refused"  # policy refusal (capacity, purpose, category ...)
    ERROR = "error"  # answered with an error or with something unreadable


class Decision(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"


class RefusalReason(StrEnum):
    """Why a holder refuses to release core data."""

    DISPROPORTIONATE = "disproportionate"
    NATIONAL_LAW_BAR = "national_law_bar"
    # Kept so that replies of older holders still read; a pending authorisation is a
    # hold (CoreDataHold), not a refusal, and a holder of this version never sends it.
    JUDICIAL_AUTHORISATION_PENDING = "judicial_authorisation_pending"
    JUDICIAL_AUTHORISATION_REFUSED = "judicial_authorisation_refused"
    FUNDAMENTAL_RIGHTS = "fundamental_rights"


class HoldReason(StrEnum):
    """Why a holder holds a core-data request back (the 48-hour clock is paused)."""

    JUDICIAL_AUTHORISATION = "judicial_authorisation"  # national law needs a judge (Art 47)
    OWNER_CONSULTED = "owner_consulted"  # the authority that owns the record is asked


class CancelReason(StrEnum):
    """Why a requester withdraws its own core-data request."""

    VERDICT_REVISED = "verdict_revised"  # examiners no longer confirm the match


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_Message):
    """An error as it travels: the stable code of prum.errors and a readable message."""

    code: Annotated[str, StringConstraints(max_length=64)]
    message: Annotated[str, StringConstraints(max_length=2000)]
    details: dict[str, Any] = Field(default_factory=dict)


class VehicleQuery(_Message):
    """A vehicle registration query (EUCARIS): by plate, by VIN or by holder identity.

    Exactly one way: ``plate`` (sent to one country), ``vin`` (to one or all), or the
    holder's ``holder_surname`` with ``holder_first_names`` / ``holder_date_of_birth``.
    """

    plate: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    vin: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    holder_surname: ShortText | None = None
    holder_first_names: ShortText | None = None
    holder_date_of_birth: dt.date | None = None
    # The date the vehicle data are wanted for (for example the day of an offence).
    at: dt.date | None = None

    @model_validator(mode="after")
    def _one_way(self) -> VehicleQuery:
        ways = [self.plate is not None, self.vin is not None, self.holder_surname is not None]
        if sum(ways) != 1:
            raise ValueError("a vehicle query gives exactly one of plate, vin, holder_surname")
        if self.holder_surname is None and (
            self.holder_first_names is not None or self.holder_date_of_birth is not None
        ):
            raise ValueError("holder first names and date of birth go with holder_surname")
        return self


Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,128}$")]


class RecordsQuery(_Message):
    """A pseudonymised police-records query (EPRIS, ADEP technique): no clear text.

    Made by the requesting node with the federation's records key
    (prum.categories.records.encode.make_query): every field is a keyed hash (64 bits, hex) of a
    normalised token, or a Bloom filter of name bigrams compared by the Dice
    coefficient at the holder. Month and day are keyed in one domain, so a holder can
    tell a day/month swap from a mismatch; the neighbouring years let an off-by-one
    year count a little.
    """

    key_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,40}$")]
    blocking_keys: Annotated[list[Hex], Field(min_length=1, max_length=64)]
    name_filter: Annotated[Base64Bytes, Field(min_length=8, max_length=1024)]
    birth_year: Hex | None = None
    birth_year_near: Annotated[list[Hex], Field(max_length=2)] = Field(default_factory=list)
    birth_month: Hex | None = None
    birth_day: Hex | None = None
    gender: Hex | None = None
    nationalities: Annotated[list[Hex], Field(max_length=4)] = Field(default_factory=list)
    country_of_birth: Hex | None = None
    place_of_birth: Hex | None = None


ProbeFormat = Literal["image", "ansi_nist", "dna_profile", "vehicle_query", "records_query"]


class Probe(_Message):
    """The sample searched with: an image (faces), an ANSI/NIST-ITL transaction
    (fingerprints), a DNA profile (JSON), or a structured query (vehicles, records)."""

    format: ProbeFormat = "image"
    data: Annotated[Base64Bytes, Field(max_length=MAX_PROBE_BYTES)] = b""
    # The chosen face (left, top, right, bottom) when the image shows several.
    face_box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = None
    vehicle: VehicleQuery | None = None
    records: RecordsQuery | None = None

    @model_validator(mode="after")
    def _fits_format(self) -> Probe:
        if self.format == "vehicle_query":
            ok = self.vehicle is not None and self.records is None and not self.data
        elif self.format == "records_query":
            ok = self.records is not None and self.vehicle is None and not self.data
        else:
            ok = bool(self.data) and self.vehicle is None and self.records is None
        if not ok:
            raise ValueError(
                f"a probe of format {self.format!r} carries "
                + {"vehicle_query": "'vehicle'", "records_query": "'records'"}.get(
                    self.format, "'data' (the sample)"
                )
                + " and nothing else"
            )
        return self


def new_message_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


MessageId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


class _Signed(_Message):
    """A message that travels in a signed envelope: it names itself and its time,
    which the receiver's replay guard checks."""

    version: Literal["1"] = SCHEMA_VERSION
    message_id: MessageId = Field(default_factory=new_message_id)
    issued_at: dt.datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _aware_time(self) -> _Signed:
        if self.issued_at.tzinfo is None:
            raise ValueError("issued_at must carry a time zone (UTC)")
        return self


class SearchMode(StrEnum):
    """One-off search, or one of the DNA comparisons of Art 7 (batched)."""

    SEARCH = "search"
    INITIAL_BULK = "initial_bulk"  # a country connects: all its profiles against others'
    CONTINUOUS = "continuous"  # every new profile, as it is enrolled


class BatchProbe(_Message):
    """One profile of a batched comparison, named by the requester's own reference."""

    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    probe: Probe


MAX_BATCH = 1000


class SearchHeader(_Signed):
    """What the router reads of a SearchRequest: every field but the probes, which it
    forwards as they came without decoding them (they are payload, not its business).
    """

    model_config = ConfigDict(extra="ignore")

    kind: Literal["search_request"] = "search_request"
    request_number: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    requesting_party: Party
    requesting_user: Pseudonym
    category: Category
    purpose: Purpose
    # Criminal-offence searches: mandatory for a one-off search (a bulk or continuous
    # comparison compares whole databases and names no single offence), with the
    # offence's maximum penalty. Missing-person and human-remains searches need neither.
    offence: OffenceCode | None = None
    max_penalty_months: Annotated[int, Field(ge=0, le=1200)] | None = None
    case_reference: ShortText
    targets: Literal["all"] | Annotated[list[Party], Field(min_length=1, max_length=40)] = "all"
    mode: SearchMode = SearchMode.SEARCH
    # Fingerprints: TP/TP, TP/UL, LT/TP, LT/UL (each with its own daily capacity).
    search_type: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}/[A-Z]{2}$")] | None = None
    max_candidates: Annotated[int, Field(ge=1, le=100)] = 10
    deadline_ms: Annotated[int, Field(ge=100, le=900_000)] = 10_000

    @model_validator(mode="after")
    def _offence_when_criminal(self) -> SearchHeader:
        if self.purpose is Purpose.INVESTIGATION:
            if self.max_penalty_months is None:
                raise ValueError("a criminal-offence search gives the offence's max_penalty_months")
            if self.mode is SearchMode.SEARCH and self.offence is None:
                raise ValueError("a search names its offence category (ECRIS)")
        return self


class SearchRequest(SearchHeader):
    """Step 1: a search, sent by the requesting node through the router.

    A one-off search carries one ``probe``; a bulk or continuous comparison carries a
    ``batch`` of probes, and each hit names the probe it belongs to.
    """

    model_config = ConfigDict(extra="forbid")

    probe: Probe | None = None
    batch: Annotated[list[BatchProbe], Field(min_length=1, max_length=MAX_BATCH)] | None = None

    @model_validator(mode="after")
    def _probe_or_batch(self) -> SearchRequest:
        if self.mode is SearchMode.SEARCH:
            if self.probe is None or self.batch is not None:
                raise ValueError("a one-off search carries a probe and no batch")
            plate = self.probe.vehicle is not None and self.probe.vehicle.plate is not None
            if plate and (self.targets == "all" or len(self.targets) != 1):
                raise ValueError("a plate query goes to one country: the plate's")
        elif self.batch is None or self.probe is not None:
            raise ValueError(f"a {self.mode.value} comparison carries a batch and no probe")
        return self


class DnaHit(_Message):
    """What an Art 9 DNA answer carries about one hit, and the examiner's figures."""

    kind: Literal["dna"] = "dna"
    match: Literal["match", "near_match"]
    identified: bool  # a person's profile, or an unidentified trace
    matching_loci: list[str]
    compared_loci: list[str]
    # Loci where one allele differs (a near match has exactly one).
    mismatched_loci: list[str] = Field(default_factory=list)
    random_match_probability: Annotated[float, Field(ge=0.0, le=1.0)]
    # The matching profile: locus -> alleles as designated ("*" a wildcard).
    profile: dict[str, list[str]]


class FingerHit(_Message):
    """A fingerprint hit: which search type and finger, for verification."""

    kind: Literal["finger"] = "finger"
    search_type: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}/[A-Z]{2}$")]
    finger_position: Annotated[int, Field(ge=0, le=40)] | None = None
    matched_minutiae: Annotated[int, Field(ge=0)] | None = None
    # TP/TP of a card: fingers of the probe compared with this record, and of those
    # the ones that scored (the candidate's score is their fused mean).
    fingers_compared: Annotated[int, Field(ge=0, le=40)] | None = None
    fingers_scored: Annotated[int, Field(ge=0, le=40)] | None = None
    # The minutia pairs the score rests on, for the examiner's chart: probe x, probe y,
    # candidate x, candidate y, each a fraction of its image's width or height. Sent
    # when the probe is one finger (a card's fingers each pair differently).
    minutiae_pairs: (
        Annotated[
            list[
                Annotated[
                    list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=4, max_length=4)
                ]
            ],
            Field(max_length=100),
        ]
        | None
    ) = None


class VehicleData(_Message):
    """Registration data returned at once (EUCARIS), with Directive 1999/37/EC codes."""

    kind: Literal["vehicle"] = "vehicle"
    registration_country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    plate: str  # A
    vin: str  # E
    make: str | None = None  # D.1
    model: str | None = None  # D.3
    vehicle_category: str | None = None  # J
    first_registration: dt.date | None = None  # B
    holder_surname: str | None = None  # C.1.1
    holder_first_names: str | None = None  # C.1.2
    holder_address: str | None = None  # C.1.3
    holder_since: dt.date | None = None
    holder_until: dt.date | None = None
    owner_name: str | None = None  # C.2.1 (where the owner is not the holder)
    owner_address: str | None = None  # C.2.3
    signals: list[Literal["stolen", "exported", "destroyed"]] = Field(default_factory=list)
    insurer: str | None = None
    insurance_valid_until: dt.date | None = None


RecordsField = Literal[
    "names",
    "names_similar",
    "alias",
    "year_of_birth",
    "year_of_birth_near",
    "day_and_month",
    "day_and_month_swapped",
    "month_of_birth",
    "gender",
    "nationality",
    "country_of_birth",
    "place_of_birth",
]
"""What a police-records hit agreed on: field names from a closed list, never values."""


class RecordsHit(_Message):
    """A police-records match: its quality and which fields agreed, never a name."""

    kind: Literal["records"] = "records"
    quality: Annotated[float, Field(ge=0.0, le=1.0)]
    quality_words: Annotated[str, StringConstraints(max_length=200)]
    matched_on: Annotated[list[RecordsField], Field(max_length=12)] = Field(default_factory=list)


HitDetails = Annotated[DnaHit | FingerHit | VehicleData | RecordsHit, Field(discriminator="kind")]


class Candidate(_Message):
    """One entry of a candidate list: reference data for human verification."""

    rank: Annotated[int, Field(ge=1, le=100)]
    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    distance: Annotated[float, Field(ge=0.0)]
    # None while the holder's gallery is too small to calibrate (the words say so).
    false_match_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None
    # The strength statement with its basis (which impostor distribution, how many
    # comparisons, whether it was checked on the holder's own photos): never cut.
    false_match_words: Annotated[str, StringConstraints(max_length=600)]
    provenance: Annotated[str, StringConstraints(max_length=200)]
    synthetic: bool = False
    quality: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
    # The enrolled image, so the examiner can compare side by side.
    image: Base64Bytes | None = None
    # What the category adds (DNA profile, vehicle data, ...); None for faces.
    details: HitDetails | None = None
    # In a batched comparison: the requester's reference of the probe this hit is for.
    probe_reference: Annotated[str, StringConstraints(max_length=40)] | None = None
    # Where the holder's data came from when it is not the holder's own (Europol's
    # third-country data, Art 48): the country of origin (ISO 3166 alpha-2).
    origin_country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class ReplyHeader(_Signed):
    """What the router reads of a CountryReply: every field but the candidates, which
    it only counts and passes on as the node signed them."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["country_reply"] = "country_reply"
    in_reply_to: MessageId
    party: Party
    status: ReplyStatus
    answer_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    answered_at: dt.datetime | None = None
    duration_ms: Annotated[float, Field(ge=0)] | None = None
    gallery_size: Annotated[int, Field(ge=0)] | None = None
    error: ErrorInfo | None = None


class CountryReply(ReplyHeader):
    """The answer of one requested party, or what the router observed instead."""

    model_config = ConfigDict(extra="forbid")

    # Candidates the holder found but did not send: weaker than its release threshold
    # (how many, never who). Absent from older nodes' replies.
    withheld: Annotated[int, Field(ge=0)] | None = None

    # Up to 100 per probe: a batched comparison answers for each of its probes.
    candidates: Annotated[list[Candidate], Field(max_length=10 * MAX_BATCH)] = Field(
        default_factory=list
    )


class SearchReply(_Signed):
    """What the router returns to the requester: one entry per requested party."""

    kind: Literal["search_reply"] = "search_reply"
    in_reply_to: str
    request_number: str
    replies: list[CountryReply]


class Verification(_Message):
    """An examiner's outcome for one candidate (kept at the requesting node)."""

    search_message_id: str
    party: Party
    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    decision: Decision
    justification: Annotated[
        str, StringConstraints(min_length=10, max_length=4000, strip_whitespace=True)
    ]


class CoreData(_Message):
    """Core data of Art 47, released by a human of the holding party."""

    surnames: list[ShortText] = Field(default_factory=list)
    first_names: list[ShortText] = Field(default_factory=list)
    aliases: list[ShortText] = Field(default_factory=list)
    date_of_birth: dt.date | None = None
    place_of_birth: ShortText | None = None
    nationalities: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,3}$")]] = Field(
        default_factory=list
    )
    gender: Literal["F", "M", "X", "U"] | None = None
    biometric_taken_at: dt.date | None = None
    biometric_taken_place: ShortText | None = None
    offence: ShortText | None = None
    case_number: ShortText | None = None
    responsible_authority: ShortText | None = None


class CoreDataRequest(_Signed):
    """Step 2: a reasoned request for core data after a confirmed match."""

    kind: Literal["core_data_request"] = "core_data_request"
    requesting_party: Party
    holder_party: Party
    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    category: Category
    search_message_id: MessageId
    requesting_user: Pseudonym
    verified_by: Pseudonym
    facts: Annotated[str, StringConstraints(min_length=20, max_length=8000, strip_whitespace=True)]
    # The search's purpose. Sent only when it is not "investigation", so that requests
    # of criminal-offence searches read as before at holders of an older version.
    purpose: Purpose = Purpose.INVESTIGATION
    # Criminal-offence searches only (a missing person or human remains name none).
    offence: OffenceCode | None = None
    max_penalty_months: Annotated[int, Field(ge=0, le=1200)] | None = None
    case_reference: ShortText

    @model_validator(mode="after")
    def _offence_when_criminal(self) -> CoreDataRequest:
        if self.purpose is Purpose.INVESTIGATION and (
            self.offence is None or self.max_penalty_months is None
        ):
            raise ValueError(
                "a core-data request of a criminal-offence search names the offence and"
                " its max_penalty_months"
            )
        return self

    def wire(self) -> dict[str, Any]:
        """The body as signed: without ``purpose`` for a criminal-offence search."""
        criminal = self.purpose is Purpose.INVESTIGATION
        return self.model_dump(mode="json", exclude={"purpose"} if criminal else None)


class CoreDataReply(_Signed):
    """The holder's human decision on a core-data request, with the data if released."""

    kind: Literal["core_data_reply"] = "core_data_reply"
    in_reply_to: str
    requesting_party: Party
    holder_party: Party
    reference: str
    decision: Literal["released", "refused"]
    reason: RefusalReason | None = None
    core_data: CoreData | None = None
    # The approver's words with a refusal (mandatory for a refusal from this version;
    # omitted on the wire when absent, so older requesters read the reply as before).
    explanation: (
        Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
        | None
    ) = None

    def wire(self) -> dict[str, Any]:
        """The body as signed: without ``explanation`` when there is none."""
        return self.model_dump(
            mode="json", exclude={"explanation"} if not self.explanation else None
        )

    @model_validator(mode="after")
    def _consistent(self) -> CoreDataReply:
        if self.decision == "released" and (self.core_data is None or self.reason is not None):
            raise ValueError("a release carries core data and no refusal reason")
        if self.decision == "refused" and (self.reason is None or self.core_data is not None):
            raise ValueError("a refusal carries a reason and no core data")
        return self


class WithdrawalReason(StrEnum):
    """Why a holder withdrew a record it had sent as a candidate (the national system's
    deletion reason, prum.node.systems.contract.DeletionReason)."""

    ERASURE = "erasure"
    RECTIFICATION = "rectification"  # the record was corrected: a new version replaced it
    RETENTION_EXPIRED = "retention_expired"
    ACQUITTAL = "acquittal"
    COURT_ORDER = "court_order"
    DUPLICATE = "duplicate"
    UNLAWFUL = "unlawful_processing"


# References per notice: the audit entry of a notice names each one, and an entry names
# at most 100 (prum.audit.events.AuditEvent.reference).
MAX_WITHDRAWN = 100


class Withdrawal(_Message):
    """One reference a holder no longer holds, and why (no personal data)."""

    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    category: Category
    reason: WithdrawalReason


class RecordWithdrawn(_Signed):
    """Step 2, from the holder: records it had sent to the requesting party as candidates
    (with their images, and perhaps released core data) were erased or rectified; the
    receiver removes what it holds of them and keeps only the fact and the reason."""

    kind: Literal["record_withdrawn"] = "record_withdrawn"
    holder_party: Party
    requesting_party: Party  # the party that received the references
    withdrawn: Annotated[list[Withdrawal], Field(min_length=1, max_length=MAX_WITHDRAWN)]
    withdrawn_at: dt.datetime


class CoreDataHold(_Signed):
    """Step 2, from the holder: a core-data request is held back (``on_hold``) or taken
    up again; the requester sees the hold and its reason, and that the deadline waits."""

    kind: Literal["core_data_hold"] = "core_data_hold"
    in_reply_to: MessageId  # the CoreDataRequest
    requesting_party: Party
    holder_party: Party
    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    on_hold: bool
    reason: HoldReason | None = None
    note: (
        Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
        | None
    ) = None
    at: dt.datetime

    @model_validator(mode="after")
    def _reason_with_hold(self) -> CoreDataHold:
        if self.on_hold and self.reason is None:
            raise ValueError("a hold names its reason")
        return self


class CoreDataCancelled(_Signed):
    """Step 2, from the requester: it withdraws its core-data request (its examiners no
    longer confirm the match). A pending request leaves the holder's queue; core data
    already released were erased at the requester (``erased``)."""

    kind: Literal["core_data_cancelled"] = "core_data_cancelled"
    in_reply_to: MessageId  # the CoreDataRequest
    requesting_party: Party
    holder_party: Party
    reference: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    reason: CancelReason
    erased: bool
    at: dt.datetime


WIRE_MODELS: tuple[type[BaseModel], ...] = (
    SearchRequest,
    SearchReply,
    Probe,
    CountryReply,
    Candidate,
    Verification,
    CoreDataRequest,
    CoreDataReply,
    RecordWithdrawn,
    CoreDataHold,
    CoreDataCancelled,
    ErrorInfo,
)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every wire model, keyed by name (for `prum schema`)."""
    return {m.__name__: m.model_json_schema() for m in WIRE_MODELS}
