"""Tables of the national police-records index (the system of record).

Created by the records Alembic chain (records/migrations, version table
``alembic_version_records``), beside the other stores of the node in one database.
The clear record stays here (it is national data, needed for core data after a
confirmed match); only its pseudonymised encodings are ever compared.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from prum.categories.schema import deletions_table, record_table
from prum.db import BigId

metadata = MetaData()

records_persons = record_table(
    "records_persons",
    metadata,
    Column("person", Text, nullable=False),  # clear JSON (prum.categories.records.person)
    Column("case_data", Text, nullable=False),  # offence, case number, authority (JSON)
    Column("birth_year", Integer, nullable=True),  # for the exposure rules on age
    Column("date_of_birth", Date, nullable=True),  # when complete
)

# One row per name of a person (entry 0 the name, 1.. the aliases) and federation key:
# during a key rotation both keys' encodings are kept until the switch.
records_encodings = Table(
    "records_encodings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("entry", Integer, nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("encoding", Text, nullable=False),  # JSON of prum.federation.messages.RecordsQuery
    Index("ix_records_encodings_record", "record_id"),
    Index("ix_records_encodings_key", "key_id", "record_id"),
)

# Every erasure is logged (not what was erased).
records_deletions = deletions_table("records_deletions", metadata)
