"""The federation directory: who takes part, where the router reaches them, what they
offer and what they may ask.

One JSON file, read when the router starts::

    {
      "parties": {
        "AT": {"url": "https://at.node.example:8443",
               "offers": ["face", "dna", "vehicle"],
               "accepts": ["investigation", "missing_person"]},
        "EUROPOL": {"url": "https://europol.node.example:8443",
                    "offers": ["face"],
                    "may_search": {"face": ["investigation"], "dna": ["investigation"]}}
      }
    }

``url`` is the base of the party's router-facing node API (mutual TLS, so ``https``).
``offers`` are the data categories the party answers searches in; ``accepts`` the
purposes its national law lets it answer (default: all three). ``may_search`` maps each
category the party may search to the purposes it may search it for; absent, a party
may search every category for every purpose. Europol's access (Art 49 of Reg.
2024/982) is narrower by configuration, not by code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prum.errors import InvalidDirectory, UnknownParty
from prum.federation.messages import Category, Party, Purpose

ALL_PURPOSES: tuple[Purpose, ...] = tuple(Purpose)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartyEntry(_Strict):
    """One party of the federation as the router sees it."""

    url: Annotated[str, Field(min_length=9, max_length=300)]
    offers: list[Category] = Field(default_factory=list)
    accepts: list[Purpose] = Field(default_factory=lambda: list(ALL_PURPOSES))
    may_search: dict[Category, list[Purpose]] | None = None

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://") or any(c.isspace() for c in value):
            raise ValueError("must be an https:// URL (the node API is mutual TLS)")
        return value.rstrip("/")

    def may(self, category: Category, purpose: Purpose) -> bool:
        """Whether this party may search ``category`` for ``purpose``."""
        if self.may_search is None:
            return True
        return purpose in self.may_search.get(category, [])


class Directory(_Strict):
    """Every party of the federation, by party code."""

    parties: dict[Party, PartyEntry]

    def entry(self, party: str) -> PartyEntry:
        """The party's entry; UnknownParty when it is not in the federation."""
        try:
            return self.parties[party]
        except KeyError:
            raise UnknownParty(
                f"{party} is not a party of this federation (known: "
                f"{', '.join(sorted(self.parties))})",
                party=party,
            ) from None

    def offering(self, category: Category, *, besides: str) -> list[str]:
        """Every party other than ``besides`` that offers ``category``, sorted."""
        return sorted(
            party
            for party, entry in self.parties.items()
            if party != besides and category in entry.offers
        )

    def public(self) -> dict[str, Any]:
        """What any party may know: who offers what and accepts which purposes (no URLs)."""
        return {
            "parties": [
                {
                    "party": party,
                    "offers": [c.value for c in entry.offers],
                    "accepts": [p.value for p in entry.accepts],
                }
                for party, entry in sorted(self.parties.items())
            ]
        }


def load_directory(path: Path) -> Directory:
    """Read and check a directory file; InvalidDirectory says what is wrong and where."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidDirectory(
            f"no federation directory at {path} (set PRUM_ROUTER_DIRECTORY_FILE)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise InvalidDirectory(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise InvalidDirectory(f"{path} is not UTF-8 text", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InvalidDirectory(
            f"{path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            path=str(path),
        ) from None
    try:
        directory = Directory.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidDirectory(
            f"{path} is not a valid directory: {problems}", path=str(path)
        ) from None
    if not directory.parties:
        raise InvalidDirectory(f"{path} lists no parties", path=str(path))
    return directory
