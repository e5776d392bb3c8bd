"""Fault and abuse campaign: faults survived and bad inputs refused, with nothing lost.

Starts a real federation (bench/faultworld.py: a router and three nodes as separate
processes over mutual TLS on 127.0.0.1, PostgreSQL for HU, SQLite for AT and DE, and
four misbehaving stand-in nodes) and runs each experiment as a scripted, bounded step:

- faults: kill -9 of the router mid-fan-out, of the holder during a core-data release,
  of the requester during a DNA bulk comparison; PostgreSQL restarted during an import;
  a full disk during an import, under the holder's audit log and under the router's; a
  node that never answers, one too slow, one answering garbage, one signing with another
  party's key; a node's clock 10 minutes ahead and 10 minutes behind; a certificate
  revoked mid-run, and an expired one;
- bad inputs (bench/faults_inputs.py): each class a count tried, refused, server errors
  and protected rows changed.

After every fault the federation must be whole again: every process healthy, a normal
search answered, every node's audit chain verifying. Records lost and duplicated are
counted from the databases themselves.

    .venv/bin/python bench/faults.py [--only NAME ...] [--skip-inputs] [--root DIR]

Needs root for the tmpfs disks and the PostgreSQL restart (those rows are reported as
not run otherwise), and libfaketime for the clock-skew rows (installed with apt if
missing and root). Writes bench/results/faults.json and docs/reliability.md's table.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultworld import (
    DNA_AT,
    HOLDER,
    PARTIES,
    POSTGRES_PARTY,
    REQUESTER,
    TRACES_AT_AT,
    FaultRow,
    InputClass,
    World,
    wait_for,
)
from prum.errors import Unavailable
from prum.federation.security import pki
from report import ROOT, write_json

RELIABILITY_MD = ROOT / "docs" / "reliability.md"
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
# A search of the misbehaving stand-ins waits this long for them.
DEADLINE_MS = 3_000
IMPORT_PERSONS = 20_000
# Lines of the national-systems batch a node is killed under: twenty of the interface's
# 500-line transactions, so the kill lands between and inside them.
SYSTEMS_BATCH = 10_000

Fault = Callable[[World], FaultRow]
FAULTS: dict[str, Fault] = {}


def fault(name: str) -> Callable[[Fault], Fault]:
    def register(function: Fault) -> Fault:
        FAULTS[name] = function
        return function

    return register


# --- helpers -----------------------------------------------------------------------------------


def data_rows(stored: dict[str, dict[str, int]]) -> dict[str, int]:
    """The national data only (category records and core data), per party and table."""
    return {
        f"{party}.{table}": n
        for party, tables in stored.items()
        for table, n in tables.items()
        if not table.startswith("node_") or table == "node_core_data"
    }


def lost_rows(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> int:
    old, new = data_rows(before), data_rows(after)
    return sum(max(0, n - new.get(key, 0)) for key, n in old.items())


def error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:120]}"
    if isinstance(body, dict) and "message" in body:
        return f"HTTP {response.status_code} {body.get('code')}: {body['message']}"
    return f"HTTP {response.status_code}"


def statuses(response: httpx.Response) -> dict[str, tuple[str, str]]:
    """Per country: (status, error message) of a search answer."""
    return {
        r["party"]: (r["status"], (r.get("error") or {}).get("message", ""))
        for r in response.json()["replies"]
    }


def recovered(world: World, row: FaultRow) -> bool:
    """After a fault: all processes up, a normal search answered, every chain verifying."""
    if not world.healthy():
        row.notes.append("a process is not healthy afterwards")
        return False
    response = world.search("dna")
    if response.status_code != 200 or statuses(response).get(HOLDER, ("",))[0] != "answered":
        row.notes.append(f"a normal search afterwards: {error_text(response)}")
        return False
    broken = [party for party in PARTIES if not world.audit_ok(party)]
    if broken:
        row.notes.append(f"audit chain does not verify at {', '.join(broken)}")
        return False
    return True


def confirmed_dna_hit(world: World) -> tuple[int, str]:
    """AT's officer searches with the trace; AT's examiner confirms DE's hit."""
    response = world.search("dna", targets=[HOLDER])
    response.raise_for_status()
    result = response.json()
    [reply] = result["replies"]
    reference = reply["candidates"][0]["reference"]
    with world.api(REQUESTER, "eric") as examiner:
        examiner.post(
            f"/api/searches/{result['id']}/verifications",
            json={
                "party": HOLDER,
                "reference": reference,
                "decision": "confirmed",
                "justification": "All ten loci agree; the probability of a chance match is"
                " negligible.",
            },
        ).raise_for_status()
    return int(result["id"]), reference


def requests_out(world: World, search_id: int) -> list[dict[str, Any]]:
    with world.api(REQUESTER) as officer:
        rows = officer.get("/api/core-data-requests").json()
    return [r for r in rows if r["search_id"] == search_id]


def run_sql(world: World, party: str, sql: str) -> list[Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(world.database_url(party))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def fill_disk(folder: Path) -> Path:
    """Fill the tmpfs at ``folder`` to the last block; returns the filler file."""
    filler = folder / "filler.bin"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (2**20, 4096, 512):
            block = b"\0" * size
            try:
                while True:
                    os.write(descriptor, block)
            except OSError:
                pass
    finally:
        os.close(descriptor)
    return filler


def person_lines(path: Path, n: int, *, seed: int, tag: str) -> None:
    from prum.categories.records.synthetic import PersonGenerator

    with open(path, "w") as out:
        for i, person in enumerate(PersonGenerator(seed=seed).people(n)):
            record = {"offence": "fraud", "synthetic": True, "source_key": f"{tag}-{i}"}
            out.write(json.dumps({**person.to_dict(), "record": record}) + "\n")


def import_records(world: World, party: str, file: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "prum", "records", "import", str(file)]
    command += ["--database-url", world.database_url(party)]
    command += ["--data-dir", str(world.layout.parties[party].data_dir)]
    # The federation's records key, as the node itself uses it (prum pki records-key).
    env = {**os.environ, "PRUM_RECORDS_KEY": str(world.layout.config(party).records_key_path())}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def persons_tagged(world: World, party: str, tag: str) -> tuple[int, int]:
    """(rows, distinct source keys) of the persons an import with ``tag`` stored."""
    [(rows, distinct)] = run_sql(
        world,
        party,
        "select count(*), count(distinct source_key) from records_persons"
        f" where source_key like '{tag}-%'",
    )
    return int(rows), int(distinct)


def last_line(output: str) -> str:
    """A command's last message in one line (Rich wraps long ones over several)."""
    text = " ".join(line.strip() for line in output.splitlines() if line.strip())
    at = text.rfind("error:")
    text = text[at:] if at >= 0 else text
    return text[-240:] if text else "(no output)"


# --- process faults ------------------------------------------------------------------------------


@fault("router killed mid-fan-out")
def router_kill(world: World) -> FaultRow:
    row = FaultRow("router killed mid-fan-out", "kill -9 of the router 1 s into a search")
    before = world.stored_everywhere()
    answer: dict[str, Any] = {}

    def search() -> None:
        answer["response"] = world.search("dna", targets=[HOLDER, "CZ"], deadline_ms=8_000)

    started = time.monotonic()
    thread = threading.Thread(target=search)
    thread.start()
    time.sleep(1.0)
    world.federation.kill("ROUTER")
    thread.join(timeout=60)
    waited = time.monotonic() - started
    response = answer.get("response")
    world.federation.restart("ROUTER")
    after = world.stored_everywhere()
    row.lost = lost_rows(before, after)
    searches = after[REQUESTER]["node_searches"] - before[REQUESTER]["node_searches"]
    row.duplicated = max(0, searches - 1)
    if response is None:
        row.seen = "no answer at all"
        return row
    row.seen = f"after {waited:.1f} s: {error_text(response)}"
    clear = response.status_code in (502, 503, 504)  # "try again", never a crash (500)
    row.survived = clear and waited < 10 and recovered(world, row)
    return row


@fault("holder killed during a core-data release")
def holder_kill_release(world: World) -> FaultRow:
    row = FaultRow(
        "holder killed during a core-data release",
        "kill -9 of DE 50 ms after its approver pressed release",
    )
    search_id, reference = confirmed_dna_hit(world)
    with world.api(REQUESTER) as officer:
        officer.post(
            "/api/core-data-requests",
            json={
                "search_id": search_id,
                "party": HOLDER,
                "reference": reference,
                "facts": "Burglary of a pharmacy in Graz on 1 December 2026; trace on the safe.",
            },
        ).raise_for_status()

    def pending() -> list[dict[str, Any]]:
        with world.api(HOLDER, "anna") as approver:
            return [
                r
                for r in approver.get("/api/inbox").json()
                if r["status"] == "pending" and r["reference"] == reference
            ]

    [incoming] = wait_for("the request in DE's inbox", pending)
    before = world.stored_everywhere()

    def release() -> None:
        try:
            with world.api(HOLDER, "anna", timeout=10) as approver:
                approver.post(f"/api/inbox/{incoming['id']}/decision", json={"action": "release"})
        except httpx.HTTPError:
            pass  # the process died under it

    thread = threading.Thread(target=release)
    thread.start()
    time.sleep(0.05)
    world.federation.kill(HOLDER)
    thread.join(timeout=30)
    world.federation.restart(HOLDER)
    again = pending()
    if again:  # the release did not commit before the kill: the approver presses again
        row.notes.append("the release had not committed; the approver released again")
        with world.api(HOLDER, "anna") as approver:
            approver.post(
                f"/api/inbox/{incoming['id']}/decision", json={"action": "release"}
            ).raise_for_status()
    try:
        [done] = wait_for(
            "the core data at AT",
            lambda: [r for r in requests_out(world, search_id) if r["status"] == "released"],
        )
    except Exception as exc:
        row.seen = f"core data never arrived: {exc}"
        row.lost = 1
        return row
    time.sleep(1.5)  # any second delivery would arrive meanwhile
    rows_out = requests_out(world, search_id)
    row.duplicated = max(0, len(rows_out) - 1)
    after = world.stored_everywhere()
    row.lost = lost_rows(before, after)
    surnames = done["reply"]["core_data"].get("surnames")
    row.seen = f"DE restarted; AT shows the request released once, core data {surnames}"
    row.survived = recovered(world, row)
    return row


@fault("requester killed during bulk DNA comparison")
def requester_kill_bulk(world: World) -> FaultRow:
    row = FaultRow(
        "requester killed during bulk DNA comparison",
        "kill -9 of AT after the first batch of its initial comparison with DE",
    )
    admin = lambda: world.api(REQUESTER, "ada")  # noqa: E731

    def job() -> dict[str, Any] | None:
        with admin() as client:
            jobs = [j for j in client.get("/api/dna/comparisons").json() if j["party"] == HOLDER]
        return next((j for j in jobs if j["mode"] == "initial_bulk"), None)

    with admin() as client:
        client.post("/api/dna/comparisons", json={"parties": [HOLDER]}).raise_for_status()
    wait_for("a first batch", lambda: (j := job()) and j["batches"] >= 1)
    world.federation.kill(REQUESTER)
    world.federation.restart(REQUESTER)
    done = wait_for(
        "the comparison to finish", lambda: (j := job()) and j["status"] == "done" and j
    )
    hits: dict[tuple[str, str], int] = {}
    with admin() as client:
        for summary in client.get("/api/searches").json():
            search = client.get(f"/api/searches/{summary['id']}").json()
            for answer in search["replies"]:
                for c in answer["candidates"]:
                    if c.get("probe_reference"):  # a comparison's hit, not a one-off search's
                        key = (c["probe_reference"], c["reference"])
                        hits[key] = hits.get(key, 0) + 1
    traces_found = len({probe for probe, _ in hits})
    row.lost = max(0, TRACES_AT_AT - traces_found) + max(
        0, DNA_AT + TRACES_AT_AT - done["compared"]
    )
    row.duplicated = sum(n - 1 for n in hits.values())
    row.seen = (
        f"AT restarted and resumed: {done['compared']} profiles compared in"
        f" {done['batches']} batches, {len(hits)} hits for {traces_found} traces"
    )
    row.survived = row.lost == 0 and row.duplicated == 0 and recovered(world, row)
    return row


# --- storage faults ------------------------------------------------------------------------------


@fault("PostgreSQL restarted during an import")
def postgres_restart(world: World) -> FaultRow:
    row = FaultRow(
        "PostgreSQL restarted during an import",
        f"pg_ctlcluster restart while HU's import of {IMPORT_PERSONS:,} persons writes (one"
        " transaction); then the import run again",
    )
    if world.postgres_url is None or os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        row.seen = "not run: needs root, pg_ctlcluster and PostgreSQL for HU"
        return row
    file = world.root / "pg-import.jsonl"
    person_lines(file, IMPORT_PERSONS, seed=41, tag="pg")
    process = import_records(world, POSTGRES_PARTY, file)
    # Restart while the import's transaction is writing, seen from the server itself.
    writing = (
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and query ilike 'insert into records_persons%' and pid <> pg_backend_pid()"
    )
    with contextlib.suppress(Unavailable):  # reported below as "had finished"
        wait_for(
            "the import's transaction",
            lambda: process.poll() is not None or run_sql(world, POSTGRES_PARTY, writing)[0][0],
            timeout=300,
        )
    time.sleep(0.3)
    still_running = process.poll() is None
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )
    output, _ = process.communicate(timeout=600)
    first = persons_tagged(world, POSTGRES_PARTY, "pg")
    row.notes.append(
        f"first import {'interrupted' if still_running else 'had finished'}: exit"
        f" {process.returncode}, {last_line(output)}; {first[0]} persons stored"
    )
    process = import_records(world, POSTGRES_PARTY, file)  # the operator runs it again
    output, _ = process.communicate(timeout=600)
    rows, distinct = persons_tagged(world, POSTGRES_PARTY, "pg")
    row.lost = IMPORT_PERSONS - distinct
    row.duplicated = rows - distinct
    row.seen = (
        f"first run: {row.notes[-1]}; second run: exit {process.returncode}, {last_line(output)}"
    )
    # The running HU node lost its connections too: it must answer again by itself.
    response = world.search("dna", targets=[POSTGRES_PARTY])
    hu = statuses(response).get(POSTGRES_PARTY, ("?", ""))
    row.notes.append(f"HU's answer after the restart: {hu[0]}")
    row.survived = (
        still_running
        and first[0] in (0, IMPORT_PERSONS)
        and process.returncode == 0
        and hu[0] in ("answered", "no_hit")
        and recovered(world, row)
    )
    return row


@fault("disk full during an import")
def disk_full_import(world: World) -> FaultRow:
    row = FaultRow("disk full during an import", "DE's disk (tmpfs) full; import 5,000 persons")
    folder = world.tmpfs.get(HOLDER)
    if folder is None:
        row.seen = "not run: needs root to mount a tmpfs"
        return row
    file = world.root / "full-import.jsonl"
    person_lines(file, 5_000, seed=43, tag="full")
    filler = fill_disk(folder)
    try:
        process = import_records(world, HOLDER, file)
        output, _ = process.communicate(timeout=600)
        first_exit = process.returncode
        first = persons_tagged(world, HOLDER, "full")
    finally:
        filler.unlink()
    process = import_records(world, HOLDER, file)
    second, _ = process.communicate(timeout=600)
    rows, distinct = persons_tagged(world, HOLDER, "full")
    row.lost, row.duplicated = 5_000 - distinct, rows - distinct
    row.seen = (
        f"exit {first_exit}, {last_line(output)}; stored {first[0]};"
        f" after freeing space: {last_line(second)}"
    )
    row.survived = (
        first_exit != 0 and first[0] == 0 and process.returncode == 0 and recovered(world, row)
    )
    return row


@fault("disk full under the holder's audit log")
def disk_full_node_audit(world: World) -> FaultRow:
    row = FaultRow(
        "disk full under the holder's audit log", "DE's disk full; AT searches DE and HU"
    )
    folder = world.tmpfs.get(HOLDER)
    if folder is None:
        row.seen = "not run: needs root to mount a tmpfs"
        return row
    before = world.stored_everywhere()
    # SQLite's write-ahead log keeps the space it once had: empty it first, so that the
    # next write needs new blocks of the full disk.
    run_sql(world, HOLDER, "pragma wal_checkpoint(TRUNCATE)")
    filler = fill_disk(folder)
    try:
        response = world.search("dna")
        seen = statuses(response) if response.status_code == 200 else {}
    finally:
        filler.unlink()
    de = seen.get(HOLDER, ("?", error_text(response)))
    row.seen = f"DE: {de[0]}: {de[1]}; HU: {seen.get(POSTGRES_PARTY, ('?',))[0]}"
    row.lost = lost_rows(before, world.stored_everywhere())
    # DE must not answer what it cannot log; HU answers as usual.
    row.survived = (
        de[0] in ("error", "refused", "unavailable")
        and seen.get(POSTGRES_PARTY, ("",))[0] in ("answered", "no_hit")
        and recovered(world, row)
    )
    return row


@fault("disk full under the router's audit log")
def disk_full_router_audit(world: World) -> FaultRow:
    row = FaultRow("disk full under the router's audit log", "the router's disk full; AT searches")
    folder = world.tmpfs.get("ROUTER")
    if folder is None:
        row.seen = "not run: needs root to mount a tmpfs"
        return row
    filler = fill_disk(folder)
    try:
        responses = [world.search("dna") for _ in range(3)]
    finally:
        filler.unlink()
    last = responses[-1]
    row.seen = "; ".join(dict.fromkeys(error_text(r) for r in responses))
    # The router refuses work it cannot log: the search fails with a clear 503.
    refused = last.status_code in (502, 503)
    row.survived = refused and recovered(world, row)
    return row


# --- misbehaving nodes ---------------------------------------------------------------------------


def _rogue(world: World, party: str, name: str, what: str, expected: str) -> FaultRow:
    row = FaultRow(name, what)
    started = time.monotonic()
    response = world.search("dna", targets=[HOLDER, party], deadline_ms=DEADLINE_MS)
    waited = time.monotonic() - started
    if response.status_code != 200:
        row.seen = error_text(response)
        return row
    seen = statuses(response)
    status, message = seen.get(party, ("?", ""))
    row.seen = f"after {waited:.1f} s: {party} {status}: {message}; DE {seen[HOLDER][0]}"
    row.survived = (
        status == expected
        and seen[HOLDER][0] == "answered"
        and waited < DEADLINE_MS / 1000 + 2
        and recovered(world, row)
    )
    return row


@fault("a node that never answers")
def silent_node(world: World) -> FaultRow:
    return _rogue(
        world, "CZ", "a node that never answers", "CZ accepts TCP and stays silent", "timeout"
    )


@fault("a node slower than the deadline")
def slow_node(world: World) -> FaultRow:
    return _rogue(
        world, "SK", "a node slower than the deadline", "SK answers after 30 s", "timeout"
    )


@fault("a node answering garbage")
def malformed_node(world: World) -> FaultRow:
    return _rogue(world, "PL", "a node answering garbage", "PL answers HTML, not JSON", "error")


@fault("a reply signed by another party")
def wrongly_signed(world: World) -> FaultRow:
    return _rogue(
        world,
        "SE",
        "a reply signed by another party",
        "SE's reply is signed with DE's key",
        "error",
    )


# --- clocks and certificates ---------------------------------------------------------------------


def _faketime_ready() -> bool:
    if FAKETIME_LIB.exists():
        return True
    if os.geteuid() != 0:
        return False
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "faketime"],
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return FAKETIME_LIB.exists()


def _skewed(world: World, offset: str) -> FaultRow:
    name = f"clock {offset} on one node"
    row = FaultRow(name, f"HU restarted with its clock {offset[0]}10 minutes (libfaketime)")
    if not _faketime_ready():
        row.seen = "not run: libfaketime is not installed (apt-get install faketime)"
        return row
    world.federation.kill(POSTGRES_PARTY, signal.SIGTERM)
    world.federation.environment[POSTGRES_PARTY] = {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }
    try:
        world.federation.restart(POSTGRES_PARTY)
        answer = world.search("dna")
        seen = statuses(answer) if answer.status_code == 200 else {}
        hu = seen.get(POSTGRES_PARTY, ("?", error_text(answer)))
        with world.api(POSTGRES_PARTY) as officer:
            own = officer.post("/api/searches", json=world.search_body("dna", targets=[HOLDER]))
        row.seen = (
            f"AT's search: HU {hu[0]}: {hu[1]}; DE {seen.get(HOLDER, ('?',))[0]}."
            f" HU's own search: {error_text(own) if own.status_code != 200 else 'sent'}"
        )
        refused_own = own.status_code != 200 or any(
            r["status"] != "answered" for r in own.json()["replies"]
        )
        row.survived = (
            hu[0] in ("error", "refused")
            and seen.get(HOLDER, ("",))[0] == "answered"
            and refused_own
        )
    finally:
        world.federation.kill(POSTGRES_PARTY, signal.SIGTERM)
        world.federation.environment.pop(POSTGRES_PARTY)
        world.federation.restart(POSTGRES_PARTY)
    row.survived = row.survived and recovered(world, row)
    return row


@fault("clock 10 minutes ahead")
def clock_ahead(world: World) -> FaultRow:
    return _skewed(world, "+10m")


@fault("clock 10 minutes behind")
def clock_behind(world: World) -> FaultRow:
    return _skewed(world, "-10m")


@fault("certificate revoked mid-run")
def revoked(world: World) -> FaultRow:
    row = FaultRow(
        "certificate revoked mid-run",
        "`prum pki revoke HU` while everything runs; then a new certificate for HU",
    )
    pki.revoke(world.layout.pki_dir, POSTGRES_PARTY)
    time.sleep(1.5)  # verifiers look at crl.pem once a second
    answer = world.search("dna")
    hu = statuses(answer).get(POSTGRES_PARTY, ("?", "")) if answer.status_code == 200 else ("?", "")
    with world.api(POSTGRES_PARTY) as officer:
        own = officer.post("/api/searches", json=world.search_body("dna", targets=[HOLDER]))
    row.seen = (
        f"HU's answers: {hu[0]}: {hu[1]}. HU's own search:"
        f" {error_text(own) if own.status_code != 200 else own.json()['replies']}"
    )
    blocked = hu[0] in ("error", "refused") and own.status_code != 200
    pki.issue(world.layout.pki_dir, POSTGRES_PARTY, role="node")
    world.federation.kill(POSTGRES_PARTY, signal.SIGTERM)
    world.federation.restart(POSTGRES_PARTY)
    row.survived = blocked and recovered(world, row)
    return row


@fault("expired certificate")
def expired(world: World) -> FaultRow:
    import datetime as dt

    row = FaultRow("expired certificate", "HU restarted with a certificate that expired yesterday")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    pki.issue(world.layout.pki_dir, POSTGRES_PARTY, role="node", not_before=past, days=2)
    world.federation.kill(POSTGRES_PARTY, signal.SIGTERM)
    world.federation.start(POSTGRES_PARTY)
    time.sleep(4)
    process = world.federation.processes[POSTGRES_PARTY]
    answer = world.search("dna")
    hu = statuses(answer).get(POSTGRES_PARTY, ("?", "")) if answer.status_code == 200 else ("?", "")
    row.seen = (
        f"HU {'running' if process.poll() is None else f'exited {process.returncode}'};"
        f" AT's search: HU {hu[0]}: {hu[1]}"
    )
    blocked = hu[0] in ("error", "refused", "unavailable")
    pki.issue(world.layout.pki_dir, POSTGRES_PARTY, role="node")
    world.federation.kill(POSTGRES_PARTY, signal.SIGTERM)
    world.federation.restart(POSTGRES_PARTY)
    row.survived = blocked and recovered(world, row)
    return row


# --- the national-systems interface --------------------------------------------------------------


@fault("holder killed before its erasure notices left")
def holder_kill_withdrawal(world: World) -> FaultRow:
    """DE's national DNA database erases a record that AT and HU received as a candidate;
    the router is down, so the two withdrawal notices wait in DE's outbox; DE is killed
    (-9); router and DE come back: each receiver must get its notice once."""
    import numpy as np
    import sqlalchemy as sa

    from prum.categories.dna.frequencies import AlleleFrequencies
    from prum.categories.dna.generate import Generator, profile_of
    from prum.categories.dna.loci import LocusSet
    from prum.federation.messages import Category
    from prum.node.systems.accounts import add_system

    row = FaultRow(
        "holder killed before its erasure notices left",
        f"AT and {POSTGRES_PARTY} received a record of {HOLDER} as a candidate; router"
        f" killed; {HOLDER}'s national system erases the record; kill -9 of {HOLDER};"
        " router and holder restarted",
    )
    receivers = [REQUESTER, POSTGRES_PARTY]
    engine = sa.create_engine(world.database_url(HOLDER))
    try:
        token = add_system(engine, "faults-erasure", {Category.DNA})
    finally:
        engine.dispose()
    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    person = generator.database(1, seed=77, trace_share=0, family_share=0).codes[0]
    systems = httpx.Client(
        base_url=world.layout.parties[HOLDER].systems_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    with systems:
        stored = systems.post(
            "/v1/records",
            json={
                "category": "dna",
                "national_id": "FAULT-ERASED-1",
                "sample": {
                    "format": "dna-profile",
                    "content": profile_of(person, loci, identified=True).to_dict(),
                },
            },
        )
        stored.raise_for_status()
        reference = stored.json()["reference"]
        trace = profile_of(
            generator.trace(person, np.random.default_rng(77), keep=10), loci, identified=False
        ).to_json()
        body = world.search_body(
            "dna",
            targets=[HOLDER],
            probe={"format": "dna_profile", "data": base64.b64encode(trace).decode()},
        )
        searched = {}
        for party in receivers:
            with world.api(party) as officer:
                response = officer.post("/api/searches", json=body)
            response.raise_for_status()
            searched[party] = int(response.json()["id"])
        world.federation.kill("ROUTER")
        try:
            systems.delete(
                "/v1/records/dna/FAULT-ERASED-1", params={"reason": "erasure"}
            ).raise_for_status()
            [(queued,)] = run_sql(
                world,
                HOLDER,
                "SELECT count(*) FROM node_outbox WHERE kind = 'record_withdrawn'"
                f" AND delivered_at IS NULL AND CAST(envelope AS TEXT) LIKE '%{reference}%'",
            )
            world.federation.kill(HOLDER)
        finally:
            world.federation.restart("ROUTER")
            world.federation.restart(HOLDER)

    def withdrawn_at(party: str) -> bool:
        with world.api(party) as officer:
            found = officer.get(f"/api/searches/{searched[party]}").json()
        return any(
            c["reference"] == reference and c.get("withdrawn") and not c.get("details")
            for reply in found["replies"]
            for c in reply["candidates"]
        )

    arrived = []
    for party in receivers:
        try:
            wait_for(f"the withdrawal at {party}", lambda p=party: withdrawn_at(p))
            arrived.append(party)
        except Unavailable:
            row.notes.append(f"{party} never received the notice")
    time.sleep(1.5)  # a second delivery would arrive meanwhile
    notices = {
        party: run_sql(
            world,
            party,
            "SELECT count(*) FROM audit_entries WHERE kind = 'record_withdrawn'"
            f" AND body LIKE '%{reference}%'",
        )[0][0]
        for party in receivers
    }
    row.lost = len(receivers) - len(arrived)
    row.duplicated = sum(max(0, n - 1) for n in notices.values())
    row.seen = (
        f"{queued} notices queued with the erasure; after the restart"
        f" {', '.join(arrived) or 'nobody'} removed the candidate (notices applied:"
        f" {', '.join(f'{p} {n}' for p, n in notices.items())})"
    )
    row.survived = queued == len(receivers) and row.lost == 0 and row.duplicated == 0
    row.survived = row.survived and recovered(world, row)
    return row


# --- an external matcher (ABIS) ------------------------------------------------------------------

ABIS_TOKEN = "faults-abis-token"
ABIS_STREAM = 600  # DNA records DE's national system sends while its ABIS is killed
ABIS_DEADLINE_MS = 6_000


class AbisServer:
    """A ``prum abis serve`` process for DE's DNA, with its own store in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        from prum.demo.processes import free_port

        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "prum", "abis", "serve", "--category", "dna"]
        command += ["--data-dir", str(self.data_dir), "--port", self.url.rsplit(":", 1)[1]]
        with open(self.data_dir.with_suffix(".log"), "ab") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, "PRUM_ABIS_TOKEN": ABIS_TOKEN},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise Unavailable(f"the ABIS exited with {self.process.returncode}")
            try:
                self.records()
            except httpx.HTTPError:
                return False
            return True

        wait_for("the ABIS", ready)

    def records(self) -> int:
        response = httpx.get(
            f"{self.url}/abis/v1/health",
            headers={"Authorization": f"Bearer {ABIS_TOKEN}"},
            timeout=2,
        )
        response.raise_for_status()
        return int(response.json()["records"])

    def send(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.send(sig)
        if self.process is not None:
            self.process.wait(timeout=30)
        self.process = None

    def wait_for_request(self, timeout: float) -> bool:
        """Until a request waits unread in the (stopped) ABIS's socket: bytes in the
        receive queue of a connection to its port (``ss``)."""
        port = self.url.rsplit(":", 1)[1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                capture_output=True,
                text=True,
            ).stdout
            if any(line.split()[0] != "0" for line in out.splitlines() if line.split()):
                return True
            time.sleep(0.05)
        return False

    def held(self) -> list[str]:
        """The node references its store holds, one per row."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.data_dir / "gallery.sqlite")) as db:
            return [str(r[0]) for r in db.execute("SELECT source_key FROM dna_records")]


def _holder_dna_policy(world: World, endpoint: Any) -> None:
    """DE's configuration with its DNA matched by ``endpoint`` (None: the built-in
    matcher again); DE restarted to take it."""
    from prum.federation.messages import Category

    config = world.layout.config(HOLDER)
    categories = dict(config.categories)
    categories[Category.DNA] = categories[Category.DNA].model_copy(update={"abis": endpoint})
    config = config.model_copy(update={"categories": categories})
    world.layout.parties[HOLDER].config_path.write_text(config.model_dump_json(indent=2))
    with contextlib.suppress(ProcessLookupError):  # DE may have died in the experiment
        world.federation.kill(HOLDER, signal.SIGTERM)
    world.federation.restart(HOLDER)


def _abis_lag(world: World) -> dict[str, Any]:
    with world.api(HOLDER) as officer:
        response = officer.get("/api/abis")
    response.raise_for_status()
    return dict(response.json().get("dna", {}))


@fault("ABIS killed")
def abis_killed(world: World) -> FaultRow:
    """DE's DNA is matched by a ``prum abis serve`` process (docs/abis.md): kill -9 of
    it during a search gives DE's status error within the ABIS deadline; kill -9 of it
    during a stream of inserts loses and duplicates nothing once it is back."""
    import sqlalchemy as sa

    from ingest import dna_lines
    from prum.federation.messages import Category
    from prum.node.abis.endpoint import AbisEndpoint
    from prum.node.systems.accounts import add_system

    row = FaultRow(
        "ABIS killed",
        f"DE's DNA matched by a `prum abis serve` process; kill -9 of it while a search waits on it"
        f" (deadline {ABIS_DEADLINE_MS / 1000:g} s), and while {ABIS_STREAM} records"
        " sent to DE's national-systems interface flow to it; restarted",
    )
    abis = AbisServer(world.root / "abis-dna")
    abis.data_dir.mkdir(exist_ok=True)
    abis.start()
    endpoint = AbisEndpoint(
        url=abis.url,
        token=ABIS_TOKEN,
        deadline_ms=ABIS_DEADLINE_MS,
        breaker_reset_seconds=1,
        insert_batch=20,  # small requests, so that the kill lands inside the stream
    )
    try:
        _holder_dna_policy(world, endpoint)
        # 1. A search waits on the ABIS (stopped), which is killed under it.
        answer: dict[str, Any] = {}
        abis.send(signal.SIGSTOP)
        thread = threading.Thread(
            target=lambda: answer.update(
                response=world.search("dna", targets=[HOLDER], deadline_ms=15_000)
            )
        )
        started = time.monotonic()
        thread.start()
        reached = abis.wait_for_request(timeout=ABIS_DEADLINE_MS / 1000 - 1)
        abis.kill()
        thread.join(timeout=60)
        waited = time.monotonic() - started
        response = answer.get("response")
        if response is None or response.status_code != 200:
            seen = "no answer" if response is None else error_text(response)
            row.seen = f"the search during the kill: {seen}"
            return row
        [reply] = [r for r in response.json()["replies"] if r["party"] == HOLDER]
        error = reply.get("error") or {}
        when = "with the request waiting in" if reached else "before the request reached"
        search_seen = (
            f"search: killed {when} its socket; DE {reply['status']}"
            f" ({error.get('code')}: {error.get('message', '')})"
            f" after {waited:.1f} s"
        )
        in_time = waited < ABIS_DEADLINE_MS / 1000 + 3
        search_ok = reply["status"] == "error" and in_time and reached
        # 2. A stream of inserts; the ABIS killed part-way, then back.
        abis.start()
        engine = sa.create_engine(world.database_url(HOLDER))
        try:
            token = add_system(engine, "faults-abis-dna", {Category.DNA})
        finally:
            engine.dispose()
        lines = dna_lines(ABIS_STREAM, seed=23, prefix="ABIS-")
        with httpx.Client(
            base_url=world.layout.parties[HOLDER].systems_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as systems:
            batch = systems.post(
                "/v1/batches",
                content="\n".join(lines).encode(),
                headers={"Content-Type": "application/x-ndjson"},
            )
        batch.raise_for_status()
        wait_for("the ABIS part-way", lambda: abis.records() >= 60, timeout=60)
        abis.kill()
        waiting = _abis_lag(world).get("pending", 0)
        abis.start()
        wait_for("DE's ABIS queue drained", lambda: _abis_lag(world).get("pending") == 0)
        held = abis.held()
        queued = [
            (r[0] if isinstance(r[0], dict) else json.loads(r[0]))["reference"]
            for r in run_sql(
                world, HOLDER, "SELECT envelope FROM node_outbox WHERE kind = 'abis_insert'"
            )
        ]
        stored = {str(r[0]) for r in run_sql(world, HOLDER, "SELECT reference FROM dna_records")}
        sent = set(queued) & stored
        if len(queued) != len(set(queued)):
            row.notes.append("a record was queued twice for the ABIS")
        row.lost = len(sent - set(held))
        row.duplicated = len(held) - len(set(held)) + len(set(held) - sent)
        # 3. Back: after the breaker's pause, DE finds a streamed record through it.
        time.sleep(1.2)
        profile = json.dumps(json.loads(lines[0])["sample"]["content"]).encode()
        again = world.search(
            "dna",
            targets=[HOLDER],
            deadline_ms=15_000,
            probe={"format": "dna_profile", "data": base64.b64encode(profile).decode()},
        )
        status_again = "?"
        if again.status_code == 200:
            [reply] = [r for r in again.json()["replies"] if r["party"] == HOLDER]
            found = {c["reference"] for c in reply.get("candidates", [])}
            status_again = reply["status"] + (" (found)" if found & sent else "")
        row.seen = (
            f"{search_seen}; inserts: killed with {waiting} waiting in DE's outbox, back:"
            f" {len(held)} held for {len(sent)} sent; a search afterwards: DE {status_again}"
        )
        if not in_time:
            row.notes.append("the error came later than the ABIS deadline + 3 s")
        stream_ok = waiting > 0 and len(sent) == ABIS_STREAM
        if not stream_ok:
            row.notes.append("the kill did not land inside the stream")
        row.survived = search_ok and stream_ok and row.lost == 0 and row.duplicated == 0
        row.survived = row.survived and status_again == "answered (found)"
    finally:
        try:
            _holder_dna_policy(world, None)
        finally:
            abis.kill(signal.SIGTERM)
    row.survived = row.survived and recovered(world, row)
    return row


@fault("node killed mid national-systems batch")
def systems_batch_kill(world: World) -> FaultRow:
    """A national DNA database sends a batch; the node dies under it; the batch is sent
    again whole: every record once (bench/ingest.py measures the same at 20,000).

    Last of the faults: its 10,000 audit entries bring HU a hundred signed checkpoints,
    and a checkpoint signed under a certificate revoked later no longer verifies
    (signing.AuditVerifier), which the revocation rows would then report."""
    import sqlalchemy as sa

    from ingest import dna_lines, kill_mid_batch
    from prum.federation.messages import Category
    from prum.node.systems.accounts import add_system

    party = POSTGRES_PARTY
    row = FaultRow(
        "node killed mid national-systems batch",
        f"kill -9 of {party} about 30 % into a DNA batch of {SYSTEMS_BATCH:,} lines POSTed"
        " to its national-systems interface; restart; the whole batch POSTed again",
    )
    engine = sa.create_engine(world.database_url(party))
    try:
        token = add_system(engine, "faults-dna-db", {Category.DNA})
    finally:
        engine.dispose()
    with httpx.Client(
        base_url=world.layout.parties[party].systems_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(None, connect=10),
    ) as client:
        result = kill_mid_batch(
            client,
            dna_lines(SYSTEMS_BATCH, seed=11, prefix="FAULT-"),
            kill=lambda: world.federation.kill(party),
            restart=lambda: world.federation.restart(party),
            database_url=world.database_url(party),
            prefix="FAULT-",
        )
    row.lost, row.duplicated = result["lost"], result["duplicated"]
    resent = ", ".join(f"{n:,} {outcome}" for outcome, n in result["resend"].items())
    row.seen = (
        f"killed {result['applied_before_kill']:,} records in (first request:"
        f" {result['first_request']}); sent again: {resent}; {result['national_ids_held']:,}"
        f" national ids held, {result['dna_rows']:,} DNA records"
    )
    if not result["killed_mid_batch"]:
        row.notes.append("the batch had finished before the kill: not a mid-batch kill")
    row.survived = (
        result["killed_mid_batch"]
        and row.lost == 0
        and row.duplicated == 0
        and recovered(world, row)
    )
    return row


# --- the campaign --------------------------------------------------------------------------------


def run_faults(world: World, only: list[str]) -> list[FaultRow]:
    rows = []
    for name, experiment in FAULTS.items():
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        print(f"fault: {name} ...", flush=True)
        started = time.monotonic()
        try:
            row = experiment(world)
        except Exception as exc:
            row = FaultRow(name, "(the experiment failed)", seen=f"{type(exc).__name__}: {exc}")
            try:
                world.federation.wait_ready(timeout=60)
            except Exception:
                for party in ["ROUTER", *PARTIES]:
                    if party not in world.federation.processes:
                        world.federation.restart(party)
        row.seconds = round(time.monotonic() - started, 1)
        verdict = "survived" if row.survived else "FAILED"
        if row.seen.startswith("not run"):
            verdict = "NOT RUN"
        print(f"  {verdict} in {row.seconds} s: {row.seen}", flush=True)
        for note in row.notes:
            print(f"    {note}", flush=True)
        rows.append(row)
    return rows


def summary(faults: list[FaultRow], inputs: list[InputClass]) -> dict[str, Any]:
    ran = [r for r in faults if not r.seen.startswith("not run")]
    return {
        "faults_tried": len(ran),
        "faults_survived": sum(r.survived for r in ran),
        "faults_not_run": [r.name for r in faults if r.seen.startswith("not run")],
        "records_lost": sum(r.lost for r in faults),
        "records_duplicated": sum(r.duplicated for r in faults),
        "bad_input_classes": len(inputs),
        "bad_inputs_tried": sum(c.tried for c in inputs),
        "bad_inputs_refused": sum(c.refused for c in inputs),
        "server_errors": sum(c.server_errors for c in inputs),
        "stored_rows_changed": sum(c.changed for c in inputs),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(totals: dict[str, Any], faults: list[FaultRow], inputs: list[InputClass]) -> str:
    lines = [
        f"Faults: {totals['faults_survived']} of {totals['faults_tried']} survived;"
        f" records lost {totals['records_lost']}, duplicated {totals['records_duplicated']}."
        f" Bad inputs: {totals['bad_input_classes']} classes, {totals['bad_inputs_tried']}"
        f" inputs, {totals['bad_inputs_refused']} refused, {totals['server_errors']} server"
        f" errors, {totals['stored_rows_changed']} stored tables changed.",
        "",
        "| fault | what was done | what the user saw | lost | duplicated | survived | s |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for r in faults:
        verdict = "yes" if r.survived else ("not run" if r.seen.startswith("not run") else "**no**")
        seen = r.seen + ("" if not r.notes else " (" + "; ".join(r.notes) + ")")
        lines.append(
            f"| {r.name} | {_cell(r.fault)} | {_cell(seen)} | {r.lost} | {r.duplicated}"
            f" | {verdict} | {r.seconds} |"
        )
    lines += [
        "",
        "| bad input | where | tried | refused | server errors | tables changed"
        " | a refusal as seen |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in inputs:
        example = c.example + ("" if not c.failures else " **" + "; ".join(c.failures) + "**")
        lines.append(
            f"| {c.name} | {_cell(c.where)} | {c.tried} | {c.refused} | {c.server_errors}"
            f" | {c.changed} | {_cell(example)} |"
        )
    return "\n".join(lines)


def write_reliability(table: str) -> None:
    start, end = "<!-- faults:start -->", "<!-- faults:end -->"
    text = RELIABILITY_MD.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{RELIABILITY_MD} lacks the {start} ... {end} markers")
    import datetime as dt

    from report import machine

    m = machine()
    stamp = (
        f"_Run {dt.date.today().isoformat()} on {m['cpu']}, {m['cores']} cores,"
        f" Python {m['python']} (`.venv/bin/python bench/faults.py`)._\n\n"
    )
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    RELIABILITY_MD.write_text(f"{head}{start}\n{stamp}{table}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="faults whose name has this text")
    parser.add_argument("--skip-inputs", action="store_true", help="faults only")
    parser.add_argument("--skip-faults", action="store_true", help="bad inputs only")
    parser.add_argument("--root", type=Path, help="folder for the federation (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the results here (no docs)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="prum-faults-"))
    started = time.monotonic()
    with World(root) as world:
        print(f"federation in {root}; starting ...", flush=True)
        world.start()
        faults = [] if args.skip_faults else run_faults(world, args.only)
        inputs: list[InputClass] = []
        if not args.skip_inputs:
            from faults_inputs import bad_input_classes

            inputs = bad_input_classes(world)
    totals = summary(faults, inputs)
    totals["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(totals, indent=2))
    result = {
        **totals,
        "faults": [asdict(r) for r in faults],
        "bad_inputs": [asdict(c) for c in inputs],
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.only or args.skip_inputs or args.skip_faults:
        print("a partial run: bench/results/faults.json and docs/reliability.md left as they are")
        return
    print(f"wrote {write_json('faults', result)}")
    write_reliability(markdown(totals, faults, inputs))
    print(f"wrote {RELIABILITY_MD}")


if __name__ == "__main__":
    main()
