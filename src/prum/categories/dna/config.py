"""DNA settings (env ``PRUM_DNA_*``), each default with where it comes from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DnaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_DNA_")

    # Which loci are stored and compared; Prüm II leaves the list to implementing acts.
    locus_set: str = "prum"
    # 2008/616 Annex 1.1 and 1.2: 6 fully designated loci to search and to match.
    min_loci: int = Field(default=6, ge=1, le=40)
    # 2008/616 Annex 1.1: a person's profile holds at least 6 of the 7 original ESS loci.
    min_ess7_person: int = Field(default=6, ge=0, le=7)
    # NRC II (1996) recommendation 4.10: theta 0.01 for general populations.
    theta: float = Field(default=0.01, ge=0.0, le=0.25)
    # Allele-frequency table; empty: ../shared/data's European table, else the built-in one.
    frequencies: Path | None = None
    # Candidate cap (the same default as faces; Art 9 answers list every hit, but an
    # examiner verifies them one by one).
    max_candidates: int = Field(default=10, ge=1, le=100)
    # The index is saved after this many enrolments since its last save.
    save_every: int = Field(default=10_000, ge=1)
