"""New search, results, side-by-side comparison, verification and the core-data
request: step 1 and the requesting half of step 2."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import secrets
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from prum.errors import BadInput, PrumError
from prum.federation.messages import Category, Decision, Probe, Purpose, VehicleQuery
from prum.federation.offences import OFFENCES
from prum.federation.transport import status_for
from prum.node import exchange, followup, verdicts
from prum.node.core import Node, validated
from prum.node.schema import requests_out, verifications
from prum.node.users import Role
from prum.node.web import evidence, i18n, labels, views
from prum.node.web.base import (
    PREFIX,
    Bench,
    Csrf,
    Examiner,
    HtmlRoute,
    Investigator,
    Officer,
    RowId,
    decode_image,
    page,
    read_upload,
)

router = APIRouter(route_class=HtmlRoute)

# Categories with a search form (a form template and a branch of submit_search that
# builds their Probe); COMING lists any category still without one.
FORMS = {
    Category.FACE: "face",
    Category.DNA: "DNA profile",
    Category.FINGER: "fingerprints",
    Category.VEHICLE: "vehicle registration",
    Category.RECORDS: "police records",
}
COMING: dict[Category, str] = {}
FINGER_SEARCH_TYPES = views.FINGER_SEARCH_TYPES
NIST_SUFFIXES = (".an2", ".nist", ".eft")
# Form keys remembered against double submission (a few hours of a busy node's searches).
KEPT_SUBMISSIONS = 2000
GENDERS = {"": "unknown", "F": "female", "M": "male", "X": "other"}


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
        search_types=FINGER_SEARCH_TYPES,
        genders=GENDERS,
        submission=secrets.token_urlsafe(16),  # one search per form sent (submit_search)
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
    case_reference: Annotated[str, Form(min_length=1, max_length=200)],
    # Criminal-offence searches only (missing persons and remains name no offence).
    offence: Annotated[str, Form(max_length=16)] = "",
    max_penalty_months: Annotated[int | None, Form(ge=0, le=1200)] = None,
    targets: Annotated[list[str] | None, Form()] = None,
    face_box: Annotated[str, Form(max_length=80)] = "",
    deadline_s: Annotated[int, Form(ge=1, le=900)] = 10,
    image: Annotated[UploadFile | None, File()] = None,
    profile_text: Annotated[str, Form(max_length=100_000)] = "",
    profile_file: Annotated[UploadFile | None, File()] = None,
    finger_file: Annotated[UploadFile | None, File()] = None,
    search_type: Annotated[str, Form(max_length=8)] = "",
    way: Annotated[str, Form(max_length=8)] = "plate",
    plate: Annotated[str, Form(max_length=40)] = "",
    registration_country: Annotated[str, Form(max_length=8)] = "",
    vin: Annotated[str, Form(max_length=40)] = "",
    vin_legacy: Annotated[str, Form(max_length=8)] = "",
    holder_surname: Annotated[str, Form(max_length=200)] = "",
    holder_first_names: Annotated[str, Form(max_length=200)] = "",
    holder_date_of_birth: Annotated[str, Form(max_length=10)] = "",
    at: Annotated[str, Form(max_length=10)] = "",
    surnames: Annotated[str, Form(max_length=400)] = "",
    first_names: Annotated[str, Form(max_length=400)] = "",
    aliases: Annotated[str, Form(max_length=4000)] = "",
    date_of_birth: Annotated[str, Form(max_length=10)] = "",
    place_of_birth: Annotated[str, Form(max_length=200)] = "",
    country_of_birth: Annotated[str, Form(max_length=8)] = "",
    nationalities: Annotated[str, Form(max_length=40)] = "",
    gender: Annotated[str, Form(max_length=1)] = "",
    submission: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Check and record the search, send it in the background and answer at once with
    its live page. A form sent twice (a double click) is one search: the second
    answer is the first one's."""
    key = (user.name, submission)
    first = bench.submissions.get(key) if submission else None
    if first is not None:
        outcome = await asyncio.shield(first)
        if isinstance(outcome, int):
            return RedirectResponse(f"{PREFIX}/searches/{outcome}", status_code=303)
        return await search_page(request, bench, category, status_for(outcome), error=outcome)
    done: asyncio.Future[int | PrumError] = asyncio.get_running_loop().create_future()
    if submission:
        bench.submissions[key] = done
        while len(bench.submissions) > KEPT_SUBMISSIONS:
            bench.submissions.popitem(last=False)
    typed = {
        "search_type": search_type,
        "way": way,
        "plate": plate,
        "registration_country": registration_country,
        "vin": vin,
        "vin_legacy": bool(vin_legacy),
        "holder_surname": holder_surname,
        "holder_first_names": holder_first_names,
        "holder_date_of_birth": holder_date_of_birth,
        "at": at,
        "surnames": surnames,
        "first_names": first_names,
        "aliases": aliases,
        "date_of_birth": date_of_birth,
        "place_of_birth": place_of_birth,
        "country_of_birth": country_of_birth,
        "nationalities": nationalities,
        "gender": gender,
    }
    values = {
        "purpose": purpose.value,
        "offence": offence,
        "max_penalty_months": max_penalty_months,
        "case_reference": case_reference,
        "targets": targets or [],
        "profile_text": profile_text,
        "deadline_s": deadline_s,
        **typed,
    }
    chosen = [t for t in targets if t != "all"] if targets else None
    try:
        photo, probe, kind = b"", None, None
        if category is Category.FACE:
            if image is None or not image.filename:
                raise BadInput("choose or drop a probe image")
            photo = read_upload(image)
        elif category is Category.DNA:
            profile = _dna_profile(profile_text, profile_file)
            probe = Probe(format="dna_profile", data=base64.b64encode(profile))
        elif category is Category.FINGER:
            if search_type not in FINGER_SEARCH_TYPES:
                raise BadInput(f"choose the search type: one of {', '.join(FINGER_SEARCH_TYPES)}")
            probe, kind = _finger_probe(finger_file), search_type
        elif category is Category.VEHICLE:
            probe, forced = _vehicle_probe(typed)
            chosen = forced if forced is not None else chosen
        elif category is Category.RECORDS:
            probe = _records_probe(bench.node, typed)
        else:  # pragma: no cover - every Category has a form
            raise BadInput(f"the workbench has no {category.value} search form yet")
        outgoing = exchange.begin_search(
            bench.node,
            user,
            exchange.SearchForm(
                category=category,
                purpose=purpose,
                offence=offence or None,
                max_penalty_months=max_penalty_months,
                case_reference=case_reference.strip(),
                image=photo,
                probe=probe,
                targets=chosen,
                face_box=_box(face_box),
                deadline_ms=deadline_s * 1000,
                search_type=kind,
            ),
        )
    except PrumError as exc:
        bench.log(user, "refused", category=category, reason_code=exc.code[:64])
        done.set_result(exc)
        bench.submissions.pop(key, None)  # a corrected form may be sent again
        return await search_page(
            request, bench, category, status_for(exc), error=exc, values=values
        )
    done.set_result(outgoing.search_id)
    bench.in_background(exchange.deliver(bench.node, bench.http, outgoing, live=True))
    return RedirectResponse(f"{PREFIX}/searches/{outgoing.search_id}", status_code=303)


# --- results and comparison ---------------------------------------------------------------


@router.get("/searches/{search_id}")
def results(request: Request, bench: Bench, search_id: RowId, user: Investigator) -> Response:
    search = exchange.load_search(bench.node, search_id)
    with bench.node.engine.connect() as conn:
        asked = conn.execute(select(requests_out).where(requests_out.c.search_id == search_id))
        requested = {(r.holder_party, r.reference): r for r in asked}
    return page(
        request,
        "results.html",
        search=search,
        live=live_status(search),
        countries=countries(search),
        replies=(search.get("reply") or {}).get("replies", []),
        probe_profile=views.probe_profile(search.get("probe")),
        decided=verdicts.visible(bench.node, user, _decisions(bench.node, search_id)),
        requested=requested,
    )


@router.get("/searches/{search_id}/progress")
def progress(request: Request, bench: Bench, search_id: RowId, user: Investigator) -> Response:
    """Each country's status while the search runs (JSON for the live page's script),
    its words in the officer's language."""
    search = exchange.load_search(bench.node, search_id)
    chosen = i18n.current.set(i18n.chosen(request))
    try:
        rows = countries(search)
    finally:
        i18n.current.reset(chosen)
    return JSONResponse(
        {"status": live_status(search), "countries": rows},
        headers={"Cache-Control": "no-store"},
    )


def live_status(search: dict[str, Any]) -> str:
    """``sent`` while answers may still come; ``lost`` for a search still marked sent
    long after its deadline (the node stopped while it waited)."""
    if search["status"] != "sent":
        return str(search["status"])
    deadline_ms = int((search.get("reply") or {}).get("deadline_ms") or 900_000)
    waited = (dt.datetime.now(dt.UTC) - _aware(search["created_at"])).total_seconds()
    return "lost" if waited > deadline_ms / 1000 + 60 else "sent"


def countries(search: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per country: from the answer, or from the progress while it runs."""
    reply = search.get("reply") or {}
    if reply.get("replies"):
        rows = reply["replies"]
    else:
        rows = [{"party": party, **step} for party, step in reply.get("progress", {}).items()]
    return [
        {
            "party": r["party"],
            "status": r["status"],
            "label": labels.label(r["status"]),
            "candidates": r.get("candidates_purged", r.get("candidates")),
            "duration_ms": r.get("duration_ms"),
        }
        for r in rows
    ]


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)  # SQLite drops the zone


@router.get("/searches/{search_id}/probe")
def probe_image(bench: Bench, search_id: RowId, user: Investigator) -> Response:
    search = exchange.load_search(bench.node, search_id)
    probe = search.get("probe") or {}
    if search["category"] == Category.FINGER.value:
        stored = probe.get("image") or probe.get("data")
        png = views.finger_png(decode_image(stored), str(probe.get("format", "image")))
        return Response(png, media_type="image/png")
    data = decode_image(probe.get("image"))
    return Response(data, media_type=views.image_type(data))


@router.get("/searches/{search_id}/candidates/{party}/{reference}/image")
def candidate_image(
    bench: Bench, search_id: RowId, party: str, reference: str, user: Investigator
) -> Response:
    search = exchange.load_search(bench.node, search_id)
    candidate = exchange.find_candidate(search, party, reference)
    data = decode_image(candidate.get("image"))
    return Response(data, media_type=views.image_type(data))


@router.get("/searches/{search_id}/candidates/{party}/{reference}/type10")
def candidate_type10(
    bench: Bench, search_id: RowId, party: str, reference: str, user: Investigator
) -> Response:
    """A face candidate as an ANSI/NIST-ITL transaction (Type-1, Type-2, Type-10) for
    the systems police already run: the holder as ORI, the reference as TCN, this
    search's request number as TCR, our quality components in 10.024."""
    from prum.categories.face.type10_write import candidate_transaction

    search = exchange.load_search(bench.node, search_id)
    if search["category"] != Category.FACE.value:
        raise BadInput("only face candidates are written as Type-10 records")
    candidate = exchange.find_candidate(search, party, reference)
    data = decode_image(candidate.get("image"))
    body = candidate_transaction(
        data,
        reference=reference,
        quality=views.face_quality(bench.node.face_pipeline, data),
        quality_overall=candidate.get("quality"),
        originating_agency=party,
        probe_control=search.get("request_number"),
    )
    # The reference comes from another country: only safe characters reach the header.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{search_id}-{party}-{reference}")[:120] + ".an2"
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/searches/{search_id}/faces/probe.jpg")
def probe_face(bench: Bench, search_id: RowId, user: Examiner) -> Response:
    return Response(bench.face_of(search_id, "", "").jpeg, media_type="image/jpeg")


@router.get("/searches/{search_id}/faces/candidate.jpg")
def candidate_face(
    bench: Bench, search_id: RowId, user: Examiner, party: str, reference: str
) -> Response:
    if not party:
        raise BadInput("name the candidate's party")
    return Response(bench.face_of(search_id, party, reference).jpeg, media_type="image/jpeg")


@router.get("/searches/{search_id}/candidates/{party}/{reference}")
def compare(
    request: Request,
    bench: Bench,
    search_id: RowId,
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
    standing = verdicts.standing(bench.node, search_id, party, reference)
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
        latest=standing.latest,
        standing=standing,
        blind=standing.blind_for(user),
        faces=faces,
        face_problem=problem,
        nav=evidence.neighbours(search, party, reference),
        pairs=evidence.minutiae_pairs(candidate),
        asked=asked,
        decisions=[d.value for d in Decision],
        offence_list=list(OFFENCES.items()),
    )


@router.post("/searches/{search_id}/verifications", dependencies=[Csrf])
def verify(
    bench: Bench,
    search_id: RowId,
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
    search_id: RowId,
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
    from prum.categories.dna.formats import parse_profile
    from prum.categories.dna.loci import LocusSet

    raw: bytes | str = text
    if upload is not None and upload.filename:
        raw = read_upload(upload)
    if not raw.strip():
        raise BadInput("paste a DNA profile (JSON or CSV) or choose a file")
    return parse_profile(raw, loci=LocusSet("prum")).to_json()


def _finger_probe(upload: UploadFile | None) -> Probe:
    """An ANSI/NIST-ITL transaction (by its name or its first bytes) or one fingerprint
    image; exchange.check_probe reads it before it travels."""
    if upload is None or not upload.filename:
        raise BadInput(
            "choose an ANSI/NIST-ITL transaction (.an2, .nist, .eft) or a fingerprint image"
        )
    data = read_upload(upload)
    nist = upload.filename.lower().endswith(NIST_SUFFIXES) or data[:6] == b"1.001:"
    return Probe(format="ansi_nist" if nist else "image", data=base64.b64encode(data))


def _date(text: str, what: str) -> dt.date | None:
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{what} {text.strip()!r} is not a date (YYYY-MM-DD)") from None


def _vehicle_probe(typed: dict[str, Any]) -> tuple[Probe, list[str] | None]:
    """A vehicle query by plate (to its registration country only), by VIN (one or every
    country) or by holder; the targets it forces (a plate), else None."""
    from prum.categories.vehicle.normalise import plate_key
    from prum.categories.vehicle.vin import validate_vin

    when = _date(typed["at"], "the date")
    way = typed["way"]
    if way == "plate":
        plate = str(typed["plate"]).strip()
        country = str(typed["registration_country"]).strip().upper()
        if not plate:
            raise BadInput("type the registration number (plate)")
        if not country:
            raise BadInput("a plate search goes to one country: choose the registration country")
        key = plate_key(plate)
        query = {"plate": plate if len(plate) <= 20 else key, "at": when}
        forced: list[str] | None = [country]
    elif way == "vin":
        if not str(typed["vin"]).strip():
            raise BadInput("type the vehicle identification number (VIN)")
        query = {"vin": validate_vin(typed["vin"], legacy=bool(typed["vin_legacy"])), "at": when}
        forced = None
    elif way == "holder":
        if not str(typed["holder_surname"]).strip():
            raise BadInput("a search by holder needs the holder's surname")
        query = {
            "holder_surname": typed["holder_surname"],
            "holder_first_names": str(typed["holder_first_names"]).strip() or None,
            "holder_date_of_birth": _date(typed["holder_date_of_birth"], "the date of birth"),
            "at": when,
        }
        forced = None
    else:
        raise BadInput("search a vehicle by plate, by VIN or by holder")
    vehicle = validated(VehicleQuery, query)
    return Probe(format="vehicle_query", vehicle=vehicle), forced


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _records_probe(node: Node, typed: dict[str, Any]) -> Probe:
    """The clear data typed, validated, then pseudonymised by this node (records key):
    only keyed hashes and a Bloom filter of name bigrams leave it."""
    from prum.categories.records.person import person_from_dict

    person = {
        "surnames": _names(typed["surnames"]),
        "first_names": _names(typed["first_names"]),
        "aliases": [a.strip() for a in str(typed["aliases"]).splitlines() if a.strip()],
        "date_of_birth": str(typed["date_of_birth"]).strip() or None,
        "place_of_birth": str(typed["place_of_birth"]).strip() or None,
        "country_of_birth": str(typed["country_of_birth"]).strip().upper() or None,
        "nationalities": [n.upper() for n in _names(typed["nationalities"].replace(" ", ","))],
        "gender": typed["gender"] or None,
    }
    person_from_dict(person)  # InvalidPerson with the reason, before the key is used
    return node.records_query(person)


async def _parties(node: Node, http: httpx.AsyncClient, category: Category) -> list[str] | None:
    """Parties offering ``category``, from the router's directory; None if it cannot be
    read (the search then goes to "all", and the router resolves it)."""
    try:
        response = await http.get(f"{node.config.router_url}/v1/directory", timeout=5)
        entries = response.json()["parties"] if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    if entries is None:
        return None
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
