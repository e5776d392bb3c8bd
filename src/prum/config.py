"""Settings of a node, read from the environment (``PRUM_*``) with sane defaults.

Every threshold has a comment saying where its default comes from. Nested settings
use a double underscore in the environment: ``PRUM_FACE__MAX_PIXELS=40000000``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from prum.categories.face.config import FaceSettings, IndexSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUM_", env_nested_delimiter="__")

    country: str = "XX"
    data_dir: Path = Path("var/node")
    # SQLAlchemy URL; empty means SQLite in data_dir.
    database_url: str = ""
    face: FaceSettings = Field(default_factory=FaceSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    # The federation's police-records key file (a node passes its PKI's records.key).
    records_key: Path | None = None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gallery.sqlite').resolve()}"
