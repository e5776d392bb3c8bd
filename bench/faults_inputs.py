"""The bad-input half of the fault and abuse campaign: :func:`bad_input_classes`, called by
bench/faults.py once the federation of ``faultworld`` runs.

Each class of bad input is tried with a fixed list of concrete inputs (at most about 40;
``random.Random(SEED)`` where they are generated, so every run sends the same), through
the interfaces a user or a foreign system has: AT's national API (HTTP Basic), the
workbench of AT and DE (session cookie and CSRF token) and the router's federation API
(mutual TLS as AT). How a try counts (faults_inputs_kit.Trial):

* ``refused``: a 4xx whose body names the problem (JSON ``code`` and ``message``; on a
  workbench page the alert with its message), or a search answer in which every country
  said ``refused`` or ``error`` with a code; and refused for the bad data, not for
  something else (each try names the codes or words its refusal must carry). In the
  injection classes (SQL, HTML) a try also counts when it was *neutralised*: accepted,
  kept verbatim as text (read back through the API) and, for HTML, shown escaped and
  never raw on every workbench page that displays it.
* ``server_errors``: a 5xx, a dropped connection or a timeout.
* ``changed``: protected tables (:meth:`World.stored`) whose row count moved by other
  than the class allows, plus tables where a row that existed before was altered or
  deleted (every column but those that change by design: statuses, retry counters).
  What a class allows its ``where`` says: a search that travels is kept at AT with
  each country's refusal, and an accepted injection is stored like any other text.

Everything else that goes wrong is in ``failures``: an accepted bad input, a refusal
for another reason, an answer slower than SLOW_S, a payload no page showed.

This module holds the classes about what a sample is (images, sizes, transactions,
DNA profiles); faults_inputs_access.py those about who may ask what,
faults_inputs_injection.py those about what text and bytes can smuggle.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import re
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

import faults_inputs_files as files
from faults_inputs_access import (
    bad_purposes,
    csrf_missing,
    forged_signatures,
    replays,
    unknown_categories,
    unknown_countries,
    wrong_roles,
)
from faults_inputs_faces import type10_faces
from faults_inputs_injection import (
    bad_ids,
    html_injection,
    non_json_bodies,
    router_fuzz,
    sql_injection,
)
from faults_inputs_kit import (
    HOLDER,
    JSON,
    REQUESTER,
    SEED,
    SLOW_S,
    Answer,
    Campaign,
    Trial,
    send,
)
from faultworld import InputClass, World

BODY_LIMIT = 42 * 2**20  # prum.federation.transport.MAX_BODY_BYTES
# A decompression bomb must not raise the node's peak memory by more than this.
BOMB_MEMORY_BYTES = 512 * 2**20
IMAGE_CODES = {"unreadable_image", "image_too_small", "image_too_large", "bad_input"}
NIST_CODES = IMAGE_CODES | {
    "malformed_nist_record",
    "unknown_record_type",
    "bad_wsq_stream",
    "invalid_finger_data",
    "invalid_dna_profile",
}


def corrupt_images(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "corrupt images",
        "AT /api/searches, face (officer): bytes that are no image, image headers followed"
        " by garbage, no base64; refused by AT's decoder before anything is stored or sent."
        " A real photo with an end marker inside its scan decodes with grey below it"
        " (libjpeg fills, Pillow does not say), so it is refused for the face it lacks",
    )
    rng = random.Random(SEED + 1)
    face = c.face
    magic = {
        "JPEG": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "PNG": b"\x89PNG\r\n\x1a\n",
        "GIF": b"GIF89a",
        "BMP": b"BM",
        "TIFF": b"II*\x00",
        "WEBP": b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        "JPEG2000": b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    }
    inputs: list[tuple[str, bytes | str]] = [
        ("text", b"this is not an image"),
        ("zeros", bytes(4096)),
        ("PDF", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF"),
        ("SVG", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("JSON", c.trace),
        ("empty image", b""),
        ("not base64", "%%% not base64 %%%"),
        ("data URL", "data:image/jpeg;base64," + base64.b64encode(face).decode()),
        ("JPEG with its tables overwritten", face[:2] + rng.randbytes(600) + face[602:]),
    ]
    inputs += [
        (f"{name} header + {n} random bytes", head + rng.randbytes(n))
        for name, head in magic.items()
        for n in (16, 3000)
    ]
    inputs += [(f"{n} random bytes", rng.randbytes(n)) for n in (1, 7, 100, 5000, 70_000)]
    for name, data in inputs:
        t.check(name, c.search(c.face_body(data)), codes=IMAGE_CODES)
    eoi = face[: len(face) // 8] + b"\xff\xd9" + face[len(face) // 8 :]
    answer = c.search(c.face_body(eoi))
    codes = IMAGE_CODES | {"no_face_found", "quality_too_low"}
    t.check("JPEG with an end marker inside its scan", answer, codes=codes)
    return t.finish()


def truncated_images(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "truncated images",
        "AT /api/searches, face: a photo with one face (JPEG, progressive JPEG, PNG) cut"
        " short inside its pixel data; refused as unreadable (not padded and searched)"
        " before anything is stored",
    )
    photo = Image.open(io.BytesIO(c.face))
    progressive = files.encoded(photo, "JPEG", progressive=True)
    for name, data, cuts in (
        ("JPEG", c.face, (0.5, 2, 20, 200, 0.25, 0.75, 0.9, 0.99, -2, -1)),
        ("progressive JPEG", progressive, (300, 0.33, 0.66, 0.95, -1)),
        ("PNG", files.encoded(photo, "PNG"), (8, 33, 100, 0.25, 0.5, 0.9, 0.99, -64)),
    ):
        for cut in cuts:
            at = int(cut * len(data)) if isinstance(cut, float) else cut % len(data)
            answer = c.search(c.face_body(data[:at]))
            t.check(f"{name} cut at {at} of {len(data)}", answer, codes={"unreadable_image"})
    preview = c.bench().post("/workbench/search/preview", {}, {"image": ("p.jpg", c.face)})
    if not (isinstance(preview, httpx.Response) and preview.json().get("faces")):
        t.fail("the uncut photo shows no usable face: the cuts prove less")
    return t.finish()


def _peak_memory(world: World, name: str) -> int:
    """The peak resident memory of a federation process (0 if it cannot be read)."""
    process = getattr(world.federation, "processes", {}).get(name)
    try:
        status = Path(f"/proc/{getattr(process, 'pid', 0)}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) * 1024 if found else 0


def decompression_bombs(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "decompression bombs",
        "AT /api/searches (face) and AT's workbench (finger image): files small on the wire"
        " whose headers claim up to 65535 x 65535 pixels; refused from the header within"
        f" {SLOW_S:.0f} s with AT's peak memory up by less than 512 MB; a gzip-encoded body"
        " is not inflated; nothing stored",
    )
    bombs = [
        ("PNG 30000x30000 1-bit, every row", files.png(30000, 30000, depth=1, full=True)),
        ("PNG 65535x65535 grey", files.png(65535, 65535)),
        ("PNG 20000x20000 RGB", files.png(20000, 20000, colour=2)),
        ("PNG 8000x8000 grey (64 MP)", files.png(8000, 8000)),
        ("PNG 1x100000000", files.png(1, 100_000_000)),
        ("JPEG claiming 65000x65000", files.jpeg_sized(c.face, 65000, 65000)),
        ("JPEG claiming 20000x20000", files.jpeg_sized(c.face, 20000, 20000)),
        ("JPEG claiming 7000x7000", files.jpeg_sized(c.face, 7000, 7000)),
        ("TIFF claiming 60000x60000", files.tiff_sized(60000, 60000)),
        ("BMP claiming 50000x50000", files.bmp_sized(50000, 50000)),
        ("WEBP claiming 16384x16384", files.webp_sized(16384)),
        ("GIF claiming 65535x65535", files.gif_sized(65535, 65535)),
    ]
    peak = _peak_memory(c.world, REQUESTER)
    for name, data in bombs:
        t.check(name, c.search(c.face_body(data)), codes=IMAGE_CODES)
    for name, data in bombs[:4]:
        upload = {"finger_file": ("print.png", data)}
        answer = c.bench().post("/workbench/search", _finger_form(c), upload)
        t.check(f"finger image: {name}", answer, codes=IMAGE_CODES)
    squeezed = gzip.compress(json.dumps(c.face_body("A" * 20_000_000)).encode())
    headers = {**JSON, "content-encoding": "gzip"}
    answer = send(c.api().post, "/api/searches", content=squeezed, headers=headers)
    t.check("gzip-encoded JSON body, 20 MB inflated", answer)
    grown = _peak_memory(c.world, REQUESTER) - peak
    if peak and grown > BOMB_MEMORY_BYTES:
        t.fail(f"AT's peak memory grew by {grown / 2**20:.0f} MB")
    return t.finish()


def oversized_bodies(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "oversized bodies",
        "national APIs of AT, DE, HU and the router: bodies over the 42 MB limit, declared"
        " or chunked (413); fields over their limits (probe 30 MB, upload 30 MB, facts,"
        " justification, 1,000,000 targets); nothing stored",
    )
    big = b"x" * (BODY_LIMIT + 1024)

    def chunked() -> Iterator[bytes]:
        yield from (big[at : at + 2**20] for at in range(0, len(big), 2**20))

    def post(client: httpx.Client, path: str, chunks: bool) -> Answer:
        return send(client.post, path, content=chunked() if chunks else big, headers=JSON)

    for party, chunks in (("AT", False), ("AT", True), ("DE", False), ("HU", True)):
        answer = post(c.api("olga", party), "/api/searches", chunks)
        how = "chunked" if chunks else "declared"
        t.check(f"{party} national API, {how}", answer, codes={"body_too_large"})
    for path, chunks in (("/v1/search", False), ("/v1/search", True), ("/v1/deliver", True)):
        how = "chunked" if chunks else "declared"
        t.check(f"router {path}, {how}", post(c.router, path, chunks), codes={"body_too_large"})
    probe = b"{" + b" " * (30 * 2**20 + 10) + b"}"
    t.check("DNA probe over 30 MB", c.search(c.dna_body(probe)), about="probe")
    answer = c.search(c.dna_body(targets=[HOLDER] * 1_000_000))
    t.check("1,000,000 targets", answer, about="targets")
    upload = {"image": ("big.jpg", c.face + bytes(30 * 2**20))}
    answer = c.bench().post("/workbench/search", c.form(category="face"), upload)
    t.check("workbench upload over 30 MB", answer, about="30 MB")
    sid, reference = c.hits["base"]
    asked = {"search_id": sid, "party": HOLDER, "reference": reference, "facts": "x" * 9000}
    t.check("facts of 9,000 characters", c.post("/api/core-data-requests", asked), about="facts")
    verdict = {"party": HOLDER, "reference": reference, "decision": "rejected"}
    verdict["justification"] = "x" * 5000
    answer = c.post(f"/api/searches/{sid}/verifications", verdict, "eric")
    t.check("justification of 5,000 characters", answer, about="justification")
    answer = c.to_router(c.envelope(case_reference="x" * 10_000))
    t.check("router: case reference of 10,000 characters", answer, codes={"invalid_message"})
    answer = c.to_router(c.envelope(targets=[HOLDER] * 2000))
    t.check("router: 2,000 targets", answer, codes={"invalid_message"})
    return t.finish()


def _finger_form(c: Campaign) -> dict[str, Any]:
    return c.form(category="finger", search_type="TP/TP", profile_text="")


def lying_lengths(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "ANSI/NIST-ITL lying lengths",
        "AT's workbench search form, which reads the file before it travels (finger:"
        " Type-1/2/9/14 and Type-4 transactions; DNA: Type-18): LEN fields off by 1 to x10,"
        " not numbers, swallowing the next record; CNT miscounting; cut short; trailing"
        " bytes; and AT's national API with the same finger files as ansi_nist probes. Only"
        " files our own reader refuses are sent; both read them before the search travels:"
        " nothing signed, nothing stored",
    )
    rng = random.Random(SEED + 5)
    for source, most in ((files.tenprint(2), 14), (files.tenprint(1, record=4), 8)):
        lies = [
            (n, d) for n, d in files.lies(source, rng) if files.refused_by(files.read_finger, d)
        ]
        for name, data in lies[:most]:
            upload = {"finger_file": ("card.an2", data)}
            answer = c.bench().post("/workbench/search", _finger_form(c), upload)
            t.check(f"finger {name}", answer, codes=NIST_CODES)
            t.check(f"API: finger {name}", c.search(finger_body(c, data)), codes=NIST_CODES)
    type18 = files.dna_transaction(c.trace)
    if files.refused_by(files.read_dna, type18):
        t.fail("our own reader refuses the valid Type-18 transaction")
    lies = [(n, d) for n, d in files.lies(type18, rng) if files.refused_by(files.read_dna, d)]
    for name, data in lies[:12]:
        upload = {"profile_file": ("trace.an2", data)}
        answer = c.bench().post("/workbench/search", c.form(profile_text=""), upload)
        t.check(f"DNA Type-18 {name}", answer, codes=NIST_CODES)
    return t.finish()


def wsq_garbage(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "WSQ garbage",
        "AT's workbench finger search: a transaction whose Type-14 (or Type-4) image is no"
        " valid WSQ: random bytes, a WSQ marker and garbage, a stream cut short or damaged"
        " inside, a WSQ of another size than the record says, a WSQ header claiming"
        " 60000 x 60000, a JPEG or PNG labelled WSQ; also as ansi_nist probes of the national"
        " API; refused before it travels; nothing stored",
    )
    from prum.categories.finger.images import encode_wsq

    rng = random.Random(SEED + 6)
    base, wsq = files.tenprint(1), encode_wsq(files.ridges())
    frame = wsq.find(b"\xff\xa2")  # the frame header: height and width at +5
    huge = wsq[: frame + 5] + struct.pack("!HH", 60000, 60000) + wsq[frame + 9 :]
    damaged = wsq[:200] + b"\xff" * 40 + wsq[240:]
    images: list[tuple[str, bytes]] = [
        ("random 100 bytes", rng.randbytes(100)),
        ("random 5000 bytes", rng.randbytes(5000)),
        ("WSQ start marker + garbage", b"\xff\xa0" + rng.randbytes(3000)),
        ("WSQ cut at a half", wsq[: len(wsq) // 2]),
        ("WSQ cut at 90%", wsq[: len(wsq) * 9 // 10]),
        ("WSQ header only", wsq[: frame + 20]),
        ("WSQ with 40 bytes of 0xFF inside", damaged),
        ("WSQ of 200 x 200 in a 256 x 320 record", encode_wsq(files.ridges(200, 200))),
        ("WSQ claiming 60000 x 60000", huge),
        ("empty image", b""),
        ("a JPEG labelled WSQ", c.face),
        ("a PNG labelled WSQ", files.encoded(Image.fromarray(files.ridges()), "PNG")),
        ("zeros", bytes(4000)),
    ]
    for k in (1, 8, 64):
        mutated = bytearray(wsq)
        for at in rng.sample(range(frame, len(wsq)), k):
            mutated[at] = 0xFF
        images.append((f"WSQ with {k} bytes set to 0xFF", bytes(mutated)))
    type4 = files.tenprint(1, record=4)
    cases = [(name, files.image_replaced(base, image)) for name, image in images]
    cases += [
        ("compression 'LZW'", files.image_replaced(base, wsq, b"LZW")),
        ("random bytes labelled PNG", files.image_replaced(base, rng.randbytes(900), b"PNG")),
        ("Type-4 random image", files.type4_image_replaced(type4, rng.randbytes(2000))),
        ("Type-4 WSQ cut short", files.type4_image_replaced(type4, wsq[:900])),
    ]
    for name, data in cases:
        if not files.refused_by(files.read_finger, data):
            continue  # still a readable transaction: not bad input
        upload = {"finger_file": ("card.an2", data)}
        t.check(
            name, c.bench().post("/workbench/search", _finger_form(c), upload), codes=NIST_CODES
        )
        t.check(f"API: {name}", c.search(finger_body(c, data)), codes=NIST_CODES)
    return t.finish()


def finger_body(c: Campaign, transaction: bytes) -> dict[str, Any]:
    """A TP/TP search of AT's national API with ``transaction`` as its probe."""
    body = c.world.search_body("finger", targets=[HOLDER], search_type="TP/TP")
    body["probe"] = {"format": "ansi_nist", "data": base64.b64encode(transaction).decode()}
    return body


def bad_dna(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "DNA mixtures and bad alleles",
        "AT's workbench DNA form and AT's national API (both checked before the search"
        " travels: nothing signed, nothing stored). A single"
        " tri-allelic locus and 'abc' or 0 alleles are wildcards by the 2008/616 Annex, so"
        " they are sent where that leaves fewer than 6 designated loci",
    )
    profile = json.loads(c.trace)
    loci = profile["loci"]
    names = list(loci)

    def changed(**alleles: Any) -> dict[str, Any]:
        return {**profile, "loci": {**loci, **alleles}}

    def beyond_five(make: Callable[[list[str]], list[str]]) -> dict[str, Any]:
        return changed(**{n: make(loci[n]) for n in names[5:]})

    profiles: list[tuple[str, Any]] = [
        ("mixture: 3 alleles at 2 loci", changed(**{n: [*loci[n], "31"] for n in names[:2]})),
        ("mixture: 4 alleles at 5 loci", changed(**{n: [*loci[n], "30", "31"] for n in names[:5]})),
        ("allele 999", changed(**{names[0]: ["999", "17"]})),
        ("allele -3", changed(**{names[0]: ["-3", "17"]})),
        ("allele 100.5", changed(**{names[0]: ["100.5", "17"]})),
        ("allele 12.345", changed(**{names[0]: ["12.345", "17"]})),
        ("'abc' at all but 5 loci", beyond_five(lambda a: ["abc", a[1]])),
        ("0 at all but 5 loci", beyond_five(lambda a: ["0", a[1]])),
        ("3 alleles at all but 5 loci", beyond_five(lambda a: [*a, "7"])),
        ("unknown locus FOO", changed(FOO=["1", "2"])),
        ("unknown locus ' OR 1=1", changed(**{"' OR 1=1": ["12", "13"]})),
        ("empty profile", {"identified": False, "loci": {}}),
        ("person without ESS loci", {"identified": True, "loci": {"Penta D": ["11", "12"]}}),
        ("alleles an object", changed(**{names[0]: {"a": 1}})),
        ("identified 'yes'", {**profile, "identified": "yes"}),
        ("a list, not an object", [profile]),
        ("20 alleles at one locus", changed(**{names[0]: [str(n) for n in range(5, 25)]})),
    ]
    encoded = [(name, json.dumps(p).encode()) for name, p in profiles]
    encoded += [
        ("not JSON", b"{vWA: 14, 17"),
        ("CSV garbage", b"locus,allele1\nvWA,\x00\x01\nD21S11"),
        ("binary", random.Random(SEED + 7).randbytes(200)),
        ("JSON nested 20,000 deep", b"[" * 20000 + b"]" * 20000),
    ]
    codes = {"invalid_dna_profile", "malformed_nist_record", "bad_input"}
    for name, data in encoded:
        form = c.form(profile_text=data.decode("utf-8", "replace"))
        t.check(f"form: {name}", c.bench().post("/workbench/search", form), codes=codes)
    for name, data in encoded[:8] + encoded[11:12] + encoded[-1:]:
        t.check(f"API: {name}", c.search(c.dna_body(data)), codes=codes)
    return t.finish()


CLASSES: list[Callable[[Campaign], InputClass]] = [
    corrupt_images,
    truncated_images,
    decompression_bombs,
    oversized_bodies,
    lying_lengths,
    wsq_garbage,
    type10_faces,
    bad_dna,
    unknown_countries,
    bad_purposes,
    forged_signatures,
    replays,
    sql_injection,
    html_injection,
    csrf_missing,
    wrong_roles,
    router_fuzz,
    non_json_bodies,
    bad_ids,
    unknown_categories,
]


def bad_input_classes(world: World, log: Callable[[str], None] = print) -> list[InputClass]:
    """Try every class of bad input against the running ``world``; one row per class."""
    started = time.monotonic()
    c = Campaign(world, log)
    rows: list[InputClass] = []
    try:
        log("bad input: three DNA searches with a candidate at DE, for the classes to use")
        c.hits = {name: c.hit(f"AT-INPUTS-{name.upper()}") for name in ("base", "sql", "html")}
        for run in CLASSES:
            try:
                rows.append(run(c))
            except Exception as exc:  # one broken class must not hide the others
                row = InputClass(run.__name__.replace("_", " "), "did not run to the end")
                row.failures.append(f"{type(exc).__name__}: {exc}"[:160])
                log(f"  {row.name}: {row.failures[0]}")
                rows.append(row)
    finally:
        c.close()
    log(f"bad input: {len(rows)} classes in {time.monotonic() - started:.0f} s")
    return rows
