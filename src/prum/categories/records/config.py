"""Police-records settings (env ``PRUM_RECORDS_*``), each default with where it comes from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RecordsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_RECORDS_")

    # The federation's records key (prum.categories.records.keys); empty: the node's (its PKI's
    # records.key), else DATA_DIR/records_key.json.
    key_file: Path | None = None
    # Hits below this quality are not reported. Chosen on a 100,000-person synthetic
    # development set; on the benchmark's held-out set (bench/records.py) it gave
    # precision 0.993 and recall 0.980 (docs/records.md). Raise it where namesakes are
    # common and dates often missing.
    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    # Candidate cap (the same default as faces and DNA).
    max_candidates: int = Field(default=10, ge=1, le=100)
