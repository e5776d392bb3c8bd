"""The vehicle category behind the common interface (prum.categories.CategoryMatcher).

Vehicle registration data is the exception to the two steps of Prüm: the answer
carries the data at once (EUCARIS). Each hit is a :class:`prum.federation.messages.Candidate`
with ``details`` = :class:`prum.federation.messages.VehicleData` as it stood on the query's date
(``at``, default today): the holder and owner of that day and the signals raised by
then. A registration match is exact, so ``score`` is 1, ``distance`` 0 and there is no
false-match rate. Vehicle data has no data-subject categories: the exposure rules of
the biometric categories do not apply to it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from pydantic import ValidationError

from prum.categories.interface import Exposure, MatchResult
from prum.categories.vehicle.config import VehicleSettings
from prum.categories.vehicle.normalise import name_key, plate_key
from prum.categories.vehicle.record import Registration, Role, parse_registration
from prum.categories.vehicle.store import StoredParty, StoredVehicle, VehicleStore
from prum.categories.vehicle.vin import validate_vin
from prum.config import Settings
from prum.errors import InvalidRecord, InvalidVehicleQuery
from prum.federation.messages import Candidate, Category, Probe, VehicleData, VehicleQuery

MATCH_WORDS = "exact registration match"
# gallery_size is a count of the register; on tens of millions of rows counting takes
# seconds, so it is refreshed at most this often (enrolments and deletions update it).
_COUNT_TTL_S = 60.0


class VehicleMatcher:
    """A national vehicle register: queries by plate, VIN or holder identity."""

    category = Category.VEHICLE

    def __init__(self, settings: Settings, vehicle: VehicleSettings | None = None):
        self.settings = vehicle or VehicleSettings()
        self.country = settings.country
        self.store = VehicleStore(settings.resolved_database_url(), country=settings.country)
        self._lock = threading.Lock()
        self._count = self.store.count()
        self._counted_at = time.monotonic()

    def enroll(self, sample: bytes, **record: Any) -> str:
        """Enrol one registration (JSON, the fields of prum.categories.vehicle.record.Registration);
        returns its reference. ``record`` may set ``provenance``, ``synthetic`` and
        ``source_key`` (a known source key is not stored twice)."""
        unknown = set(record) - {"provenance", "synthetic", "source_key"}
        if unknown:
            raise InvalidRecord(f"unknown vehicle record field(s): {', '.join(sorted(unknown))}")
        registration = parse_registration(sample, rule=self.settings.check_digit)
        if record:
            try:
                registration = Registration.model_validate({**registration.model_dump(), **record})
            except ValidationError as exc:
                raise InvalidRecord(f"vehicle record: {exc.errors()[0]['msg']}") from exc
        _, reference, stored = self.store.insert(registration)
        if stored:
            with self._lock:
                self._count += 1
        return reference

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        """``exposure`` and ``search_type`` do not apply: one register, no subject
        categories."""
        if probe.format != "vehicle_query" or probe.vehicle is None:
            raise InvalidVehicleQuery("a vehicle search needs a probe of format 'vehicle_query'")
        return self.query(probe.vehicle, max_candidates=max_candidates)

    def query(self, query: VehicleQuery, *, max_candidates: int) -> MatchResult:
        """Registrations matching the plate, the VIN or the holder, as on ``query.at``."""
        day = query.at or dt.date.today()
        limit = max(1, min(max_candidates, self.settings.max_candidates))
        if query.plate is not None:
            ids = self.store.ids_by_plate(plate_key(query.plate), limit=limit)
        elif query.vin is not None:
            # A query may look for a pre-1981 vehicle, so a shorter number is allowed.
            vin = validate_vin(query.vin, rule=self.settings.check_digit, legacy=True)
            ids = self.store.ids_by_vin(vin, limit=limit)
        else:
            assert query.holder_surname is not None  # VehicleQuery allows no other way
            ids = self._holder_ids(query, day, limit)
        vehicles = self.store.vehicles(ids)
        if query.at is not None:
            # Not yet registered on that day: the plate or VIN named another vehicle.
            vehicles = [
                v for v in vehicles if v.first_registration is None or v.first_registration <= day
            ]
        candidates = [
            Candidate(
                rank=rank,
                reference=v.reference,
                score=1.0,
                distance=0.0,
                false_match_rate=None,
                false_match_words=MATCH_WORDS,
                provenance=v.provenance,
                synthetic=v.synthetic,
                details=vehicle_data(v, day, country=self.country),
            )
            for rank, v in enumerate(vehicles, start=1)
        ]
        return MatchResult(candidates=candidates, gallery_size=self._size())

    def _holder_ids(self, query: VehicleQuery, day: dt.date, limit: int) -> list[int]:
        surname = name_key(query.holder_surname or "")
        if not surname:
            raise InvalidVehicleQuery("the holder's surname has no letters")
        first = name_key(query.holder_first_names) if query.holder_first_names else None
        if not first and query.holder_date_of_birth is None:
            # A surname alone names thousands of people: refused as disproportionate.
            raise InvalidVehicleQuery(
                "a holder search needs the surname with the first names or the date of birth"
            )
        return self.store.ids_by_party(
            surname,
            first_names_key=first or None,
            date_of_birth=query.holder_date_of_birth,
            on=day,
            limit=limit,
        )

    def _size(self) -> int:
        with self._lock:
            if time.monotonic() - self._counted_at > _COUNT_TTL_S:
                self._count = self.store.count()
                self._counted_at = time.monotonic()
            return self._count

    def delete(self, reference: str, *, reason: str) -> None:
        self.store.delete(reference, reason)
        with self._lock:
            self._count = max(0, self._count - 1)

    def refresh(self) -> None:
        """Recount after another writer (the national-systems interface) committed."""
        with self._lock:
            self._count = self.store.count()
            self._counted_at = time.monotonic()

    def ingester(self) -> Any:
        from prum.categories.vehicle.ingest import VehicleIngester

        return VehicleIngester(self)

    def describe(self) -> dict[str, Any]:
        return {
            "category": "vehicle",
            "records": self._size(),
            "check_digit": self.settings.check_digit,
            "max_candidates": self.settings.max_candidates,
            "queries": ["plate", "vin", "holder"],
        }

    def close(self) -> None:
        self.store.close()


def _on(parties: tuple[StoredParty, ...], role: Role, day: dt.date) -> StoredParty | None:
    for p in parties:
        if p.role == role and p.holds_on(day):
            return p
    return None


def vehicle_data(v: StoredVehicle, day: dt.date, *, country: str) -> VehicleData:
    """The registration as it stood on ``day``: that day's holder and owner, the signals
    raised by then; insurance as currently known."""
    holder = _on(v.parties, Role.HOLDER, day)
    owner = _on(v.parties, Role.OWNER, day)
    signals: list[Any] = [
        name
        for name, since in (
            ("stolen", v.stolen_since),
            ("exported", v.exported_on),
            ("destroyed", v.destroyed_on),
        )
        if since is not None and since <= day
    ]
    return VehicleData(
        registration_country=country,
        plate=v.plate,
        vin=v.vin,
        make=v.make,
        model=v.model,
        vehicle_category=v.vehicle_category,
        first_registration=v.first_registration,
        holder_surname=holder.surname if holder else None,
        holder_first_names=holder.first_names if holder else None,
        holder_address=holder.address if holder else None,
        holder_since=holder.since if holder else None,
        holder_until=holder.until if holder else None,
        owner_name=" ".join(filter(None, (owner.surname, owner.first_names))) if owner else None,
        owner_address=owner.address if owner else None,
        signals=signals,
        insurer=v.insurer,
        insurance_valid_until=v.insurance_valid_until,
    )
