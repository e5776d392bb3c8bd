"""Registrations from a national vehicle register, through the node's national-systems
interface (prum.node.systems): checked here (plate, VIN check digit, holders), written on
the interface's transaction. A registration carries no core data: the answer to a
vehicle query is the data itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from prum.categories.interface import RecordMeta
from prum.categories.vehicle.config import VehicleSettings
from prum.categories.vehicle.record import Registration, parse_registration
from prum.categories.vehicle.store import Writer
from prum.config import Settings
from prum.errors import InvalidRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from prum.categories.vehicle.matcher import VehicleMatcher

FORMATS = ("vehicle-registration",)


class VehiclePreparer:
    def __init__(self, settings: Settings | None = None, vehicle: VehicleSettings | None = None):
        self.settings = vehicle or VehicleSettings()

    def prepare(self, sample: bytes, sample_format: str, meta: RecordMeta) -> Registration:
        if sample_format not in FORMATS:
            raise InvalidRecord(
                f"a vehicle record's sample is one of {', '.join(FORMATS)}, not {sample_format!r}"
            )
        registration = parse_registration(sample, rule=self.settings.check_digit)
        extra = {
            "source_key": meta.source_key,
            "provenance": meta.provenance or registration.provenance,
            "synthetic": meta.synthetic,
        }
        try:
            return Registration.model_validate({**registration.model_dump(), **extra})
        except ValidationError as exc:
            raise InvalidRecord(f"vehicle record: {exc.errors()[0]['msg']}") from exc


class VehicleIngester:
    def __init__(self, matcher: VehicleMatcher):
        self.matcher = matcher

    def preparer(self) -> VehiclePreparer:
        return VehiclePreparer(vehicle=self.matcher.settings)

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        registrations = [r for r in prepared if isinstance(r, Registration)]
        writer = Writer(conn, self.matcher.country)
        known = writer.existing(sorted({r.source_key for r in registrations if r.source_key}))
        new = [r for r in registrations if r.source_key not in known]
        stored = dict(zip((r.source_key for r in new), writer.add_many(new), strict=True))
        out = []
        for registration in registrations:
            key = registration.source_key
            out.append(known[key] if key in known else stored[key][1])
        return out

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.matcher.store.delete_in(conn, reference, reason)

    def refresh(self) -> None:
        self.matcher.refresh()
