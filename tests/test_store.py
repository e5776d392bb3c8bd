"""The system of record, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from prum.categories.face.store import FaceStore, NewRecord
from prum.categories.interface import SubjectCategory
from prum.errors import InvalidRecord, StorageError, UnknownReference


def record(n: int, **kw: object) -> NewRecord:
    rng = np.random.default_rng(n)
    fields: dict[str, object] = {
        "subject_category": SubjectCategory.SUSPECT,
        "provenance": "test",
        "model_id": "m@1",
        "template": rng.normal(size=128).astype(np.float32),
        "source_key": f"photo-{n}.jpg",
    }
    fields.update(kw)
    return NewRecord(**fields)  # type: ignore[arg-type]


def test_schema_migration_is_idempotent(database_url: str) -> None:
    FaceStore(database_url).close()
    store = FaceStore(database_url)
    assert store.count() == 0


def test_insert_then_read_back(database_url: str) -> None:
    store = FaceStore(database_url, country="AT")
    [(rid, ref)] = store.insert_many(
        [record(1, date_of_birth=dt.date(1990, 5, 1), image=b"jpegbytes", face_box=[1, 2, 3, 4])]
    )
    assert ref.startswith("AT-F-") and len(ref) == 29
    stored = store.get(ref)
    assert stored.id == rid
    assert stored.subject_category is SubjectCategory.SUSPECT
    assert stored.date_of_birth == dt.date(1990, 5, 1)
    assert stored.face_box == [1, 2, 3, 4]
    assert store.image(ref) == (b"jpegbytes", None)
    [row] = list(store.iter_templates())
    np.testing.assert_array_equal(row.vector, record(1).template)
    assert row.dob_days == (dt.date(1990, 5, 1) - dt.date(1970, 1, 1)).days


def test_references_are_random_and_unique(database_url: str) -> None:
    store = FaceStore(database_url)
    refs = [ref for _, ref in store.insert_many([record(n) for n in range(50)])]
    assert len(set(refs)) == 50
    assert refs != sorted(refs)


def test_same_source_is_never_stored_twice(database_url: str) -> None:
    store = FaceStore(database_url)
    first = store.insert_many([record(1), record(2)])
    again = store.insert_many([record(2), record(3)])
    assert again[0] == first[1]
    assert store.count() == 3


def test_failed_batch_writes_nothing(database_url: str) -> None:
    store = FaceStore(database_url)
    store.insert_many([record(1)])
    bad = record(3, provenance=None)  # NOT NULL violation inside the batch
    with pytest.raises(InvalidRecord):
        store.insert_many([record(2), bad])
    assert store.count() == 1


def test_delete_erases_and_logs(database_url: str) -> None:
    store = FaceStore(database_url)
    [(rid, ref), _] = store.insert_many([record(1), record(2)])
    assert store.delete(ref, "erasure request") == rid
    assert store.count() == 1
    assert store.deletions_after(0) == [(1, rid)]
    with pytest.raises(UnknownReference):
        store.get(ref)
    with pytest.raises(UnknownReference):
        store.delete(ref, "again")


def test_templates_stream_in_id_order_after_a_watermark(database_url: str) -> None:
    store = FaceStore(database_url)
    ids = [rid for rid, _ in store.insert_many([record(n) for n in range(25)])]
    streamed = [row.id for row in store.iter_templates(after_id=ids[9], batch=4)]
    assert streamed == ids[10:]


def test_unreachable_database_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match=r"\*\*\*@"):
        FaceStore("postgresql+psycopg://user:secret@127.0.0.1:1/none")


def test_a_full_disk_is_a_storage_error_and_stores_nothing(tmp_path: Path) -> None:
    store = FaceStore(f"sqlite:///{tmp_path / 'full.sqlite'}")
    store.insert_many([record(1)])

    # The database may not grow by a single page from here on: the disk is "full".
    def full(connection: Any, _: Any) -> None:
        pages = connection.execute("pragma page_count").fetchone()[0]
        connection.execute(f"pragma max_page_count = {pages}")

    event.listen(store.engine, "connect", full)
    store.engine.dispose()
    with pytest.raises(StorageError, match=r"full.*nothing of this transaction was stored"):
        store.insert_many([record(n, image=bytes(100_000)) for n in range(2, 40)])
    event.remove(store.engine, "connect", full)
    store.engine.dispose()
    assert store.count() == 1
