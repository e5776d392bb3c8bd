"""The one error tree of Prüm.

Every error that crosses a module boundary is a :class:`PrumError`. Each class has a
stable machine ``code`` (used on the wire and in logs) and a message a human can act
on. Lower-level library errors (Pillow, dlib, SQLAlchemy, FAISS) are mapped into this
tree where they are caught; nobody raises a bare ``ValueError`` across a boundary.
"""

from __future__ import annotations

from typing import Any


class PrumError(Exception):
    """Base of every error the system reports."""

    code = "prum_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


# --- bad input: the caller sent something that cannot be used ---------------------


class BadInput(PrumError):
    """The input cannot be used as it is; nothing was changed."""

    code = "bad_input"


class UnreadableImage(BadInput):
    """The bytes are not a decodable image (empty, truncated, unknown format)."""

    code = "unreadable_image"


class ImageTooLarge(BadInput):
    """The image has more pixels than configured, or is a decompression bomb."""

    code = "image_too_large"


class ImageTooSmall(BadInput):
    """The image is too small to hold a usable face."""

    code = "image_too_small"


class NoFaceFound(BadInput):
    """No face was detected in the image."""

    code = "no_face_found"


class SeveralFaces(BadInput):
    """Several faces were found and no box was chosen; the caller must pick one."""

    code = "several_faces"


class BadFaceBox(BadInput):
    """The chosen box does not match any detected face."""

    code = "bad_face_box"


class QualityTooLow(BadInput):
    """A quality component is below the configured minimum."""

    code = "quality_too_low"


class ModelMismatch(BadInput):
    """A template was made by another embedding model than the gallery's."""

    code = "model_mismatch"


class InvalidRecord(BadInput):
    """A record field is missing or invalid (category, date of birth, manifest row)."""

    code = "invalid_record"


class UnknownReference(BadInput):
    """No record has this reference number."""

    code = "unknown_reference"


class InvalidModel(BadInput):
    """An operator-supplied model cannot be loaded or has the wrong shape."""

    code = "invalid_model"


class NotEnoughPeople(BadInput):
    """The gallery holds records of fewer than two people: scores cannot be calibrated."""

    code = "not_enough_people"


class InvalidLabelledSet(BadInput):
    """A labelled evaluation set is malformed or too small to evaluate."""

    code = "invalid_labelled_set"


# --- refused by policy ------------------------------------------------------------


class PolicyRefused(PrumError):
    """The request is well formed but national or EU rules refuse it."""

    code = "policy_refused"


class CategoryNotOffered(PolicyRefused):
    """This party does not take part in the data category (or not for this search type)."""

    code = "category_not_offered"


class SearchTypeNotOffered(PolicyRefused):
    """The request names no search type, or one this party does not offer (TP/TP ...)."""

    code = "search_type_not_offered"


class BatchNotSupported(PolicyRefused):
    """This party's matcher of the category answers one-off searches only."""

    code = "batch_not_supported"


class PurposeNotAllowed(PolicyRefused):
    """National law does not allow searches of this category for this purpose."""

    code = "purpose_not_allowed"


class PenaltyBelowThreshold(PolicyRefused):
    """Faces and police records only for offences punishable by at least one year."""

    code = "penalty_below_threshold"


class CapacityExhausted(PolicyRefused):
    """The requested party's daily capacity for this search type is used up."""

    code = "capacity_exhausted"


class NotVerified(PolicyRefused):
    """Core data needs a candidate that a qualified examiner confirmed."""

    code = "not_verified"


class SeparationOfDuties(PolicyRefused):
    """The same person may not verify a match and release its core data."""

    code = "separation_of_duties"


class RoleRequired(PolicyRefused):
    """The user lacks the role this action needs."""

    code = "role_required"


class WrongState(PolicyRefused):
    """The action does not fit the current state (already decided, not on hold...)."""

    code = "wrong_state"


# --- the system cannot serve now ------------------------------------------------------


class Unavailable(PrumError):
    """A component needed for the request is not available."""

    code = "unavailable"


class SampleDataUnavailable(Unavailable):
    """No real sample data (faces, prints) is on disk and it could not be fetched."""

    code = "sample_data_unavailable"


class StorageError(Unavailable):
    """The system of record or the vector index failed."""

    code = "storage_error"


class MatcherUnavailable(Unavailable):
    """A category's external matcher (a national ABIS over HTTP) failed or is switched
    off by its circuit breaker; the search is answered with status ``error``."""

    code = "matcher_unavailable"


class MatcherTimeout(MatcherUnavailable):
    """A category's external matcher did not answer a search within its deadline; the
    search is answered with status ``error`` and this code."""

    code = "matcher_timeout"


# --- audit log ------------------------------------------------------------------------


class InvalidAuditEvent(BadInput):
    """An audit event has an unknown field, a wrong value or an oversize string."""

    code = "invalid_audit_event"


class InvalidAuditSetup(BadInput):
    """The audit log was opened with an inconsistent party, signer or option."""

    code = "invalid_audit_setup"


class AuditTampered(PrumError):
    """The audit log's hash chain or signed checkpoints do not verify: it was changed."""

    code = "audit_tampered"


# --- security: a counterpart presented something that cannot be trusted -------------


class SecurityError(PrumError):
    """A certificate, signature or message failed a security check; nothing was done."""

    code = "security_error"


class BadCertificate(SecurityError):
    """The certificate is unreadable, not issued by the federation CA, or not the signer's."""

    code = "bad_certificate"


class BadSignature(SecurityError):
    """The signature is missing, malformed or does not match the signed content."""

    code = "bad_signature"


class Replay(SecurityError):
    """The message id was already seen, or the message was issued outside the time window."""

    code = "replay"


class Expired(SecurityError):
    """The certificate is outside its validity period (expired or not yet valid)."""

    code = "certificate_expired"


class Revoked(SecurityError):
    """The certificate is on the federation's revocation list."""

    code = "certificate_revoked"


class NoCredentials(SecurityError):
    """The caller sent no credential, or one that opens nothing (an unknown or revoked
    system token); HTTP 401."""

    code = "no_credentials"


class NotAuthorised(SecurityError):
    """The caller is authentic but is not the party allowed to do this."""

    code = "not_authorised"


class InvalidPartyCode(BadInput):
    """Not a party code: two upper-case letters (ISO 3166), EUROPOL or ROUTER."""

    code = "invalid_party_code"


class InvalidCalibration(BadInput):
    """Stored calibration data is corrupt or of an unknown version."""

    code = "invalid_calibration"


# --- the router -----------------------------------------------------------------------


class MalformedRequest(BadInput):
    """The request body is not JSON, or not a JSON object of the expected shape."""

    code = "malformed_request"


class InvalidMessage(BadInput):
    """A signed body is not the message this endpoint takes (wrong kind, fails the schema)."""

    code = "invalid_message"


class InvalidDirectory(BadInput):
    """The federation directory file is missing, not JSON, or inconsistent."""

    code = "invalid_directory"


class UnknownParty(BadInput):
    """A target or destination is not a party of the federation directory."""

    code = "unknown_party"


class InvalidTargets(BadInput):
    """The targets of a search cannot be used as given (e.g. the requester itself)."""

    code = "invalid_targets"


class OutOfScope(PolicyRefused):
    """The requester may not search this category for this purpose (its directory scope)."""

    code = "out_of_scope"


class DeliveryRejected(PolicyRefused):
    """The destination refused a forwarded message for good: resending will not help."""

    code = "delivery_rejected"


class DestinationUnavailable(Unavailable):
    """The destination of a message could not take it now; the sender retries later."""

    code = "destination_unavailable"


class AuditUnavailable(Unavailable):
    """The audit log cannot record now (failing or behind); nothing unlogged is done."""

    code = "audit_unavailable"


class RouterBusy(Unavailable):
    """The router is answering as many searches as it is set to; try again shortly."""

    code = "router_busy"


class NoAnswer(Unavailable):
    """A requested party did not answer a search before its deadline."""

    code = "no_answer"


class Unreachable(Unavailable):
    """A requested party could not be reached (connection refused or reset, no route)."""

    code = "unreachable"


class InvalidReply(PrumError):
    """A requested party's answer cannot be used: HTTP error, not JSON, too large, invalid."""

    code = "invalid_reply"


# --- DNA ------------------------------------------------------------------------------


class InvalidDnaProfile(BadInput):
    """A DNA profile is unreadable or fails the 2008/616 Annex rules (the locus is named)."""

    code = "invalid_dna_profile"


class InvalidDnaSettings(BadInput):
    """A DNA locus set, minimum or allele-frequency table in configuration is unusable."""

    code = "invalid_dna_settings"


# --- vehicles -------------------------------------------------------------------------


class InvalidPlate(BadInput):
    """A registration plate is empty, too long or has a character no plate uses."""

    code = "invalid_plate"


class InvalidVin(BadInput):
    """A VIN breaks ISO 3779 (length, I/O/Q, check digit); the position is named."""

    code = "invalid_vin"


class InvalidVehicleQuery(BadInput):
    """A vehicle query cannot be answered as given (too broad, wrong probe format)."""

    code = "invalid_vehicle_query"


class InvalidVehicleImport(BadInput):
    """A vehicle CSV file has bad lines (each named by line and field); nothing was stored."""

    code = "invalid_vehicle_import"


# --- fingerprints ---------------------------------------------------------------------


class MalformedNistRecord(BadInput):
    """An ANSI/NIST-ITL file breaks its structure (length, CNT, field); record and field named."""

    code = "malformed_nist_record"


class UnknownRecordType(BadInput):
    """An ANSI/NIST-ITL file holds a record type this system does not read."""

    code = "unknown_record_type"


class NotAllowedByProfile(BadInput):
    """An ANSI/NIST-ITL record is well formed but breaks the exchange profile asked for
    (INTERPOL's INT-I, or the standard's code tables); the field is named."""

    code = "not_allowed_by_profile"


class BadWsqStream(UnreadableImage):
    """A WSQ-compressed image is corrupt or truncated and cannot be decoded."""

    code = "bad_wsq_stream"


class InvalidFingerData(BadInput):
    """A finger image, minutia or transaction value is out of range (position, ppi, angle)."""

    code = "invalid_finger_data"


class NoMinutiaeFound(BadInput):
    """Too few minutiae were found in a finger image to search or enrol with."""

    code = "no_minutiae_found"


class InvalidSearchType(BadInput):
    """A fingerprint search type is not TP/TP, TP/UL, LT/TP or LT/UL."""

    code = "invalid_search_type"


# --- police records -------------------------------------------------------------------


class InvalidRecordsKey(BadInput):
    """The federation's records key (file) is missing, unreadable or malformed."""

    code = "invalid_records_key"


class RecordsKeyMismatch(BadInput):
    """A records query was pseudonymised under another key than the holder's index."""

    code = "records_key_mismatch"


class InvalidPerson(BadInput):
    """A person's biographical data cannot be used (no name, impossible date, bad JSON)."""

    code = "invalid_person"
