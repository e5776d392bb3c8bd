"""What the vendor declares about the tested node: the categories it offers and the
rules it applies, and probes for which it holds matches. The kit checks the node
against its own declaration (a node may offer fewer categories than ours, with other
thresholds), and reports a check it cannot make without a declared figure as not
applicable, with the field that would make it applicable.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prum.errors import BadInput
from prum.federation.messages import (
    Category,
    Party,
    Probe,
    ProbeFormat,
    Purpose,
    RecordsQuery,
    VehicleQuery,
)

# The format of a probe of each category unless the declaration names another
# (docs/protocol.md, "What a search carries, per category").
DEFAULT_FORMAT: dict[Category, ProbeFormat] = {
    Category.FACE: "image",
    Category.DNA: "dna_profile",
    Category.FINGER: "ansi_nist",
    Category.VEHICLE: "vehicle_query",
    Category.RECORDS: "records_query",
}

# Probes the kit can always send: valid on the wire, matching nothing in particular.
# A DNA profile over the 12 ESS loci (drawn from European allele frequencies) and a
# VIN query; faces, fingerprints and records need a probe from the vendor.
BUILT_IN_PROBES: dict[Category, Probe] = {
    Category.DNA: Probe(
        format="dna_profile",
        data=base64.b64encode(
            json.dumps(
                {
                    "identified": True,
                    "loci": {
                        "vWA": ["16", "18"],
                        "TH01": ["8", "9.3"],
                        "D21S11": ["29", "30"],
                        "FGA": ["24", "26"],
                        "D8S1179": ["11", "11"],
                        "D3S1358": ["14", "16"],
                        "D18S51": ["15", "16"],
                        "D1S1656": ["17.3", "18.3"],
                        "D2S441": ["11", "14"],
                        "D10S1248": ["15", "16"],
                        "D12S391": ["18", "19"],
                        "D22S1045": ["15", "16"],
                    },
                }
            ).encode()
        ),
    ),
    Category.VEHICLE: Probe(format="vehicle_query", vehicle=VehicleQuery(vin="WVWZZZ1JZXW000001")),
}

# Categories whose answer carries the data at once: no step 2 (docs/protocol.md).
ANSWERED_AT_ONCE = frozenset({Category.VEHICLE})


class CategoryDeclaration(BaseModel):
    """One category the node offers, as its operator configured it."""

    model_config = ConfigDict(extra="forbid")

    purposes: list[Purpose] = Field(default_factory=lambda: [Purpose.INVESTIGATION])
    # The least maximum penalty (months) a criminal-offence search must name.
    min_penalty_months: Annotated[int, Field(ge=0, le=1200)] = 0
    # The node's own cap on candidates (at most 100 on the wire).
    max_candidates: Annotated[int, Field(ge=1, le=100)] | None = None
    # Searches one requesting party may make per day; the kit exhausts it (with its own
    # requester) only when it is small enough (checks: MAX_CAPACITY_TO_EXHAUST).
    daily_capacity: Annotated[int, Field(ge=0)] | None = None
    # Fingerprints: the search types offered (TP/TP, ...).
    search_types: list[str] = Field(default_factory=list)
    probe_format: ProbeFormat | None = None
    # A probe for which the node holds matches (two or more for the candidate-cap check).
    hit_probe: Path | None = None
    # A probe whose only matches are records national law hides from criminal-offence
    # searches (a victim, a minor): the node must answer it with no candidate.
    hidden_probe: Path | None = None


class Declaration(BaseModel):
    """The tested node: its party code, its federation URL and what it offers."""

    model_config = ConfigDict(extra="forbid")

    party: Party
    federation_url: str
    categories: dict[Category, CategoryDeclaration]
    base: Path = Path(".")  # where relative probe paths are read from (the file's folder)

    def probe(self, category: Category, which: str = "hit") -> Probe | None:
        """The declared probe (``hit`` or ``hidden``) of a category, ``None`` if not
        declared."""
        declared = self.categories.get(category)
        path = None if declared is None else getattr(declared, f"{which}_probe")
        if declared is None or path is None:
            return None
        fmt = declared.probe_format or DEFAULT_FORMAT[category]
        return load_probe(self.base / path, fmt)

    def any_probe(self, category: Category) -> Probe | None:
        """The declared hit probe, else the kit's own for the category (if it has one)."""
        return self.probe(category, "hit") or BUILT_IN_PROBES.get(category)


def load_probe(path: Path, fmt: ProbeFormat) -> Probe:
    """A probe file as it travels: the sample's bytes, or a vehicle / records query as
    JSON."""
    try:
        data = path.read_bytes()
        if fmt == "vehicle_query":
            return Probe(format=fmt, vehicle=VehicleQuery.model_validate_json(data))
        if fmt == "records_query":
            return Probe(format=fmt, records=RecordsQuery.model_validate_json(data))
        return Probe(format=fmt, data=base64.b64encode(data))
    except OSError as exc:
        raise BadInput(f"cannot read the probe {path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise BadInput(f"the probe {path} is not a valid {fmt}: {exc.errors()[0]['msg']}") from None


def load_declaration(path: Path) -> Declaration:
    """Read a declaration file (JSON; see docs/conformance.md)."""
    try:
        raw: Any = json.loads(path.read_text())
        declaration = Declaration.model_validate({**raw, "base": str(path.parent)})
    except OSError as exc:
        raise BadInput(f"cannot read the declaration {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSON or validation
        raise BadInput(f"the declaration {path} is not valid: {exc}") from None
    return declaration
