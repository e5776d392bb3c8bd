"""Fingerprint matcher settings (env ``PRUM_FINGER_*``), each default with its source."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FingerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_FINGER_")

    # Candidate cap. The legacy Prüm model returns 1 (TP/TP) to 10 (LT/TP) candidates;
    # the node caps each search type further (MISSION.md, fingerprints).
    max_candidates: int = Field(default=10, ge=1, le=100)
    # Fingers re-ranked with the full MCC comparison after the index vote and its
    # first pass (prum.categories.finger.index.IndexParams.shortlist says why 100).
    shortlist: int = Field(default=100, ge=1, le=1000)
    # Nearest enrolled cylinders per probe cylinder, and inverted lists visited
    # (prum.categories.finger.index.IndexParams says where these defaults come from).
    neighbours: int = Field(default=128, ge=1, le=1024)
    nprobe: int = Field(default=64, ge=1, le=65536)
    # TP/TP of a card: the cards best by the votes and first pass of all the probe's
    # fingers that are compared in full and fused (finger.index.IndexParams.cards).
    fusion_cards: int = Field(default=10, ge=1, le=1000)
    # Fewer minutiae than this cannot be compared with any confidence (MCC needs
    # neighbours around each minutia; 12 is the historical court "point" standard's
    # order of magnitude and what Bozorth3 needs to score at all).
    min_minutiae: int = Field(default=12, ge=1, le=200)
    # A JSON list of impostor scores (prum.categories.finger.evaluation) used to state the false
    # match rate of a score; empty: the gallery's own impostor pairs when it is large
    # enough, otherwise no rate (and words saying why).
    calibration: Path | None = None
    # The index is saved after this many enrolments since its last save.
    save_every: int = Field(default=1_000, ge=1)
