"""The comparison report of a decision: written on its first download and kept with
the case (node/web/report.py does the work)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from prum.errors import PrumError
from prum.federation.messages import Category
from prum.node import exchange
from prum.node.web import report, views
from prum.node.web.base import Bench, HtmlRoute, Investigator, RowId, decode_image

router = APIRouter(route_class=HtmlRoute)


@router.get("/searches/{search_id}/verifications/{verification_id}/report.pdf")
def comparison_report(
    bench: Bench, search_id: RowId, verification_id: RowId, user: Investigator
) -> Response:
    search = exchange.load_search(bench.node, search_id)
    kept = report.stored(bench.node, search_id, verification_id)
    if kept is None:
        kept = report.report_for(bench.node, search, verification_id, user.name, _images)
    bench.log(
        user,
        "report_issued",
        category=Category(search["category"]),
        case_reference=search["case_reference"],
        message_id=search["message_id"],
        reference=[kept.reference],
        detail=f"comparison report of decision {verification_id}, sha256 {kept.sha256}",
    )
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"report-{search_id}-{kept.reference}")[:120]
    return Response(
        kept.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )


def _images(search: dict[str, Any], candidate: dict[str, Any]) -> dict[str, bytes]:
    """The probe and the candidate of a face or fingerprint search, as stored (none
    once retention deleted them: the report then says what was decided, without them)."""
    probe = search.get("probe") or {}
    out: dict[str, bytes] = {}
    try:
        if search["category"] == Category.FACE.value and probe.get("image"):
            out["probe"] = decode_image(probe["image"])
        elif search["category"] == Category.FINGER.value and (
            probe.get("image") or probe.get("data")
        ):
            stored = decode_image(probe.get("image") or probe.get("data"))
            out["probe"] = views.finger_png(stored, str(probe.get("format", "image")))
        if candidate.get("image"):
            out["candidate"] = decode_image(candidate["image"])
    except PrumError:
        pass
    return out
