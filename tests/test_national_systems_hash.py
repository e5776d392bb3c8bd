"""The content hash a national system computes itself (docs/national-systems.md): SHA-256
of the canonical JSON of what it sends, fields absent or null left out, so that it can
compare its own records with the node's listing without asking the node."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prum.node.systems.contract import RecordIn

SENT: dict[str, Any] = {
    "category": "dna",
    "national_id": "DAD-2024-000117",
    "sample": {
        "format": "dna-profile",
        "content": {"identified": True, "loci": {"vWA": ["15", "19"], "TH01": ["7", "9.3"]}},
    },
    "retention_until": "2044-05-14",
    "core_data": {"surnames": ["Brandt"], "first_names": ["Jörg"], "case_number": "DE-1"},
}


def system_side_hash(record: dict[str, Any]) -> str:
    """What the documentation tells a system to compute, in a few lines of any language."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_a_system_computes_the_nodes_content_hash_from_what_it_sends() -> None:
    assert RecordIn.model_validate(SENT).content_hash() == system_side_hash(SENT)


def test_defaults_sent_explicitly_do_not_change_the_hash() -> None:
    explicit = {
        **SENT,
        "op": "upsert",
        "provenance": "",
        "synthetic": False,
        "origin_country": None,
        "core_data": {**SENT["core_data"], "aliases": [], "gender": None},
    }
    assert RecordIn.model_validate(explicit).content_hash() == system_side_hash(SENT)


def test_any_change_of_what_is_sent_changes_the_hash() -> None:
    changed = {**SENT, "core_data": {**SENT["core_data"], "case_number": "DE-2"}}
    assert RecordIn.model_validate(changed).content_hash() != system_side_hash(SENT)
    assert RecordIn.model_validate(changed).content_hash() == system_side_hash(changed)
