"""Type-10 faces over the real federation (a router and two node processes, mutual TLS):
DE enrols a mugshot collection exported as ANSI/NIST-ITL transactions; AT searches with
a different photo of one of them, sent as a Type-10 transaction from its workbench and
from the national API; DE's answer puts the mate first; AT's examiner downloads the
candidate as a Type-10 transaction that the strict INT-I reader accepts."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from prum.categories.face.bulk import PhotoResult, enrol_photos
from prum.categories.face.sources import SourceReport, source_items
from prum.categories.face.type10 import read_face_transaction
from prum.categories.face.type10_write import FaceToWrite, write_face_transaction
from prum.categories.interface import SubjectCategory
from prum.demo.processes import Federation, Layout, lay_out
from prum.federation.messages import Category
from prum.node.core import Node
from prum.node.users import Role, add_user

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

PARTIES = ["AT", "DE"]
USERS = {"olga": Role.OFFICER, "eric": Role.EXAMINER}
GROUNDS = {
    "purpose": "investigation",
    "offence": "1500 00",
    "max_penalty_months": "60",
    "case_reference": "AT-2026-T10",
    "deadline_s": "90",  # the first search loads every node's models
}


def password(party: str) -> str:
    return f"type10-{party.lower()}-password"


def _choose_probe(embedded: list[PhotoResult]) -> tuple[dict[str, list[PhotoResult]], PhotoResult]:
    """The collection (first photo of each person with two or more, a second photo as a
    left profile) and a probe: another photo of one of them whose nearest enrolled
    template is its mate (the model's own limits are tested elsewhere; here the format)."""
    people: dict[str, list[PhotoResult]] = {}
    for r in embedded:
        people.setdefault(r.item.identity or "", []).append(r)
    people = {k: v for k, v in people.items() if len(v) >= 3}
    enrolled = [(k, v[0]) for k, v in sorted(people.items())]
    matrix = np.stack([r.vector for _, r in enrolled if r.vector is not None])
    for identity, photos in sorted(people.items()):
        for probe in photos[2:]:
            assert probe.vector is not None
            nearest = int(np.argmin(np.linalg.norm(matrix - probe.vector, axis=1)))
            if enrolled[nearest][0] == identity:
                return people, probe
    raise AssertionError("no sample person has a photo that finds its mate")


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, embedded: list[PhotoResult]
) -> tuple[Layout, PhotoResult, dict[str, list[PhotoResult]]]:
    root = tmp_path_factory.mktemp("type10")
    layout = lay_out(root / "federation", PARTIES, outbox_retry_seconds=0.2)
    people, probe = _choose_probe(embedded)
    export = root / "de-export"
    export.mkdir()
    for number, (_identity, photos) in enumerate(sorted(people.items())):
        faces = [FaceToWrite(photos[0].item.path.read_bytes(), pose="F", sap=30)]
        faces.append(FaceToWrite(photos[1].item.path.read_bytes(), pose="L", sap=30))
        body = write_face_transaction(
            faces, control_number=f"DE-MUG-{number:04d}", originating_agency="DEBKA0000"
        )
        (export / f"{number:04d}.an2").write_bytes(body)
    for party in PARTIES:
        node = Node(layout.config(party))
        for name, role in USERS.items():
            add_user(node.engine, name, password(party), {role})
        if party == "DE":
            gallery = node.matcher(Category.FACE).gallery  # type: ignore[attr-defined]
            found = SourceReport()
            items = source_items(
                export,
                category=SubjectCategory.CONVICTED,
                provenance="DE mugshots",
                settings=gallery.settings.face,
                report=found,
            )
            report = enrol_photos(gallery, items, workers=1)
            assert report.enrolled >= len(people) - report.refused_total
            assert found.not_searched == len(people)  # the profile images: kept, not searched
        node.close()
    return layout, probe, people


@pytest.fixture(scope="module")
def federation(
    setup: tuple[Layout, PhotoResult, dict[str, list[PhotoResult]]],
) -> Iterator[Federation]:
    with Federation(setup[0]) as running:
        running.start_all()
        yield running


def _probe_transaction(probe: PhotoResult) -> bytes:
    # A CCTV still: acquisition profile 1, allowed for a probe by INT-I.
    face = FaceToWrite(probe.item.path.read_bytes(), pose="F", sap=1)
    return write_face_transaction([face], control_number="AT-CCTV-0001", originating_agency="ATBK")


@contextlib.contextmanager
def _workbench(layout: Layout, party: str, user: str) -> Iterator[httpx.Client]:
    """A logged-in workbench session (cookie), as a browser has it."""
    with httpx.Client(base_url=layout.parties[party].api_url, timeout=180) as client:
        page = client.get("/workbench/login")
        client.post(
            "/workbench/login",
            data={"username": user, "password": password(party), "csrf_token": _token(page.text)},
        )
        yield client


def _token(html: str) -> str:
    found = re.search(r'name="csrf(?:_token|-token)"\s+(?:value|content)="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _answer_of(layout: Layout, search_id: int, party: str) -> dict[str, Any]:
    """The party's answer to a search, once it has come."""
    deadline = time.monotonic() + 120
    with httpx.Client(
        base_url=layout.parties["AT"].api_url, auth=("olga", password("AT")), timeout=60
    ) as api:
        search: dict[str, Any] = {}
        while time.monotonic() < deadline:
            search = api.get(f"/api/searches/{search_id}").json()
            for reply in search.get("replies", []):
                if reply["party"] == party and reply.get("candidates"):
                    return dict(reply)
            time.sleep(0.5)
    replies = [{k: v for k, v in r.items() if k != "candidates"} for r in search.get("replies", [])]
    raise AssertionError(f"{party} gave no candidates for search {search_id}: {replies}")


def _mate(people: dict[str, list[PhotoResult]], probe: PhotoResult) -> bytes:
    return people[probe.item.identity or ""][0].item.path.read_bytes()


def test_a_type10_probe_from_the_workbench_finds_its_mate_first_and_downloads_as_type10(
    federation: Federation, setup: tuple[Layout, PhotoResult, dict[str, list[PhotoResult]]]
) -> None:
    layout, probe, people = setup
    tx = _probe_transaction(probe)
    with _workbench(layout, "AT", "olga") as officer:
        form = officer.get("/workbench/search", params={"category": "face"})
        token = _token(form.text)
        preview = officer.post(
            "/workbench/search/preview",
            files={"image": ("cctv.an2", tx, "application/octet-stream")},
            data={"csrf_token": token},
            headers={"X-CSRF-Token": token},
        )
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        assert shown["error"] is None and shown["image"].startswith("data:image/")
        assert "AT-CCTV-0001" in shown["transaction"]
        sent = officer.post(
            "/workbench/search",
            files={"image": ("cctv.an2", tx, "application/octet-stream")},
            data={"category": "face", "targets": "DE", "csrf_token": token, **GROUNDS},
        )
        assert sent.status_code == 303, sent.text[:2000]
        search_id = int(sent.headers["location"].rsplit("/", 1)[1])
    de = _answer_of(layout, search_id, "DE")
    top = de["candidates"][0]
    assert base64.b64decode(top["image"]) == _mate(people, probe)
    assert "DE-MUG-" in top["provenance"] and "not searched: 10.002 L" in top["provenance"]

    with _workbench(layout, "AT", "eric") as examiner:
        compare = examiner.get(f"/workbench/searches/{search_id}/candidates/DE/{top['reference']}")
        assert compare.status_code == 200
        assert 'id="type10-download"' in compare.text
        download = examiner.get(
            f"/workbench/searches/{search_id}/candidates/DE/{top['reference']}/type10"
        )
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    candidate = read_face_transaction(download.content, "int-i", use="probe")
    assert candidate.control_number == top["reference"]
    assert candidate.originating_agency == "DE"
    assert candidate.best.payload == _mate(people, probe)
    assert candidate.best.quality.get("overall", 0) > 0


def test_a_type10_probe_through_the_national_api_finds_its_mate_first(
    federation: Federation, setup: tuple[Layout, PhotoResult, dict[str, list[PhotoResult]]]
) -> None:
    layout, probe, people = setup
    body = {
        "category": "face",
        "purpose": "investigation",
        "offence": "1500 00",
        "max_penalty_months": 60,
        "case_reference": "AT-2026-T10-API",
        "targets": ["DE"],
        "probe": {
            "format": "ansi_nist",
            "data": base64.b64encode(_probe_transaction(probe)).decode(),
        },
        "deadline_ms": 90_000,
    }
    with httpx.Client(
        base_url=layout.parties["AT"].api_url, auth=("olga", password("AT")), timeout=180
    ) as api:
        response = api.post("/api/searches", json=body)
    assert response.status_code == 200, response.text
    de = next(r for r in response.json()["replies"] if r["party"] == "DE")
    assert base64.b64decode(de["candidates"][0]["image"]) == _mate(people, probe)


def test_a_transaction_that_breaks_int_i_is_refused_before_it_travels(
    federation: Federation, setup: tuple[Layout, PhotoResult, dict[str, list[PhotoResult]]]
) -> None:
    layout, probe, _ = setup
    broken = _probe_transaction(probe).replace(b"10.003:FACE", b"10.003:MARK", 1)
    body = {
        "category": "face",
        "purpose": "investigation",
        "offence": "1500 00",
        "max_penalty_months": 60,
        "case_reference": "AT-2026-T10-BAD",
        "image": base64.b64encode(broken).decode(),
    }
    with httpx.Client(
        base_url=layout.parties["AT"].api_url, auth=("olga", password("AT")), timeout=60
    ) as api:
        response = api.post("/api/searches", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "not_allowed_by_profile"
    assert "10.003 IMT 'MARK' is not allowed by INT-I" in response.json()["message"]
