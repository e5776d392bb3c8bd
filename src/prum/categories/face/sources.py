"""What ``prum face enroll`` reads: one photo, one ANSI/NIST-ITL transaction, a CSV
manifest, or a folder of photos and transactions, each turned into enrolment items.

A transaction gives one item per frontal Type-10 image (chosen by POS, then SAP, see
:mod:`prum.categories.face.type10`); its profile and angled images are recorded in the
provenance of every record enrolled from it (IDC and pose) and never searched; its
control number (1.009 TCN) is the provenance and, with the originating agency and the
IDC, the key that makes a second run skip what is stored. A transaction that cannot be
read becomes one refusal in the report, never the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prum.categories.face.bulk import IMAGE_SUFFIXES, PhotoItem, folder_items, manifest_items
from prum.categories.face.config import FaceSettings
from prum.categories.face.decode import sniff_format
from prum.categories.face.type10 import (
    TRANSACTION_SUFFIXES,
    FaceTransaction,
    is_transaction,
    read_face_transaction,
)
from prum.categories.interface import SubjectCategory
from prum.errors import InvalidRecord, PrumError

PROVENANCE_LENGTH = 200  # the provenance column of every category's records


@dataclass
class SourceReport:
    """What the sources held besides the items: for the enrolment report."""

    transactions: int = 0
    not_searched: int = 0  # profile and angled images, kept in the provenance only
    skipped_records: int = 0  # other record types, non-face Type-10 images
    notes: list[str] = field(default_factory=list)


def source_items(
    source: Path,
    *,
    category: SubjectCategory,
    provenance: str,
    settings: FaceSettings,
    profile: str | None = None,
    report: SourceReport | None = None,
) -> Iterator[PhotoItem]:
    """Items of a photo, a transaction, a CSV manifest or a folder (sorted, so that a
    resumed run sees the same order)."""
    report = report if report is not None else SourceReport()
    profile = profile or settings.type10_profile
    if source.is_dir():
        photos = {p.path: p for p in folder_items(source, category=category, provenance=provenance)}
        for path in sorted(source.rglob("*")):
            if path in photos:
                yield photos[path]
            elif path.suffix.lower() in TRANSACTION_SUFFIXES and path.is_file():
                key = str(path.relative_to(source))
                yield from transaction_items(
                    path, key, category, provenance, settings, profile, report
                )
        return
    kind = source_kind(source)
    if kind == "manifest":
        yield from manifest_items(source, category=category, provenance=provenance)
    elif kind == "transaction":
        yield from transaction_items(
            source, source.name, category, provenance, settings, profile, report
        )
    else:
        yield PhotoItem(
            path=source, source_key=source.name, category=category, provenance=provenance
        )


def source_kind(path: Path) -> str:
    """'transaction', 'photo' or 'manifest', by name and then by the first bytes."""
    suffix = path.suffix.lower()
    if suffix in TRANSACTION_SUFFIXES:
        return "transaction"
    if suffix in IMAGE_SUFFIXES:
        return "photo"
    if suffix == ".csv":
        return "manifest"
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError as exc:
        raise InvalidRecord(f"cannot read {path}: {exc.strerror}") from exc
    if is_transaction(head):
        return "transaction"
    if sniff_format(head) is not None:
        return "photo"
    raise InvalidRecord(
        f"{path} is neither a photo ({', '.join(sorted(IMAGE_SUFFIXES))}), an ANSI/NIST-ITL"
        f" transaction ({', '.join(sorted(TRANSACTION_SUFFIXES))}) nor a CSV manifest"
    )


def transaction_items(
    path: Path,
    key: str,
    category: SubjectCategory,
    provenance: str,
    settings: FaceSettings,
    profile: str,
    report: SourceReport,
) -> Iterator[PhotoItem]:
    """One item per frontal image of the transaction at ``path`` (or one refusal)."""
    report.transactions += 1
    try:
        data = path.read_bytes()
        # Header checks here, pixels once in the worker that embeds the face.
        tx = read_face_transaction(
            data,
            profile,
            use="enrol",
            max_pixels=settings.max_pixels,
            min_enrol_sap=settings.type10_min_enrol_sap,
            decode=False,
        )
    except OSError as exc:
        yield PhotoItem(path, key, refusal=("unreadable_file", str(exc)))
        return
    except PrumError as exc:
        yield PhotoItem(path, key, refusal=(exc.code, exc.message))
        return
    report.not_searched += len(tx.others)
    report.skipped_records += len(tx.skipped)
    report.notes.extend(f"{key}: {note}" for note in tx.skipped)
    for image in tx.frontal:
        yield PhotoItem(
            path=path,
            source_key=f"tcn:{tx.originating_agency}:{tx.control_number}:10.{image.idc:03d}",
            category=category,
            provenance=transaction_provenance(provenance, tx, image.idc),
            data=image.data,
        )


def transaction_provenance(provenance: str, tx: FaceTransaction, idc: int) -> str:
    """``national; TCN X (ORI Y) 10.001; not searched: 10.002 L, 10.003 R``."""
    text = f"{provenance}; TCN {tx.control_number} ({tx.originating_agency}) 10.{idc:03d}"
    if tx.others:
        text += "; not searched: " + ", ".join(f"10.{o.idc:03d} {o.pose}" for o in tx.others)
    return text if len(text) <= PROVENANCE_LENGTH else text[: PROVENANCE_LENGTH - 3] + "..."
