"""The comparison report of an examiner's decision (PDF, for the case file): both
samples, the scores, the one strength statement and its basis, who decided what, when
and why, and the audit entries of the search with their hashes as chain of custody.

Written once per decision, on its first download, and kept in ``node_reports`` with
its SHA-256: a later download returns the same document, however the page changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from prum.audit.log import LogEntry
from prum.errors import UnknownReference
from prum.node.core import Node, utcnow
from prum.node.schema import reports, verifications
from prum.node.web import evidence, views

# Audit entries listed at most (a bulk comparison's search has a handful; a cap keeps a
# pathological case from making a report of thousands of pages).
MAX_ENTRIES = 200


@dataclass(frozen=True)
class Report:
    reference: str
    pdf: bytes
    sha256: str
    created_at: dt.datetime
    created_by: str


def custody(node: Node, search: dict[str, Any], reference: str) -> list[LogEntry]:
    """The audit entries of this search (sent, answered) and of this candidate (verified,
    requested, released ...), oldest first."""
    found = node.audit.entries(case_reference=search["case_reference"], limit=1000)
    mine = [
        e
        for e in found
        if e.event.message_id == search["message_id"] or reference in (e.event.reference or [])
    ]
    return sorted(mine, key=lambda e: e.seq)[:MAX_ENTRIES]


def stored(node: Node, search_id: int, verification_id: int) -> Report | None:
    with node.engine.connect() as conn:
        row = conn.execute(
            select(reports).where(
                reports.c.verification_id == verification_id, reports.c.search_id == search_id
            )
        ).first()
    if row is None:
        return None
    return Report(row.reference, bytes(row.pdf), row.sha256, row.created_at, row.created_by)


def report_for(
    node: Node,
    search: dict[str, Any],
    verification_id: int,
    user: str,
    images: Callable[[dict[str, Any], dict[str, Any]], dict[str, bytes]],
) -> Report:
    """The stored report of a decision, written and kept first if there is none."""
    kept = stored(node, search["id"], verification_id)
    if kept is not None:
        return kept
    with node.engine.connect() as conn:
        decision = conn.execute(
            select(verifications).where(
                verifications.c.id == verification_id,
                verifications.c.search_id == search["id"],
            )
        ).first()
    if decision is None:
        raise UnknownReference(f"search {search['id']} has no decision {verification_id}")
    from prum.node import exchange

    candidate = exchange.find_candidate(search, decision.party, decision.reference)
    entries = custody(node, search, decision.reference)
    now = utcnow()
    pictures = images(search, candidate)
    pdf = render(node.party, search, candidate, decision, entries, pictures, user, now)
    digest = hashlib.sha256(pdf).hexdigest()
    try:
        with node.engine.begin() as conn:
            conn.execute(
                insert(reports).values(
                    verification_id=verification_id,
                    search_id=search["id"],
                    party=decision.party,
                    reference=decision.reference,
                    created_at=now,
                    created_by=user,
                    sha256=digest,
                    pdf=pdf,
                )
            )
    except IntegrityError:  # written by a concurrent download: that one is the record
        again = stored(node, search["id"], verification_id)
        if again is not None:
            return again
        raise
    return Report(decision.reference, pdf, digest, now, user)


def render(
    party: str,
    search: dict[str, Any],
    candidate: dict[str, Any],
    decision: Any,
    entries: list[LogEntry],
    images: dict[str, bytes],
    user: str,
    now: dt.datetime,
) -> bytes:
    """The PDF (reportlab's platypus: paragraphs, tables and images flow over pages)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=7, leading=9)
    # A hash on one line: 64 characters of Courier at 6 pt are 81 mm wide.
    digest = styles["Code"].clone("digest", fontSize=6, leading=8, leftIndent=0)

    def text(value: Any, style: Any = body) -> Paragraph:
        escaped = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return Paragraph(escaped.replace("\n", "<br/>"), style)

    def grid(rows: list[list[Any]], widths: list[float], head: bool = False) -> Table:
        table = Table(rows, colWidths=widths, repeatRows=1 if head else 0)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("FONTSIZE", (0, 0), (-1, -1), 8),
                    *([("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)] if head else []),
                ]
            )
        )
        return table

    holder, reference = decision.party, decision.reference
    flow: list[Any] = [
        Paragraph(f"Comparison report: {party} search {search['id']}", styles["Title"]),
        text(
            f"Case {search['case_reference']} · request {search['request_number']} ·"
            f" {search['category']} · {str(search['purpose']).replace('_', ' ')}"
            + (f" · offence {views.offence_name(search['offence'])}" if search["offence"] else "")
        ),
        Spacer(1, 4 * mm),
        Paragraph("Candidate", styles["Heading2"]),
    ]
    facts: list[list[Any]] = [
        ["Holder", holder],
        ["Reference", reference],
        ["Score", f"{float(candidate['score']):.3f} (distance {float(candidate['distance']):.3f})"],
    ]
    strength = evidence.strength(candidate)
    if strength is not None:
        facts.append(["Strength", text(strength.headline)])
        facts.append(["Basis", text(f"{strength.basis}; {evidence.SCALE}", small)])
    details = candidate.get("details") or {}
    if details.get("kind") == "dna":
        facts.append(["DNA", text(_dna_words(details))])
    if details.get("kind") == "finger" and details.get("matched_minutiae") is not None:
        facts.append(["Matched minutiae", str(details["matched_minutiae"])])
    facts.append(["Provenance", text(candidate.get("provenance") or "")])
    flow.append(grid([[k, v] for k, v in facts], [35 * mm, 135 * mm]))
    pictures = [
        (label, data)
        for label, data in (("Probe", images.get("probe")), ("Candidate", images.get("candidate")))
        if data
    ]
    if pictures:
        flow += [Spacer(1, 3 * mm), Paragraph("Samples compared", styles["Heading2"])]
        cells = []
        for label, data in pictures:
            picture = Image(io.BytesIO(data))
            scale = min(80 * mm / picture.imageWidth, 80 * mm / picture.imageHeight)
            picture.drawWidth, picture.drawHeight = (
                picture.imageWidth * scale,
                picture.imageHeight * scale,
            )
            cells.append([picture, text(label, small)])
        flow.append(Table([[c[0] for c in cells], [c[1] for c in cells]]))
    if details.get("kind") == "dna":
        probe = evidence.dna_probe(search, candidate)
        rows = views.dna_rows(probe["loci"], details)
        flow += [Spacer(1, 3 * mm), Paragraph("Both profiles, locus by locus", styles["Heading2"])]
        flow.append(
            grid(
                [["Locus", probe["label"], "Candidate", "Comparison"]]
                + [
                    [
                        r["locus"],
                        ", ".join(r["probe"] or []) or "-",
                        ", ".join(r["candidate"] or []) or "-",
                        r["state"],
                    ]
                    for r in rows
                ],
                [35 * mm, 45 * mm, 45 * mm, 45 * mm],
                head=True,
            )
        )
    flow += [
        Spacer(1, 3 * mm),
        Paragraph("Decision", styles["Heading2"]),
        grid(
            [
                ["Outcome", decision.decision],
                ["Examiner", decision.user],
                ["Decided at", f"{views.aware(decision.decided_at):%Y-%m-%d %H:%M:%S %Z}"],
                ["Justification", text(decision.justification)],
            ],
            [35 * mm, 135 * mm],
        ),
        Spacer(1, 3 * mm),
        Paragraph("Chain of custody: audit entries", styles["Heading2"]),
        text(
            "Each entry of this node's audit chain that concerns this search or candidate,"
            " with its sequence number and hash; `prum audit verify` checks the chain.",
            small,
        ),
        grid(
            [["Entry", "Recorded (UTC)", "Kind", "Hash (SHA-256)"]]
            + [
                [
                    str(e.seq),
                    e.recorded_at.isoformat(timespec="seconds"),
                    e.event.kind,
                    text(e.hash, digest),
                ]
                for e in entries
            ],
            [12 * mm, 38 * mm, 34 * mm, 86 * mm],
            head=True,
        ),
        Spacer(1, 3 * mm),
        text(
            f"Written by {party}'s node for {user} at {now.isoformat(timespec='seconds')}."
            " A list of candidates is not an identification: this report records one"
            " examiner's comparison and decision.",
            small,
        ),
    ]
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Comparison report {party} search {search['id']} {holder} {reference}",
        author=f"{party} node",
        invariant=1,
    ).build(flow)
    return buffer.getvalue()


def _dna_words(details: dict[str, Any]) -> str:
    matching, compared = (
        len(details.get("matching_loci") or []),
        len(details.get("compared_loci") or []),
    )
    if details.get("match") == "match":
        return (
            f"match: {matching} of {compared} compared loci;"
            f" {views.rmp_words(float(details['random_match_probability']))}"
        )
    odd = ", ".join(details.get("mismatched_loci") or [])
    return (
        f"near match: one allele differs at {odd}; {matching} of {compared} compared loci"
        " match; no random match probability is given for a near match"
    )
