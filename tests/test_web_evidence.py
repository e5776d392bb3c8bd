"""Evidence an examiner can verify (issue 29): one strength statement per candidate, both
DNA profiles of a bulk-comparison hit, minutia pairs drawn on both prints, faces
overlaid, previous/next, and the comparison report (PDF) of a decision with its chain
of custody. One node's workbench served over HTTP to Debian's chromium (Playwright),
with answers stored as a holder would have sent them (no federation needed).

Set PRUM_SCREENSHOTS=docs/screenshots to refresh the documentation's screenshots.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, StorageState
from sqlalchemy import insert, select

import webfixtures
from prum.categories.face.calibrated import combine
from prum.categories.face.calibration import similarity
from prum.categories.face.reference import reference_for
from prum.categories.finger.match import compare, cylinders
from prum.federation.messages import (
    BatchProbe,
    Candidate,
    Category,
    CountryReply,
    Decision,
    DnaHit,
    FingerHit,
    Probe,
    ReplyStatus,
)
from prum.node import comparisons, followup
from prum.node.core import Node
from prum.node.schema import searches
from prum.node.users import Role, authenticate
from prum.node.web import evidence
from webfixtures import DESKTOP, PASSWORD, national_node, serving

USERS = {"olga": {Role.OFFICER}, "eric": {Role.EXAMINER}}


# --- the node and its stored answers -------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, national_pki: Path) -> Iterator[Node]:
    data_dir = tmp_path_factory.mktemp("evidence") / "de"
    node = national_node(data_dir, national_pki, "DE", Category.FACE, USERS)
    yield node
    node.close()


def store(
    node: Node,
    category: str,
    replies: list[CountryReply],
    probe: dict[str, Any] | None,
    **fields: Any,
) -> int:
    values: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "request_number": f"DE-{uuid.uuid4().hex[:6]}",
        "user": "olga",
        "category": category,
        "purpose": "investigation",
        "offence": "0800 00",
        "max_penalty_months": 60,
        "case_reference": f"DE/2026/{uuid.uuid4().hex[:4]}",
        "targets": ["all"],
        "probe": probe,
        "status": "answered",
        "reply": {"replies": [r.model_dump(mode="json") for r in replies]},
        "created_at": dt.datetime.now(dt.UTC),
        **fields,
    }
    with node.engine.begin() as conn:
        inserted = conn.execute(insert(searches).values(**values)).inserted_primary_key
    assert inserted is not None
    search_id = int(inserted[0])
    node.log(
        kind="search_sent",
        user="olga",
        category=Category(category),
        case_reference=values["case_reference"],
        message_id=values["message_id"],
        requesting_party="DE",
    )
    return search_id


def answer(party: str, *candidates: Candidate) -> CountryReply:
    return CountryReply(
        in_reply_to=str(uuid.uuid4()),
        party=party,
        status=ReplyStatus.ANSWERED,
        candidates=list(candidates),
        duration_ms=10.0,
        gallery_size=22,
    )


def png(pixels: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def face_photo(shift: int) -> bytes:
    """A drawn face-like picture (no detector needed: the page falls back to the image)."""
    image = Image.new("RGB", (240, 300), (200, 190, 180))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40 + shift, 40, 200 + shift, 260), fill=(225, 190, 160))
    draw.ellipse((80 + shift, 110, 105 + shift, 125), fill=(40, 40, 40))
    draw.ellipse((135 + shift, 110, 160 + shift, 125), fill=(40, 40, 40))
    draw.line((90 + shift, 200, 150 + shift, 200), fill=(120, 40, 40), width=4)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def face_candidate(rank: int, reference: str, distance: float, image: bytes) -> Candidate:
    """A face candidate worded as a holder of the fused model set words it: the shipped
    reference distribution, through the same code (prum.categories.face.calibrated)."""
    calibration = combine(
        None,
        reference_for("dlib+sface"),
        reference_factor=3.0,
        own_min_comparisons=1_000_000,
    )
    assert calibration is not None
    return Candidate(
        rank=rank,
        reference=reference,
        score=similarity(distance),
        distance=distance,
        false_match_rate=calibration.fmr_at(distance),
        false_match_words=calibration.describe(distance)[:600],
        provenance="DE national collection",
        image=base64.b64encode(image),
    )


DNA_OWN = {
    "D3S1358": ["15", "16"],
    "vWA": ["17", "18"],
    "D8S1179": ["13", "14"],
    "D21S11": ["29", "30"],
    "D18S51": ["14", "17"],
    "TH01": ["6", "9.3"],
    "FGA": ["21", "22"],
}


def dna_hit(reference: str, own: str, near: bool) -> Candidate:
    held = {k: list(v) for k, v in DNA_OWN.items()}
    if near:
        held["vWA"] = ["17", "19"]
    loci = list(DNA_OWN)
    return Candidate(
        rank=1,
        reference=reference,
        score=1.0 if not near else 0.9,
        distance=0.0,
        false_match_rate=None,
        false_match_words="near match" if near else "match",
        provenance="AT DNA database",
        probe_reference=own,
        details=DnaHit(
            match="near_match" if near else "match",
            identified=True,
            matching_loci=[x for x in loci if not (near and x == "vWA")],
            compared_loci=loci,
            mismatched_loci=["vWA"] if near else [],
            random_match_probability=4.1e-11,
            profile=held,
        ),
    )


def face_search(node: Node) -> int:
    """A face search AT answered with the mate (AT-F-0001) and a stranger (AT-F-0002)."""
    mate_photo, other_photo = face_photo(0), face_photo(12)
    return store(
        node,
        "face",
        [
            answer(
                "AT",
                face_candidate(1, "AT-F-0001", 0.0, mate_photo),
                face_candidate(2, "AT-F-0002", 2 * (1 - 0.695), other_photo),
            )
        ],
        {"format": "image", "image": base64.b64encode(mate_photo).decode(), "box": None},
    )


@pytest.fixture(scope="module")
def cases(node: Node) -> dict[str, int]:
    """Searches as this node stored them: a face search (mate and stranger), a DNA bulk
    comparison with three hits, one a near match, and a latent with its minutia pairs."""
    face = face_search(node)
    # The bulk comparison keeps the own profiles that hit (prum.node.comparisons).
    own = {
        f"DE-D-{i:04d}": Probe(
            format="dna_profile",
            data=base64.b64encode(json.dumps({"identified": True, "loci": DNA_OWN}).encode()),
        )
        for i in (1, 2, 3, 4)
    }
    hits = [
        dna_hit("AT-D-0100", "DE-D-0001", near=False),
        dna_hit("AT-D-0200", "DE-D-0003", near=True),
        dna_hit("AT-D-0300", "DE-D-0004", near=False),
    ]
    bulk = store(
        node,
        "dna",
        [answer("AT", *hits)],
        {"batch": 4},
        offence="",
        max_penalty_months=0,
        case_reference="DNA initial bulk comparison DE with AT",
        user=comparisons.SYSTEM_USER,
    )
    batch = [(i, BatchProbe(reference=ref, probe=p)) for i, (ref, p) in enumerate(own.items())]
    with node.engine.begin() as conn:
        comparisons._keep_hit_profiles(conn, bulk, batch, hits)
    rng = np.random.default_rng(3)
    print_image = png(rng.integers(120, 255, (320, 280), dtype=np.uint8))
    pairs = [[0.2 + 0.05 * i, 0.3 + 0.04 * i, 0.25 + 0.05 * i, 0.28 + 0.04 * i] for i in range(9)]
    finger = store(
        node,
        "finger",
        [
            answer(
                "NL",
                Candidate(
                    rank=1,
                    reference="NL-F-0007",
                    score=0.41,
                    distance=0.59,
                    false_match_rate=1 / 5000,
                    false_match_words="no impostor of 5,000 scored this high (NL's gallery):"
                    " false match rate below 1 in 5,000",
                    provenance="NL AFIS",
                    image=base64.b64encode(print_image),
                    details=FingerHit(
                        search_type="LT/TP",
                        finger_position=7,
                        matched_minutiae=9,
                        minutiae_pairs=pairs,
                    ),
                ),
                Candidate(
                    rank=2,
                    reference="NL-F-0099",
                    score=0.005,
                    distance=0.995,
                    false_match_rate=0.64,
                    false_match_words="3,200 of 5,000 impostors scored this high (NL's gallery)",
                    provenance="NL AFIS",
                    image=base64.b64encode(print_image),
                    details=FingerHit(search_type="LT/TP", finger_position=2, matched_minutiae=1),
                ),
            )
        ],
        {"format": "image", "image": base64.b64encode(print_image).decode(), "box": None},
    )
    return {"face": face, "bulk": bulk, "finger": finger}


# --- without a browser ---------------------------------------------------------------------


def test_a_stranger_does_not_read_like_the_mate(cases: dict[str, int], node: Node) -> None:
    from prum.node.exchange import load_search

    search = load_search(node, cases["face"])
    mate, stranger = search["reply"]["replies"][0]["candidates"]
    a, b = evidence.strength(mate), evidence.strength(stranger)
    assert a is not None and b is not None
    assert a.band == "very strong" and a.candidate
    assert b.band == "no support" and not b.candidate  # score 0.695: below the threshold
    assert a.headline != b.headline
    # One figure each, and the basis names the shipped reference with no second figure.
    assert "reference impostor distribution" in a.basis and " 1 in " not in a.basis


def test_the_finger_bound_is_worded_as_a_bound(cases: dict[str, int], node: Node) -> None:
    from prum.node.exchange import load_search

    search = load_search(node, cases["finger"])
    good, poor = search["reply"]["replies"][0]["candidates"]
    s = evidence.strength(good)
    assert s is not None and s.figure == "fewer than 1 in 5,000 strangers score this high"
    assert s.band == "moderate"
    weak = evidence.strength(poor)
    assert weak is not None and not weak.candidate and weak.band == "no support"


def test_the_matcher_returns_the_pairs_it_scored_on() -> None:
    rng = np.random.default_rng(11)
    n = 40
    minutiae = np.column_stack(
        [
            rng.uniform(40, 260, n),
            rng.uniform(40, 300, n),
            rng.uniform(0, 2 * np.pi, n),
            np.zeros(n),
            np.full(n, 0.9),
        ]
    ).astype(np.float32)
    shifted = minutiae.copy()
    shifted[:, 0] += 15  # the same finger, moved 15 pixels right
    result = compare(cylinders(minutiae), cylinders(shifted))
    assert result.pairs >= 4 and len(result.paired) == result.pairs
    for px, py, cx, cy in result.paired:
        assert cx - px == pytest.approx(15, abs=0.01) and cy == pytest.approx(py, abs=0.01)
        assert any(abs(px - x) < 0.01 and abs(py - y) < 0.01 for x, y in minutiae[:, :2])


# --- in the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(node: Node, cases: dict[str, int]) -> Iterator[str]:
    with serving(node) as url:
        yield url


def until(page: Page, expression: str, value: Any, timeout: float = 10) -> None:
    """Poll ``expression`` until it gives ``value`` (Playwright's own polling evaluates
    strings with eval, which the workbench's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout
    while page.evaluate(expression) != value:
        if time.monotonic() > deadline:
            pytest.fail(f"{expression} did not become {value!r}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def examiner_session(chromium_browser: Browser, server: str) -> StorageState:
    """The examiner eric's login, once for the module (argon2 is slow on purpose)."""
    page = webfixtures.log_in(chromium_browser, server, "eric")
    state = page.context.storage_state()
    page.context.close()
    return state


@pytest.fixture
def examiner(browser: Browser, examiner_session: StorageState) -> Page:
    """The examiner eric, logged in, in a fresh browser context for each test."""
    context = browser.new_context(
        viewport=DESKTOP, accept_downloads=True, storage_state=examiner_session
    )
    context.set_default_timeout(20_000)
    return context.new_page()


def test_bulk_hit_shows_both_profiles_numbered_per_comparison(
    examiner: Page, server: str, cases: dict[str, int], shots: Path
) -> None:
    page = examiner
    page.goto(f"{server}/workbench/searches/{cases['bulk']}")
    assert ", up to 0 months" not in (page.text_content("main") or "")
    assert "automated DNA comparison" in (page.text_content("#offence") or "")
    ranks = page.locator("li.candidate p.rank").all_text_contents()
    assert [r.split()[0] for r in ranks] == ["#1", "#2", "#3"]
    near = page.locator("li.candidate").nth(1)
    assert "Near match: one allele differs at vWA" in (near.text_content() or "")
    assert near.locator(".rmp").count() == 0  # no random match probability headline
    shot = shots / "40-dna-bulk-results.png"
    page.screenshot(path=str(shot), full_page=True)
    near.locator("a.button").click()
    page.wait_for_selector("#dna-profile")
    heads = page.locator("#dna-profile thead th").all_text_contents()
    assert heads[1] == "Own profile DE-D-0003"
    own = page.locator("#dna-profile tbody tr td:nth-child(2)").all_text_contents()
    held = page.locator("#dna-profile tbody tr td:nth-child(3)").all_text_contents()
    assert "–" not in own and "–" not in held and len(own) == len(DNA_OWN)
    assert page.text_content("#dna-profile tr.mismatch") is not None
    assert "17, 18" in (page.text_content("#dna-profile tr.mismatch") or "")
    assert "hit #2" in (page.text_content("h1") or "")
    page.click("#next-candidate")
    page.wait_for_url(re.compile(r"AT-D-0300$"))
    assert "hit #3" in (page.text_content("h1") or "")
    page.click("#previous-candidate")
    page.wait_for_url(re.compile(r"AT-D-0200$"))
    # Words, not wire codes; no face-style distance on a DNA profile.
    main = page.text_content("main") or ""
    assert "initial_bulk" not in main and "initial bulk comparison" in main
    assert "distance" not in (page.text_content("dl.facts") or "")
    page.screenshot(path=str(shots / "41-dna-bulk-compare.png"), full_page=True)


def test_strength_wording_differs_for_mate_and_stranger(
    examiner: Page, server: str, cases: dict[str, int], shots: Path
) -> None:
    page = examiner
    page.goto(f"{server}/workbench/searches/{cases['face']}")
    listed = page.locator("ol.candidates:not(.below) > li.candidate")
    assert listed.count() == 1  # the stranger is not listed as a candidate
    mate = listed.first.locator(".strength").text_content() or ""
    assert mate.startswith("very strong support: about 1 in 22,000,000")
    below = page.locator("#below-AT")
    assert "1 entry below the threshold: not candidates" in (below.text_content() or "")
    below.locator("summary").click()
    stranger = below.locator(".strength").text_content() or ""
    assert stranger.startswith("no support:") and stranger != mate
    page.screenshot(path=str(shots / "42-strength-results.png"), full_page=True)


def test_faces_can_be_overlaid_blended_flickered_and_wiped(
    examiner: Page, server: str, cases: dict[str, int], shots: Path
) -> None:
    page = examiner
    page.goto(f"{server}/workbench/searches/{cases['face']}/candidates/AT/AT-F-0001")
    assert page.is_visible(".pair") and page.is_hidden("#stack")
    assert "very strong support" in (page.text_content("#strength") or "")
    page.check("input[name=view-mode][value=blend]")
    assert page.is_visible("#stack") and page.is_hidden(".pair")
    page.fill("#mix", "30")
    page.dispatch_event("#mix", "input")
    opacity = page.eval_on_selector("#stack-top", "e => e.style.opacity")
    assert opacity == "0.3"
    page.check("input[name=view-mode][value=wipe]")
    clip = page.eval_on_selector("#stack-top", "e => e.style.clipPath")
    assert clip.startswith("inset(0px 70%") or clip.startswith("inset(0 70%")
    page.check("input[name=view-mode][value=flicker]")
    for state in ("hidden", "visible", "hidden"):  # the candidate comes and goes
        until(page, "document.getElementById('stack-top').style.visibility", state)
    page.check("input[name=view-mode][value=side]")
    assert page.is_visible(".pair")
    page.goto(f"{server}/workbench/searches/{cases['face']}/candidates/AT/AT-F-0002")
    assert page.is_visible("#below-threshold")
    assert "no support" in (page.text_content("#strength") or "")


def test_fingerprint_pairs_are_drawn_on_both_prints_and_zoom(
    examiner: Page, server: str, cases: dict[str, int], shots: Path
) -> None:
    page = examiner
    page.goto(f"{server}/workbench/searches/{cases['finger']}/candidates/NL/NL-F-0007")
    until(page, "document.querySelectorAll('#candidate-overlay circle').length > 0", True)
    assert page.locator("#probe-overlay circle.minutia").count() == 9
    assert page.locator("#candidate-overlay circle.minutia").count() == 9
    assert page.locator("#candidate-overlay text").all_text_contents()[:3] == ["1", "2", "3"]
    page.click("#zoom-in")
    transform = page.eval_on_selector(".finger-view .layer", "e => e.style.transform")
    assert "scale(1.25)" in transform
    assert "moderate support: fewer than 1 in 5,000" in (page.text_content("#strength") or "")
    page.screenshot(path=str(shots / "44-finger-minutiae.png"), full_page=True)
    page.goto(f"{server}/workbench/searches/{cases['finger']}/candidates/NL/NL-F-0099")
    assert page.is_visible("#below-threshold")  # score 0.005 does not look like a candidate


def test_the_comparison_report_downloads_and_names_the_audit_entries(
    examiner: Page, server: str, cases: dict[str, int], node: Node, tmp_path: Path
) -> None:
    from pypdf import PdfReader

    from prum.node.exchange import load_search

    search_id = cases["finger"]
    eric = authenticate(node.engine, "eric", PASSWORD)
    decision = followup.verify_candidate(
        node,
        eric,
        search_id,
        party="NL",
        reference="NL-F-0007",
        decision=Decision.CONFIRMED,
        justification="nine minutiae in agreement, ridge flow consistent",
    )
    page = examiner
    page.goto(f"{server}/workbench/searches/{search_id}/candidates/NL/NL-F-0007")
    with page.expect_download() as started:
        page.click("a.report-link")
    path = tmp_path / "report.pdf"
    started.value.save_as(path)
    text = "\n".join(p.extract_text() for p in PdfReader(path).pages)
    flat = re.sub(r"\s+", " ", text)
    assert "NL-F-0007" in flat and "confirmed" in flat and "eric" in flat
    assert "nine minutiae in agreement" in flat
    assert "moderate support: fewer than 1 in 5,000" in flat
    entries = node.audit.entries(limit=50)
    verified = next(e for e in entries if e.event.kind == "candidate_verified")
    message_id = load_search(node, search_id)["message_id"]
    sent = next(
        e for e in entries if e.event.kind == "search_sent" and e.event.message_id == message_id
    )
    assert verified.hash in flat and sent.hash in flat  # chain of custody, whole hashes
    again = page.request.get(
        f"{server}/workbench/searches/{search_id}/verifications/{decision}/report.pdf"
    ).body()
    assert again == path.read_bytes()  # kept with the case: the same document again
    issued = [e for e in node.audit.entries(limit=50) if e.event.kind == "report_issued"]
    assert len(issued) == 2 and "sha256" in (issued[0].event.detail or "")


@pytest.mark.realdata
def test_a_real_latent_search_sends_pairs_on_minutiae_of_both_prints(
    tmp_path: Path, shared_data: Path
) -> None:
    """FVC prints: the pairs of the mate's hit are minutiae of the probe and of the
    enrolled print (as fractions of each image), and a card search sends none."""
    import cv2

    from prum.categories.finger.evaluation import load_fvc
    from prum.categories.finger.matcher import FingerMatcher
    from prum.categories.finger.minutiae import MindtctExtractor
    from prum.categories.interface import Exposure, SubjectCategory
    from prum.config import Settings

    directory = shared_data / "fingerprints" / "fvc_db4_b"
    if not directory.is_dir():
        pytest.skip(f"{directory} is absent (the FVC development set)")
    fvc = load_fvc(directory)

    def encoded(pixels: np.ndarray[Any, Any]) -> bytes:
        ok, data = cv2.imencode(".png", pixels)
        assert ok
        return bytes(data.tobytes())

    matcher = FingerMatcher(Settings(data_dir=tmp_path, country="AT"))
    try:
        refs = {f: matcher.enroll(encoded(fvc[(f, 1)]), position=2) for f in (101, 102, 103)}
        probe = Probe(format="image", data=base64.b64encode(encoded(fvc[(102, 3)])))
        everyone = Exposure(subjects=frozenset(SubjectCategory), min_age=None)
        top = matcher.search_typed(probe, "LT/TP", max_candidates=3, exposure=everyone).candidates[
            0
        ]
    finally:
        matcher.close()
    assert top.reference == refs[102]
    assert isinstance(top.details, FingerHit)
    pairs = top.details.minutiae_pairs or []
    assert len(pairs) == top.details.matched_minutiae and len(pairs) >= 4
    extractor = MindtctExtractor()
    for side, pixels in ((0, fvc[(102, 3)]), (1, fvc[(102, 1)])):
        minutiae = extractor.extract(pixels).minutiae
        height, width = pixels.shape
        for pair in pairs:
            x, y = pair[2 * side] * width, pair[2 * side + 1] * height
            nearest = np.hypot(minutiae[:, 0] - x, minutiae[:, 1] - y).min()
            assert nearest < 1.0, f"pair {pair} is not on a minutia of print {side}"


@pytest.mark.realdata
def test_the_overlay_turns_the_candidates_eyes_onto_the_probes(
    examiner: Page, server: str, node: Node, samples: Any, shots: Path
) -> None:
    """Two real photos of one person: in the blend the candidate is scaled and turned so
    that its eye centres fall on the probe's (within 2 pixels on the screen)."""
    people: dict[str, list[Path]] = {}
    for path, who in samples.images:
        people.setdefault(who, []).append(path)
    first, second = next(paths for paths in people.values() if len(paths) >= 2)[:2]
    probe = first.read_bytes()
    search_id = store(
        node,
        "face",
        [answer("AT", face_candidate(1, "AT-F-0100", 0.3, second.read_bytes()))],
        {"format": "image", "image": base64.b64encode(probe).decode(), "box": None},
    )
    page = examiner
    page.goto(f"{server}/workbench/searches/{search_id}/candidates/AT/AT-F-0100")
    assert "eyes lie on the probe's" in (page.text_content("#alignment") or "")
    page.check("input[name=view-mode][value=blend]")
    until(page, "document.getElementById('stack-candidate').complete", True)
    misses = page.evaluate(
        """() => {
        const faces = JSON.parse(document.getElementById('faces-data').textContent);
        const port = document.querySelector('#stack .viewport');
        const W = port.clientWidth, H = port.clientHeight;
        const shown = (face, [x, y]) => {
          const s = Math.min(W / face.width, H / face.height);
          return [(W - face.width * s) / 2 + x * s, (H - face.height * s) / 2 + y * s];
        };
        const img = document.getElementById('stack-candidate');
        const m = new DOMMatrix(getComputedStyle(img).transform);
        return faces.candidate.eyes.map((eye, i) => {
          const [x, y] = shown(faces.candidate, eye);
          const p = m.transformPoint(new DOMPoint(x, y));
          const [tx, ty] = shown(faces.probe, faces.probe.eyes[i]);
          return Math.hypot(p.x - tx, p.y - ty);
        });
    }"""
    )
    assert len(misses) == 2 and max(misses) < 2.0
    page.fill("#mix", "50")
    page.dispatch_event("#mix", "input")
    page.screenshot(path=str(shots / "43-face-blend.png"), full_page=True)


def test_reports_go_with_their_search_under_retention(
    tmp_path: Path, national_pki: Path, browser: Browser
) -> None:
    """A report shows the probe and the candidate, so it goes when retention deletes them.
    On a node of its own: retention purges every search of the node."""
    from prum.errors import UnknownReference
    from prum.node import retention
    from prum.node.core import utcnow
    from prum.node.exchange import load_search
    from prum.node.schema import reports
    from prum.node.web import report
    from prum.node.web.report_pages import _images

    node = national_node(tmp_path / "de", national_pki, "DE", Category.FACE, USERS)
    try:
        search_id = face_search(node)
        eric = authenticate(node.engine, "eric", PASSWORD)
        decision = followup.verify_candidate(
            node,
            eric,
            search_id,
            party="AT",
            reference="AT-F-0001",
            decision=Decision.CONFIRMED,
            justification="same face: ears, nose and chin agree",
        )
        with serving(node) as server:
            examiner = webfixtures.log_in(browser, server, "eric")
            url = f"{server}/workbench/searches/{search_id}/verifications/{decision}/report.pdf"
            assert examiner.request.get(url).headers["content-type"] == "application/pdf"
        with node.engine.connect() as conn:
            kept = conn.execute(select(reports.c.search_id)).scalars().all()
        assert search_id in kept
        later = utcnow() + dt.timedelta(days=node.config.retention.searches_days or 0, hours=1)
        assert retention.purge(node, now=later)["searches"] >= 1
        with node.engine.connect() as conn:
            assert conn.execute(select(reports.c.search_id)).scalars().all() == []
        # None is written again: the candidate it would show is gone.
        with pytest.raises(UnknownReference):
            report.report_for(node, load_search(node, search_id), decision, "eric", _images)
    finally:
        node.close()
