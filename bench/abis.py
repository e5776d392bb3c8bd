"""Benchmark of the ABIS adapter (issue 26): the same searches in-process and through the
HTTP adapter against a ``prum abis serve`` process on localhost, in the same run; and the
conformance kit (``prum conformance``) against our own node, with the defects tried.

Latency. One store per side holds the same records: the node's (the built-in matcher,
measured in-process) and the ABIS's (its own store, keyed by the node's references, as
delivery leaves it). Each probe is searched both ways, in a random order per probe, with
the node's default exposure for a criminal investigation (its data-subject categories and
the age rule of 18: the adapter sends the records of minors as the ``exclude`` list). The
in-process time is ``FaceMatcher.search`` / ``DnaMatcher.search``; the adapter's is
``ExternalMatcher.search``: the request, the ABIS's search (which embeds the probe photo
itself), the answer, and the node's check of each candidate against its own store.

- faces: a gallery of synthetic templates (prum.categories.face.synthetic, the shape of
  real dlib embeddings; the SFace half from a second model of its own dimension) in the
  node's model, real sample photos as probes (../shared/data or the registry's set);
- DNA: generated profiles (allele frequencies), probes half partial traces of stored
  people, half strangers.

Conformance. Our node as a real process, checked by ``prum conformance run`` with an
approver acting on the kit's step-2 requests (as tests/test_conformance.py does); then
the defect tests of tests/test_conformance.py (our node with one defect at a time: the
named check must fail, and only it), counted from pytest's JUnit report.

    nice -n 19 .venv/bin/python bench/abis.py [--faces 100000] [--dna 100000] [--rounds 3]

Writes bench/results/abis.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prum.categories.interface import Exposure, RecordMeta, SubjectCategory
from prum.config import Settings
from prum.errors import PrumError
from prum.federation.messages import Category, Probe, Purpose
from prum.node.abis.adapter import make_external
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.categories import make_matcher
from prum.node.config import CategoryPolicy
from report import ROOT, write_json, write_section

TOKEN = "bench-abis-token"
MAX_CANDIDATES = 10
TARGET_ADDED_P95_MS = 5.0  # issue 26: the adapter may add at most 5 ms at p95
CHUNK = 10_000
# Data-subject categories of the synthetic records, in the shares of the gallery bench.
SUBJECTS = [
    SubjectCategory.CONVICTED,
    SubjectCategory.SUSPECT,
    SubjectCategory.UNIDENTIFIED_SUSPECT,
    SubjectCategory.MISSING_PERSON,
    SubjectCategory.UNIDENTIFIED_REMAINS,
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def node_exposure() -> Exposure:
    """The node's default exposure for a criminal investigation (CategoryPolicy)."""
    policy = CategoryPolicy()
    return Exposure(
        subjects=policy.subjects_for(Purpose.INVESTIGATION),
        min_age=policy.min_age,
        unknown_age_exposed=policy.unknown_age_exposed,
    )


# --- the ABIS process ----------------------------------------------------------------------


class AbisProcess:
    """``prum abis serve`` for one category over a prepared data folder."""

    def __init__(self, category: Category, data_dir: Path, log_file: Path) -> None:
        from prum.demo.processes import free_port

        self.category = category
        self.data_dir = data_dir
        self.port = free_port()
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AbisProcess:
        command = [sys.executable, "-m", "prum", "abis", "serve", "--category"]
        command += [self.category.value, "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port)]
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                command,
                env=dict(os.environ, PRUM_ABIS_TOKEN=TOKEN),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the ABIS stopped: {self.log_file.read_text()[-2000:]}")
            try:
                response = httpx.get(
                    f"{self.url}/abis/v1/health",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=5,
                )
                if response.status_code == 200:
                    log(f"  ABIS {self.category.value} ready: {response.json()['records']:,}")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("the ABIS did not start within 10 minutes")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# --- the two stores ------------------------------------------------------------------------


def face_stores(root: Path, n: int, probe: bytes) -> tuple[Settings, Path, dict[str, Any]]:
    """The node's face gallery and the ABIS's, each of the same ``n`` synthetic
    templates in the node's model (named by embedding one probe photo)."""
    from prum.categories.face.store import NewRecord
    from prum.categories.face.synthetic import EmbeddingModel, EmbeddingShape, gallery_chunks

    node_settings = Settings(data_dir=root / "node", country="DE")
    node: Any = make_matcher(Category.FACE, node_settings)
    face = node.gallery.pipeline.extract(probe, use="probe")
    model_id, dim = face.template.model_id, len(face.template.vector)
    # The dlib half in the shape of real dlib embeddings; the rest (SFace in the fused
    # model) from a second model of its own dimension.
    dlib = min(dim, 128)
    rest = EmbeddingModel(EmbeddingShape(dim=dim - dlib), seed=7) if dim > dlib else None
    abis: Any = make_matcher(Category.FACE, Settings(data_dir=root / "abis", country="XA"))
    started = time.perf_counter()
    stored = 0
    rng = np.random.default_rng(3)
    for chunk in gallery_chunks(n, seed=11, chunk_templates=CHUNK):
        vectors = chunk.vectors
        if rest is not None:
            extra = rest.samples(rest.identities(len(vectors), rng), rng)
            vectors = np.concatenate([vectors, extra], axis=1)
        births = [
            None if int(d) == -(2**31) else dt.date(1970, 1, 1) + dt.timedelta(days=int(d))
            for d in chunk.dob_days
        ]
        records = [
            NewRecord(
                subject_category=SUBJECTS[int(c) % len(SUBJECTS)],
                provenance="synthetic template (bench/abis.py)",
                model_id=model_id,
                template=v.astype(np.float32),
                date_of_birth=b if b is None or b <= dt.date.today() else None,
                synthetic=True,
            )
            for v, c, b in zip(vectors, chunk.categories, births, strict=True)
        ]
        references = node.gallery.add_records(records)
        # The ABIS keeps the node's reference as the record's source key.
        abis.gallery.add_records(
            [
                dataclasses.replace(record, source_key=reference)
                for record, (_, reference) in zip(records, references, strict=True)
            ]
        )
        stored += len(records)
        log(f"  faces: {stored:,} of {n:,} in each store")
    node.gallery.save_index()
    abis.gallery.save_index()
    build_s = time.perf_counter() - started
    kind = node.gallery.describe()["index_kind"]
    node.close()
    abis.close()
    return (
        node_settings,
        root / "abis",
        {"model_id": model_id, "dim": dim, "build_s": round(build_s, 1), "index": str(kind)},
    )


def dna_stores(root: Path, n: int) -> tuple[Settings, Path, list[bytes]]:
    """The node's DNA store and the ABIS's (filled through the contract's insert, in
    process), and the probes: partial traces of stored people and strangers."""
    from prum.categories.dna.frequencies import AlleleFrequencies
    from prum.categories.dna.generate import Generator, profile_of
    from prum.categories.dna.loci import LocusSet
    from prum.node.abis.codecs import codec
    from prum.node.abis.contract import InsertRecord, InsertRequest
    from prum.node.abis.service import AbisService

    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    node_settings = Settings(data_dir=root / "node", country="DE")
    node: Any = make_matcher(Category.DNA, node_settings)
    service = AbisService(Category.DNA, root / "abis")
    dna_codec = codec(Category.DNA)
    ingester = node.ingester()
    preparer = ingester.preparer()
    _, engine = dna_codec.store_of(node)
    rng = np.random.default_rng(5)
    probes: list[bytes] = []
    done = 0
    for chunk in generator.stream(n, seed=9):
        prepared = [
            preparer.prepare(
                profile_of(row, loci, identified=True).to_json(),
                "dna-profile",
                RecordMeta(source_key=f"BENCH-{done + i}", synthetic=True),
            )
            for i, row in enumerate(chunk)
        ]
        with engine.begin() as conn:
            references = ingester.write(conn, prepared)
        ingester.refresh()
        for at in range(0, len(prepared), 500):
            service.insert(
                InsertRequest(
                    records=[
                        InsertRecord(
                            reference=reference,
                            subject=item.subject,
                            sample=dna_codec.to_sample(item),
                        )
                        for reference, item in zip(
                            references[at : at + 500], prepared[at : at + 500], strict=True
                        )
                    ]
                )
            )
        if len(probes) < 100:
            for row in chunk[:50]:
                trace = generator.trace(row, rng, keep=int(rng.integers(7, 13)))
                probes.append(profile_of(trace, loci, identified=False).to_json())
                stranger = generator.population(1, rng)[0]
                probes.append(profile_of(stranger, loci, identified=True).to_json())
        done += len(chunk)
        log(f"  DNA: {done:,} of {n:,} in each store")
    node.close()
    service.close()
    return node_settings, root / "abis", probes


# --- the measurement --------------------------------------------------------------------------


def paired(
    inprocess: Any, adapter: Any, probes: list[Probe], rounds: int, seed: int
) -> dict[str, Any]:
    """Each probe both ways, the order drawn per probe; the same candidates required."""
    exposure = node_exposure()

    def timed(matcher: Any, probe: Probe) -> tuple[float, list[str]]:
        started = time.perf_counter()
        result = matcher.search(probe, max_candidates=MAX_CANDIDATES, exposure=exposure)
        return 1000 * (time.perf_counter() - started), [c.reference for c in result.candidates]

    usable = []
    for probe in probes:  # warms both sides; a photo the node refuses is left out
        try:
            timed(inprocess, probe)
        except PrumError as exc:
            log(f"  probe left out: {exc.message}")
            continue
        usable.append(probe)
    probes = usable
    for probe in probes[:3]:
        timed(adapter, probe)
    order = random.Random(seed)
    ours: list[float] = []
    theirs: list[float] = []
    differ = 0
    load = []
    for _ in range(rounds):
        for probe in probes:
            first_ours = order.random() < 0.5
            if first_ours:
                a, found_a = timed(inprocess, probe)
                b, found_b = timed(adapter, probe)
            else:
                b, found_b = timed(adapter, probe)
                a, found_a = timed(inprocess, probe)
            ours.append(a)
            theirs.append(b)
            differ += found_a != found_b
        load.append(os.getloadavg()[0])
    added = [b - a for a, b in zip(ours, theirs, strict=True)]
    return {
        "probes": len(probes),
        "searches_each_way": len(ours),
        "inprocess_p50_ms": pct(ours, 50),
        "inprocess_p95_ms": pct(ours, 95),
        "adapter_p50_ms": pct(theirs, 50),
        "adapter_p95_ms": pct(theirs, 95),
        "added_p95_ms": round(pct(theirs, 95) - pct(ours, 95), 2),
        "added_p50_ms": round(pct(theirs, 50) - pct(ours, 50), 2),
        "paired_added_median_ms": pct(added, 50),
        "ratio_p95": round(pct(theirs, 95) / max(pct(ours, 95), 1e-9), 3),
        "answers_that_differ": differ,
        "load_average_during": round(float(np.mean(load)), 2),
    }


def excluded_count(settings: Settings, category: Category, url: str) -> int:
    """How many references the adapter sends as ``exclude`` with the node's exposure."""
    inner = make_matcher(category, settings)
    try:
        external: Any = make_external(category, inner, AbisEndpoint(url=url, token=TOKEN))
        return len(external._withheld(node_exposure()))
    finally:
        inner.close()


def measure(
    category: Category,
    settings: Settings,
    abis_dir: Path,
    probes: list[Probe],
    rounds: int,
    root: Path,
) -> dict[str, Any]:
    with AbisProcess(category, abis_dir, root / f"abis-{category.value}.log") as abis:
        inner = make_matcher(category, settings)
        endpoint = AbisEndpoint(url=abis.url, token=TOKEN, deadline_ms=120_000)
        adapter = make_external(category, inner, endpoint)
        try:
            result = paired(inner, adapter, probes, rounds, seed=len(probes))
        finally:
            adapter.close()  # closes the inner matcher too
        result["excluded_references_sent"] = excluded_count(settings, category, abis.url)
    return result


# --- conformance -----------------------------------------------------------------------------


def conformance(root: Path) -> dict[str, Any]:
    """The kit against our node as a process (the test's set-up), then the defect tests."""
    sys.path.insert(0, str(ROOT / "tests"))
    from prum.conformance.wire import make_test_pki
    from prum.federation.security import pki
    from test_conformance import run_kit_on_our_node

    pki_dir = root / "pki"
    make_test_pki(pki_dir, "DE", [], list(pki.DEFAULT_HOSTS))
    run = run_kit_on_our_node(root, pki_dir, ready_timeout=120, kit_timeout=600)
    kit, results, kit_s = run.kit, run.results, run.seconds
    outcomes = [r["outcome"] for r in results]
    log(f"  kit: exit {kit.returncode}, {len(results)} checks in {kit_s:.0f} s")
    junit = root / "defects.xml"
    started = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_conformance.py")),
            *("-q", "-p", "no:cacheprovider", "--junitxml", str(junit)),
            *("-k", "defect_fails_its_named_check or releases_anything"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    cases = ET.parse(junit).getroot().iter("testcase")
    tried = caught = 0
    missed = []
    for case in cases:
        tried += 1
        if any(child.tag in ("failure", "error", "skipped") for child in case):
            missed.append(case.get("name", "?"))
        else:
            caught += 1
    return {
        "checks": len(results),
        "checks_passed_own_node": outcomes.count("pass"),
        "checks_failed_own_node": outcomes.count("fail"),
        "checks_not_applicable_own_node": outcomes.count("not applicable"),
        "not_applicable": [
            {"id": r["id"], "detail": r["detail"]}
            for r in results
            if r["outcome"] == "not applicable"
        ],
        "kit_exit_code": kit.returncode,
        "kit_seconds": round(kit_s, 1),
        "defects_tried": tried,
        "defects_caught": caught,
        "defects_missed": missed,
        "defect_tests_seconds": round(time.perf_counter() - started, 1),
    }


# --- the report --------------------------------------------------------------------------------


def section(result: dict[str, Any]) -> str:
    face, dna, kit = result["face"], result["dna"], result["conformance"]
    rows = []
    for name, r, size in (
        (f"face, {face['gallery']:,} synthetic templates", face, face["gallery"]),
        (f"DNA, {dna['gallery']:,} generated profiles", dna, dna["gallery"]),
    ):
        del size
        rows.append(
            f"| {name} | {r['searches_each_way']} | {r['inprocess_p50_ms']}"
            f" | {r['inprocess_p95_ms']} | {r['adapter_p50_ms']} | {r['adapter_p95_ms']}"
            f" | {r['added_p95_ms']} | {r['paired_added_median_ms']} | {r['ratio_p95']}"
            f" | {r['excluded_references_sent']:,} | {r['answers_that_differ']} |"
        )
    verdict = "met" if result["target_met"] else "**MISSED**"
    return "\n".join(
        [
            "## ABIS adapter (`bench/abis.py`, issue 26)",
            "",
            "The same searches in-process (the built-in matcher) and through the HTTP"
            " adapter against a `prum abis serve` process on localhost, each probe both"
            " ways in a random order, the node's default exposure for an investigation"
            " (the adapter asks for a few more candidates and applies the age rule itself;"
            " it names the withheld minors as `exclude` only when the list comes back"
            f" short), {MAX_CANDIDATES} candidates. A face search includes embedding the"
            " probe photo (on the node in-process, in the ABIS through the adapter), so"
            " its p95 carries the photo's noise: the paired median is the steadier"
            f" figure. Load average {result['load_average_start']} at the start,"
            f" {face['load_average_during']} during the face searches.",
            "",
            "| category | searches each way | in-process p50 ms | p95 ms | adapter p50 ms"
            " | p95 ms | added at p95 ms | added, paired median ms | ratio p95"
            " | minors withheld by the age rule | answers that differ |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Target (faces, p95 added at most {TARGET_ADDED_P95_MS:g} ms): {verdict},"
            f" {face['added_p95_ms']} ms (p50 {face['added_p50_ms']} ms, paired median"
            f" {face['paired_added_median_ms']} ms). Face gallery: model {face['model_id']}"
            f" ({face['dim']} floats), index {face['index']}, both stores built in"
            f" {face['build_s']} s.",
            "",
            f"Conformance kit against our own node (a process; an approver acts on the"
            f" step-2 requests): {kit['checks']} checks, {kit['checks_passed_own_node']}"
            f" pass, {kit['checks_failed_own_node']} fail,"
            f" {kit['checks_not_applicable_own_node']} not applicable"
            f" (exit code {kit['kit_exit_code']}, {kit['kit_seconds']} s). Defects"
            f" (tests/test_conformance.py, one at a time, the named check must fail and"
            f" only it): {kit['defects_caught']} of {kit['defects_tried']} caught.",
        ]
    )


def photo_probes(limit: int) -> list[Probe]:
    from prum.demo.samples import sample_faces

    samples = sample_faces()
    return [
        Probe(format="image", data=base64.b64encode(path.read_bytes()))
        for path, _ in samples.images[:limit]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000, help="templates in the gallery")
    parser.add_argument("--dna", type=int, default=50_000, help="profiles in the store")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the face probes")
    parser.add_argument("--photos", type=int, default=61, help="face probe photos")
    parser.add_argument("--skip-conformance", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="do not write results")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="prum-abis-bench-"))
    load_start = round(os.getloadavg()[0], 2)
    log(f"in {root}; load average {load_start}")
    try:
        result: dict[str, Any] = {"load_average_start": load_start}
        probes = photo_probes(args.photos)
        log(f"faces: building two galleries of {args.faces:,}")
        settings, abis_dir, built = face_stores(root / "face", args.faces, probes[0].data)
        face = measure(Category.FACE, settings, abis_dir, probes, args.rounds, root / "face")
        result["face"] = {"gallery": args.faces, **built, **face}
        log(f"  {json.dumps(result['face'])}")
        log(f"DNA: building two stores of {args.dna:,}")
        settings, abis_dir, profiles = dna_stores(root / "dna", args.dna)
        dna_probes = [Probe(format="dna_profile", data=base64.b64encode(p)) for p in profiles]
        dna = measure(Category.DNA, settings, abis_dir, dna_probes, 2, root / "dna")
        result["dna"] = {"gallery": args.dna, **dna}
        log(f"  {json.dumps(result['dna'])}")
        if not args.skip_conformance:
            log("conformance kit against our own node, then the defects")
            result["conformance"] = conformance(root / "conformance")
            log(f"  {json.dumps(result['conformance'])}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    face = result["face"]
    result["inprocess_p95_ms"] = face["inprocess_p95_ms"]
    result["adapter_p95_ms"] = face["adapter_p95_ms"]
    result["added_p95_ms"] = face["added_p95_ms"]
    result["target_added_p95_ms"] = TARGET_ADDED_P95_MS
    result["target_met"] = face["added_p95_ms"] <= TARGET_ADDED_P95_MS
    for key in ("checks", "checks_passed_own_node", "defects_caught", "defects_tried"):
        if "conformance" in result:
            result[key] = result["conformance"][key]
    verdict = "met" if result["target_met"] else "MISSED"
    log(
        f"target: the adapter adds at most {TARGET_ADDED_P95_MS} ms at p95 (faces):"
        f" {verdict}, {face['added_p95_ms']} ms; load average now {os.getloadavg()[0]:.2f}"
    )
    if args.no_report or "conformance" not in result:
        print(json.dumps(result, indent=2))
        return
    log(f"wrote {write_json('abis', result)}")
    write_section("abis", section(result))
    log("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
