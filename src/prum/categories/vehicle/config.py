"""Vehicle settings (env ``PRUM_VEHICLE_*``), each default with where it comes from."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from prum.categories.vehicle.vin import CheckDigitRule


class VehicleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_VEHICLE_")

    # 49 CFR 565.15 makes the check digit compulsory in North America only; ISO 3779
    # does not. "always" suits a register that knows all its VINs carry one.
    check_digit: CheckDigitRule = "north_america"
    # Registrations returned for one query. A plate or VIN names one vehicle (a few
    # when a plate was reissued); a holder may keep a fleet, which is why a holder
    # search needs more than the surname (see matcher.search).
    max_candidates: int = Field(default=20, ge=1, le=100)
    # Rows per transaction of a CSV import: the whole file is still one transaction,
    # this only bounds the memory held between database round trips.
    import_batch: int = Field(default=5_000, ge=1)
