"""A registration as a national node enrols it: the vehicle and its holders over time.

The JSON form (``VehicleMatcher.enroll``) and the CSV import both end here, so one set
of rules decides what is stored. Field names follow the registration certificate
(Directive 1999/37/EC, Annex I): the code of each is in the comment.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from prum.categories.vehicle.normalise import name_key, plate_key
from prum.categories.vehicle.vin import CheckDigitRule, validate_vin
from prum.errors import InvalidRecord

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class Role(StrEnum):
    HOLDER = "holder"  # C.1: the person the vehicle is registered to
    OWNER = "owner"  # C.2: the owner, where not the holder


class Party(BaseModel):
    """One holder or owner for one period: ``since`` inclusive, ``until`` exclusive
    (None: still the holder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role = Role.HOLDER
    surname: Text  # C.1.1 / C.2.1 (surname or business name)
    first_names: Text | None = None  # C.1.2 / C.2.2
    date_of_birth: dt.date | None = None
    address: Text | None = None  # C.1.3 / C.2.3
    since: dt.date
    until: dt.date | None = None


class Registration(BaseModel):
    """One vehicle's registration (what :meth:`VehicleStore.insert` stores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: Annotated[str, StringConstraints(min_length=1, max_length=20)]  # A
    vin: Annotated[str, StringConstraints(min_length=1, max_length=20)]  # E
    make: Text | None = None  # D.1
    model: Text | None = None  # D.3 (commercial description)
    vehicle_category: Annotated[str, StringConstraints(max_length=8)] | None = None  # J
    first_registration: dt.date | None = None  # B
    parties: list[Party] = Field(default_factory=list, max_length=200)
    # Signals: the date each became true (None: not signalled).
    stolen_since: dt.date | None = None
    exported_on: dt.date | None = None
    destroyed_on: dt.date | None = None
    insurer: Text | None = None
    insurance_valid_until: dt.date | None = None
    provenance: Annotated[str, StringConstraints(max_length=200)] = ""
    synthetic: bool = False
    source_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


def checked(registration: Registration, *, rule: CheckDigitRule) -> Registration:
    """The registration with plate and VIN in stored form, or a :class:`BadInput` that
    names the field: plate and VIN valid, holder periods in order and not overlapping."""
    plate = registration.plate.strip()
    plate_key(plate)  # raises InvalidPlate
    vin = validate_vin(
        registration.vin, first_registration=registration.first_registration, rule=rule
    )
    today = dt.date.today()
    if registration.first_registration and registration.first_registration > today:
        raise InvalidRecord("B (first registration) is in the future", field="first_registration")
    for role in Role:
        periods = sorted((p for p in registration.parties if p.role == role), key=lambda p: p.since)
        for p in periods:
            if p.until is not None and p.until <= p.since:
                raise InvalidRecord(
                    f"the {role.value} {p.surname!r} has until {p.until} not after since {p.since}",
                    field="until",
                )
            if not name_key(p.surname):
                raise InvalidRecord(f"the {role.value} surname {p.surname!r} has no letters")
            if p.date_of_birth and p.date_of_birth > today:
                raise InvalidRecord(
                    f"the {role.value} {p.surname!r} is born in the future", field="date_of_birth"
                )
        for earlier, later in itertools.pairwise(periods):
            if earlier.until is None or earlier.until > later.since:
                raise InvalidRecord(
                    f"the {role.value} periods overlap: {earlier.surname!r} since {earlier.since}"
                    f" until {earlier.until or 'now'} and {later.surname!r} since {later.since};"
                    " a vehicle has one holder at a time",
                    field="since",
                )
    return registration.model_copy(update={"plate": plate, "vin": vin})


def parse_registration(
    sample: bytes | str | dict[str, Any], *, rule: CheckDigitRule
) -> Registration:
    """A registration from JSON (bytes, text or an already decoded object), checked."""
    try:
        data = json.loads(sample) if isinstance(sample, bytes | str) else sample
        registration = Registration.model_validate(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidRecord(
                f"vehicle record field {where or '(record)'}: {first['msg']}", field=where
            ) from exc
        raise InvalidRecord(f"the vehicle record is not JSON: {exc}") from exc
    return checked(registration, rule=rule)
