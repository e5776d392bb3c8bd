"""New search, results, side-by-side comparison, verification and the core-data
request: step 1 and the requesting half of step 2."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from prum.errors import BadInput, PrumError
from prum.messages import Category, Decision, Probe, Purpose
from prum.node import exchange, followup
from prum.node.core import Node
from prum.node.schema import requests_out, verifications
from prum.node.users import Role
from prum.offences import OFFENCES
from prum.transport import status_for
from prum.web import views
from prum.web.base import (
    PREFIX,
    Bench,
    Csrf,
    Examiner,
    HtmlRoute,
    Investigator,
    Officer,
    decode_image,
    page,
    read_upload,
)

router = APIRouter(route_class=HtmlRoute)

# Categories with a search form; the others are listed as coming (issue 4: they slot in
# as a form template and a branch of submit_search that builds their Probe).
FORMS = {Category.FACE: "face", Category.DNA: "DNA profile"}
COMING = {
    Category.FINGER: "fingerprints",
    Category.VEHICLE: "vehicle registration",
    Category.RECORDS: "police records",
}


async def search_page(
    request: Request, bench: Bench, category: Category, status: int = 200, **context: Any
) -> Response:
    context.setdefault("values", {})
    return page(
        request,
        "search.html",
        status,
        category=category.value,
        forms={c.value: label for c, label in FORMS.items()},
        coming=COMING.values(),
        purposes=[p.value for p in Purpose],
        offences=OFFENCES,
        parties=await _parties(bench.node, bench.http, category),
        **context,
    )


@router.get("/search")
async def new_search(
    request: Request, bench: Bench, user: Officer, category: Category = Category.FACE
) -> Response:
    if category not in FORMS:
        raise BadInput(f"the workbench has no {category.value} search form yet")
    return await search_page(request, bench, category)


@router.post("/search/preview", dependencies=[Csrf])
def preview(bench: Bench, user: Officer, image: Annotated[UploadFile, File()]) -> Response:
    """The faces of a dropped probe, with quality and refusal reasons (JSON for the page)."""
    return JSONResponse(views.probe_preview(bench.node.face_pipeline, read_upload(image)))


@router.post("/search", dependencies=[Csrf])
async def submit_search(
    request: Request,
    bench: Bench,
    user: Officer,
    category: Annotated[Category, Form()],
    purpose: Annotated[Purpose, Form()],
    offence: Annotated[str, Form(max_length=16)],
    max_penalty_months: Annotated[int, Form(ge=0, le=1200)],
    case_reference: Annotated[str, Form(min_length=1, max_length=200)],
    targets: Annotated[list[str] | None, Form()] = None,
    face_box: Annotated[str, Form(max_length=80)] = "",
    deadline_s: Annotated[int, Form(ge=1, le=900)] = 10,
    image: Annotated[UploadFile | None, File()] = None,
    profile_text: Annotated[str, Form(max_length=100_000)] = "",
    profile_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    values = {
        "purpose": purpose.value,
        "offence": offence,
        "max_penalty_months": max_penalty_months,
        "case_reference": case_reference,
        "targets": targets or [],
        "profile_text": profile_text,
        "deadline_s": deadline_s,
    }
    try:
        photo, probe = b"", None
        if category is Category.FACE:
            if image is None or not image.filename:
                raise BadInput("choose or drop a probe image")
            photo = read_upload(image)
        elif category is Category.DNA:
            profile = _dna_profile(profile_text, profile_file)
            probe = Probe(format="dna_profile", data=base64.b64encode(profile))
        else:
            raise BadInput(f"the workbench has no {category.value} search form yet")
        search_id = await exchange.send_search(
            bench.node,
            bench.http,
            user,
            exchange.SearchForm(
                category=category,
                purpose=purpose,
                offence=offence,
                max_penalty_months=max_penalty_months,
                case_reference=case_reference.strip(),
                image=photo,
                probe=probe,
                targets=[t for t in targets if t != "all"] if targets else None,
                face_box=_box(face_box),
                deadline_ms=deadline_s * 1000,
            ),
        )
    except PrumError as exc:
        bench.log(user, "refused", category=category, reason_code=exc.code[:64])
        return await search_page(
            request, bench, category, status_for(exc), error=exc, values=values
        )
    return RedirectResponse(f"{PREFIX}/searches/{search_id}", status_code=303)


# --- results and comparison ---------------------------------------------------------------


@router.get("/searches/{search_id}")
def results(request: Request, bench: Bench, search_id: int, user: Investigator) -> Response:
    search = exchange.load_search(bench.node, search_id)
    with bench.node.engine.connect() as conn:
        asked = conn.execute(select(requests_out).where(requests_out.c.search_id == search_id))
        requested = {(r.holder_party, r.reference): r for r in asked}
    return page(
        request,
        "results.html",
        search=search,
        replies=(search.get("reply") or {}).get("replies", []),
        decided=_decisions(bench.node, search_id),
        requested=requested,
    )


@router.get("/searches/{search_id}/probe")
def probe_image(bench: Bench, search_id: int, user: Investigator) -> Response:
    search = exchange.load_search(bench.node, search_id)
    data = decode_image((search.get("probe") or {}).get("image"))
    return Response(data, media_type="image/jpeg")


@router.get("/searches/{search_id}/candidates/{party}/{reference}/image")
def candidate_image(
    bench: Bench, search_id: int, party: str, reference: str, user: Investigator
) -> Response:
    search = exchange.load_search(bench.node, search_id)
    candidate = exchange.find_candidate(search, party, reference)
    return Response(decode_image(candidate.get("image")), media_type="image/jpeg")


@router.get("/searches/{search_id}/faces/probe.jpg")
def probe_face(bench: Bench, search_id: int, user: Examiner) -> Response:
    return Response(bench.face_of(search_id, "", "").jpeg, media_type="image/jpeg")


@router.get("/searches/{search_id}/faces/candidate.jpg")
def candidate_face(
    bench: Bench, search_id: int, user: Examiner, party: str, reference: str
) -> Response:
    if not party:
        raise BadInput("name the candidate's party")
    return Response(bench.face_of(search_id, party, reference).jpeg, media_type="image/jpeg")


@router.get("/searches/{search_id}/candidates/{party}/{reference}")
def compare(
    request: Request,
    bench: Bench,
    search_id: int,
    party: str,
    reference: str,
    user: Investigator,
) -> Response:
    search = exchange.load_search(bench.node, search_id)
    candidate = exchange.find_candidate(search, party, reference)
    history = _decisions(bench.node, search_id).get((party, reference), [])
    faces: dict[str, Any] = {}
    problem = None
    if Role.EXAMINER in user.roles and search["category"] == Category.FACE.value:
        try:
            faces = {
                name: {k: v for k, v in vars(view).items() if k != "jpeg"}
                for name, view in (
                    ("probe", bench.face_of(search_id, "", "")),
                    ("candidate", bench.face_of(search_id, party, reference)),
                )
            }
        except PrumError as exc:
            problem = exc.message
    with bench.node.engine.connect() as conn:
        asked = conn.execute(
            select(requests_out).where(
                requests_out.c.search_id == search_id,
                requests_out.c.holder_party == party,
                requests_out.c.reference == reference,
            )
        ).first()
    return page(
        request,
        "compare.html",
        search=search,
        holder=party,
        candidate=candidate,
        history=history,
        latest=history[-1] if history else None,
        faces=faces,
        face_problem=problem,
        asked=asked,
        decisions=[d.value for d in Decision],
        offence_list=list(OFFENCES.items()),
    )


@router.post("/searches/{search_id}/verifications", dependencies=[Csrf])
def verify(
    bench: Bench,
    search_id: int,
    user: Examiner,
    party: Annotated[str, Form(max_length=8)],
    reference: Annotated[str, Form(max_length=40)],
    decision: Annotated[Decision, Form()],
    justification: Annotated[str, Form(max_length=4000)],
) -> Response:
    followup.verify_candidate(
        bench.node,
        user,
        search_id,
        party=party,
        reference=reference,
        decision=decision,
        justification=justification,
    )
    return RedirectResponse(
        f"{PREFIX}/searches/{search_id}/candidates/{party}/{reference}#decisions",
        status_code=303,
    )


@router.post("/searches/{search_id}/core-data", dependencies=[Csrf])
def ask_core_data(
    bench: Bench,
    search_id: int,
    user: Investigator,
    party: Annotated[str, Form(max_length=8)],
    reference: Annotated[str, Form(max_length=40)],
    facts: Annotated[str, Form(max_length=8000)],
    offence: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    followup.request_core_data(
        bench.node,
        user,
        search_id,
        party=party,
        reference=reference,
        facts=facts.strip(),
        offence=offence or None,
    )
    bench.wake.set()
    return RedirectResponse(f"{PREFIX}/requests", status_code=303)


# --- helpers ----------------------------------------------------------------------------


def _box(text: str) -> list[int] | None:
    if not text.strip():
        return None
    try:
        box = [int(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise BadInput("a face box is four integers: left,top,right,bottom")
    return box


def _dna_profile(text: str, upload: UploadFile | None) -> bytes:
    """The profile as DNA matchers read it (JSON), from pasted JSON or CSV or a file;
    validated here (2008/616 Annex rules) so a bad profile never travels."""
    from prum.dna.loci import LocusSet
    from prum.dna.profile import parse_profile

    raw: bytes | str = text
    if upload is not None and upload.filename:
        raw = read_upload(upload)
    if not raw.strip():
        raise BadInput("paste a DNA profile (JSON or CSV) or choose a file")
    return parse_profile(raw, loci=LocusSet("prum")).to_json()


async def _parties(node: Node, http: httpx.AsyncClient, category: Category) -> list[str]:
    """Parties offering ``category``, from the router's directory; [] if it cannot be
    read (the search then goes to "all", and the router resolves it)."""
    try:
        response = await http.get(f"{node.config.router_url}/v1/directory", timeout=5)
        entries = response.json()["parties"] if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []
    return [
        str(e["party"])
        for e in entries
        if e.get("party") != node.party and category.value in e.get("offers", [])
    ]


def _decisions(node: Node, search_id: int) -> dict[tuple[str, str], list[Any]]:
    """Every examiner decision of a search, per (party, reference), oldest first."""
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(verifications)
            .where(verifications.c.search_id == search_id)
            .order_by(verifications.c.id)
        ).all()
    out: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        out.setdefault((row.party, row.reference), []).append(row)
    return out
