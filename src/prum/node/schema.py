"""Tables of a node's workflow: users, searches and their answers, human decisions,
core-data requests in both directions, the durable outbox and the inbox.

They live in the node's database beside the gallery, with their own Alembic chain
(version table ``alembic_version_node``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from prum.db import BigId

metadata = MetaData()

users = Table(
    "node_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Searches this node sent, with the answers (candidate lists with images for the
# examiner: reference data, kept at the requesting node only).
searches = Table(
    "node_searches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("request_number", String(64), nullable=False),
    Column("user", String(64), nullable=False),
    Column("category", String(16), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("offence", String(16), nullable=False),
    Column("max_penalty_months", Integer, nullable=False),
    Column("case_reference", String(200), nullable=False),
    Column("targets", JSON, nullable=False),
    Column("probe", JSON, nullable=True),  # base64 probe and box, for side-by-side view
    Column("status", String(16), nullable=False),  # sent | answered | failed
    Column("reply", JSON, nullable=True),  # SearchReply as JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
)

verifications = Table(
    "node_verifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("search_id", BigInteger, nullable=False),
    Column("party", String(8), nullable=False),
    Column("reference", String(40), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("justification", Text, nullable=False),
    Column("user", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    # effective | proposed (a change after a core-data request, awaiting a second
    # examiner) | declined (the second examiner did not countersign)
    Column("status", String(16), nullable=False, server_default="effective"),
    Column("countersigned_by", String(64), nullable=True),
    Column("countersigned_at", DateTime(timezone=True), nullable=True),
)

# Core-data requests this node sent, and what came back.
requests_out = Table(
    "node_core_requests_out",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("search_id", BigInteger, nullable=False),
    Column("holder_party", String(8), nullable=False),
    Column("reference", String(40), nullable=False),
    Column("user", String(64), nullable=False),
    Column("facts", Text, nullable=False),
    Column("offence", String(16), nullable=False),
    # sent | on_hold | released | refused | cancelled
    Column("status", String(16), nullable=False),
    Column("reply", JSON, nullable=True),  # CoreDataReply as JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("replied_at", DateTime(timezone=True), nullable=True),
    Column("hold", JSON, nullable=True),  # the holder's last CoreDataHold, as JSON
    # Withdrawn by this node (CoreDataCancelled): when, by whom, and why in words.
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_by", String(64), nullable=True),
    UniqueConstraint("search_id", "holder_party", "reference", name="uq_one_request_per_match"),
)

# Core-data requests other parties sent to this node, awaiting a human decision.
requests_in = Table(
    "node_core_requests_in",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("requesting_party", String(8), nullable=False),
    Column("reference", String(40), nullable=False),
    Column("request", JSON, nullable=False),  # the CoreDataRequest as JSON
    # pending | on_hold | released | refused | cancelled (by the requester)
    Column("status", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("hold_started_at", DateTime(timezone=True), nullable=True),
    Column("paused_seconds", Float, nullable=False, default=0.0),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", String(40), nullable=True),
    # The approver's words with a refusal, and the reason and words of a hold.
    Column("explanation", Text, nullable=True),
    Column("hold_reason", String(40), nullable=True),
    Column("hold_note", Text, nullable=True),
    # The requester withdrew the request (its CoreDataCancelled, as JSON).
    Column("cancelled", JSON, nullable=True),
)

# What a user of this node must see (core data arrived, a hold set, a reference
# withdrawn, a verdict change to countersign); read when the user opened the list.
notifications = Table(
    "node_notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", String(500), nullable=False),
    Column("link", String(300), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=True),
    Index("ix_node_notifications_user_read", "user", "read_at"),
)

# Core data of this node's own records, released only by a human decision.
core_data = Table(
    "node_core_data",
    metadata,
    Column("reference", String(40), primary_key=True),
    Column("data", JSON, nullable=False),
)

# Durable outbox: a message is stored in the same transaction as the decision that
# produced it and delivered (with retries) until the destination acknowledges it.
outbox = Table(
    "node_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("destination", String(8), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
)

# Every message accepted from the router, by id: a redelivery is acknowledged and
# changes nothing (exactly-once effect).
inbox = Table(
    "node_inbox",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("sender", String(8), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Which of this node's references it sent to which party as candidates (in answers to
# their searches): who must be told when the record is erased or rectified. A row goes
# when its withdrawal notice is queued (prum.node.withdrawal).
references_sent = Table(
    "node_references_sent",
    metadata,
    Column("reference", String(40), primary_key=True),
    Column("party", String(8), primary_key=True),
    Column("first_sent_at", DateTime(timezone=True), nullable=False),
)

# Searches answered per requesting party, category and day (daily capacities).
capacity = Table(
    "node_capacity",
    metadata,
    Column("day", Date, primary_key=True),
    Column("requesting_party", String(8), primary_key=True),
    Column("search_type", String(16), primary_key=True),
    Column("used", Integer, nullable=False),
)

# DNA comparisons of Art 7 run by this node against one other party each: the initial
# bulk comparison when it connects, then continuous comparison of new profiles. The
# cursor (the last own profile id answered) moves in the transaction that stores the
# batch's answer, so a crash repeats at most an unanswered batch.
comparisons = Table(
    "node_comparisons",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("category", String(16), nullable=False),
    Column("mode", String(16), nullable=False),  # initial_bulk | continuous
    Column("party", String(8), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("upto", BigInteger, nullable=True),  # initial: the last id when it started
    Column("status", String(16), nullable=False),  # running | done
    Column("batch_size", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("batches", Integer, nullable=False),
    Column("compared", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("category", "mode", "party", name="uq_one_comparison_per_party"),
)

# Workbench sessions (prum.node.web.sessions): only a hash of the session id is stored, so
# a copy of the database opens no session.
web_sessions = Table(
    "node_web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user", String(64), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# --- the national-systems interface (prum.node.systems) --------------------------------

# Machine accounts of the country's systems of record (AFIS, face database, DNA
# database, records index, vehicle register): a bearer token (only its SHA-256 is
# kept: tokens are 256 random bits, so no slow hash is needed) and the categories each
# may write. A system can neither search nor release anything.
system_accounts = Table(
    "node_system_accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("categories", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Every record a national system holds at this node, under the system's own identifier:
# which reference it has here and hashes of what was sent, so that sending a record again
# changes nothing and a reconciliation after an outage sends only what differs.
national_records = Table(
    "node_national_records",
    metadata,
    Column("category", String(16), primary_key=True),
    Column("national_id", String(128), primary_key=True),
    Column("reference", String(40), nullable=False, unique=True),
    # Everything sent (sample, record fields, core data): unchanged if equal.
    Column("content_hash", String(64), nullable=False),
    # What the category stores (sample and record fields): a new version if it differs.
    Column("record_hash", String(64), nullable=False),
    # Art 48: third-country data held by Europol name the country they came from.
    Column("origin_country", String(2), nullable=True),
    Column("retention_until", Date, nullable=True),
    Column("system", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the change that wrote this version
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The node's change sequence: one row per upsert or deletion that changed something,
# read by national systems to reconcile (GET /v1/changes).
record_changes = Table(
    "node_record_changes",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("category", String(16), nullable=False),
    Column("national_id", String(128), nullable=False),
    Column("operation", String(16), nullable=False),  # created|replaced|updated|deleted
    Column("reference", String(40), nullable=False),
    Column("content_hash", String(64), nullable=True),  # None after a deletion
    Column("system", String(64), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)
# A withdrawal looks a sent reference up here to tell an erased record from one that was
# never a national system's (prum.node.withdrawal.record_sent).
Index("ix_node_record_changes_reference", record_changes.c.reference)

# The comparison report (PDF) of an examiner's decision, kept with the case as first
# written (prum.node.web.report): one per decision, with its SHA-256.
reports = Table(
    "node_reports",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("verification_id", BigInteger, nullable=False, unique=True),
    Column("search_id", BigInteger, nullable=False, index=True),
    Column("party", String(8), nullable=False),
    Column("reference", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("pdf", LargeBinary, nullable=False),
)
