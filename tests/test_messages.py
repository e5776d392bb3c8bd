"""The wire schema's own rules: what a request of each kind must and may carry."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from prum.federation.messages import Probe, SearchRequest

COMMON: dict[str, Any] = {
    "request_number": "AT-1",
    "requesting_party": "AT",
    "requesting_user": "olga",
    "purpose": "investigation",
    "max_penalty_months": 24,
    "case_reference": "AT/2026/1",
}
PROFILE = {"format": "dna_profile", "data": base64.b64encode(b"{}").decode()}


def request(**fields: Any) -> SearchRequest:
    return SearchRequest.model_validate({**COMMON, **fields})


def test_a_plate_query_goes_to_exactly_one_country() -> None:
    probe = {"format": "vehicle_query", "vehicle": {"plate": "W-123 AB"}}
    assert request(category="vehicle", offence="0900 00", probe=probe, targets=["AT"])
    for targets in ("all", ["AT", "DE"]):
        with pytest.raises(ValidationError, match="one country"):
            request(category="vehicle", offence="0900 00", probe=probe, targets=targets)


def test_a_vin_query_may_go_to_every_country() -> None:
    probe = {"format": "vehicle_query", "vehicle": {"vin": "WVWZZZ1JZXW000001"}}
    assert request(category="vehicle", offence="0900 00", probe=probe).targets == "all"


def test_one_off_search_carries_a_probe_and_an_offence() -> None:
    with pytest.raises(ValidationError, match="offence"):
        request(category="dna", probe=PROFILE)
    with pytest.raises(ValidationError, match="probe and no batch"):
        request(category="dna", offence="0900 00")


def test_batched_comparison_carries_a_batch_and_no_probe() -> None:
    batch = [{"reference": "AT-D-1", "probe": PROFILE}]
    assert request(category="dna", mode="initial_bulk", batch=batch).offence is None
    with pytest.raises(ValidationError, match="batch and no probe"):
        request(category="dna", mode="continuous", probe=PROFILE)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "vehicle_query"}, "'vehicle'"),
        ({"format": "image"}, "'data'"),
        (
            {"format": "image", "data": "eA==", "vehicle": {"vin": "WVWZZZ1JZXW000001"}},
            "nothing else",
        ),
    ],
)
def test_a_probe_carries_exactly_what_its_format_says(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Probe.model_validate(fields)
