"""How the command line shows a candidate list: a table for a person, every field as JSON
for a program, and the reference images as files (never base64 on a terminal)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from prum.federation.messages import Candidate, DnaHit, FingerHit, RecordsHit, VehicleData

# Magic numbers of the formats a node stores reference images in, so that a written file
# opens in an image viewer (WSQ: ANSI/NIST-ITL's fingerprint compression, SOI marker).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"\xff\xa0\xff\xa8", ".wsq"),
    (b"\x00\x00\x00\x0cjP  ", ".jp2"),
    (b"\xff\x4f\xff\x51", ".j2k"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


def image_suffix(data: bytes) -> str:
    """The file suffix of an image's format, ``.bin`` when it is none of the known ones."""
    return next((suffix for magic, suffix in _SIGNATURES if data.startswith(magic)), ".bin")


def write_images(candidates: list[Candidate], folder: Path) -> dict[int, Path]:
    """Write every candidate's image as ``RANK-REFERENCE.EXT`` into ``folder``; returns
    the file of each rank that had an image. Raises OSError when the folder is unwritable."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for c in candidates:
        if not c.image:
            continue
        # A reference comes from another system: nothing in it may leave the folder.
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", c.reference)
        path = folder / f"{c.rank:02d}-{safe}{image_suffix(c.image)}"
        path.write_bytes(c.image)
        written[c.rank] = path
    return written


def candidates_json(result: Any, written: dict[int, Path]) -> dict[str, Any]:
    """Everything a MatchResult holds, as JSON types, with the image files written."""
    candidates = []
    for c in result.candidates:
        item = c.model_dump(mode="json", exclude_none=True)
        if c.rank in written:
            item["image_file"] = str(written[c.rank])
        candidates.append(item)
    return {"gallery_size": result.gallery_size, "candidates": candidates}


def details_words(details: Any) -> str:
    """What a category adds to a candidate, in a few words for a table cell."""
    if isinstance(details, FingerHit):
        words = [details.search_type]
        if details.finger_position:
            words.append(f"finger {details.finger_position}")
        if details.fingers_compared is not None:
            words.append(f"{details.fingers_scored or 0}/{details.fingers_compared} fingers")
        if details.matched_minutiae is not None:
            words.append(f"{details.matched_minutiae} minutiae")
        return ", ".join(words)
    if isinstance(details, DnaHit):
        kind = "identified person" if details.identified else "unidentified trace"
        loci = f"{len(details.matching_loci)}/{len(details.compared_loci)} loci"
        words = [details.match.replace("_", " "), loci, kind]
        if details.mismatched_loci:
            words.append(f"differs at {', '.join(details.mismatched_loci)}")
        return ", ".join(words)
    if isinstance(details, RecordsHit):
        fields = ", ".join(field.replace("_", " ") for field in details.matched_on)
        return f"agrees on {fields or 'nothing'}"
    if isinstance(details, VehicleData):
        holder = " ".join(n for n in (details.holder_first_names, details.holder_surname) if n)
        words = [
            f"{details.plate} ({details.registration_country})",
            f"VIN {details.vin}",
            " ".join(n for n in (details.make, details.model) if n),
            f"holder {holder}" if holder else "",
            ", ".join(s.upper() for s in details.signals),
        ]
        return ", ".join(w for w in words if w)
    return ""


def candidate_table(console: Console, result: Any) -> None:
    """The candidate list as a table, with the gallery size and the false-match words."""
    candidates: list[Candidate] = result.candidates
    console.print(
        f"gallery of {result.gallery_size:,};"
        f" {len(candidates)} candidate(s) for human verification (not identifications)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if not candidates:
        return
    # Words alike for every candidate (an uncalibrated gallery, an exact registration
    # match) are said once rather than repeated on each row.
    words = {c.false_match_words for c in candidates}
    shared = words.pop() if len(words) == 1 else None
    table = Table()
    # A reference is copied into the next command: never cut or wrapped.
    longest = max(len(c.reference) for c in candidates)
    table.add_column("rank", justify="right")
    table.add_column("reference", no_wrap=True, min_width=longest)
    table.add_column("score", justify="right")
    # Long words (a VIN, a field name) are folded, not cut: every character is evidence.
    table.add_column("details", ratio=2, overflow="fold")
    table.add_column("source", ratio=1, overflow="fold")
    if shared is None:
        table.add_column("assessment", ratio=2, overflow="fold")
    for c in candidates:
        row = [
            str(c.rank),
            c.reference,
            f"{c.score:.3f}",
            details_words(c.details),
            c.provenance + (" [synthetic]" if c.synthetic else ""),
        ]
        if shared is None:
            row.append(c.false_match_words)
        # Text, not markup: a provenance or reference from another system may hold "[".
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    if shared is not None:
        console.print(f"every candidate: {shared}", markup=False, highlight=False, soft_wrap=True)
