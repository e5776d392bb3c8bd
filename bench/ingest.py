"""Records per second into a node: the national-systems interface over HTTP against the
per-category command lines and ``prum node import``, the same data in the same run.

    nice .venv/bin/python bench/ingest.py [--quick] [--dna N] [--records N]
        [--vehicles N] [--faces N] [--cards N] [--kill9 N] [--workdir DIR] [--no-report]

Full sizes (the issue's): 100,000 DNA profiles, police records and vehicles, 5,000
photos and 5,000 cards, a kill -9 batch of 20,000 lines: six to seven hours here, most
of it photos and cards (a size of 0 skips a category). ``--quick``: 2,000 / 60 photos /
30 cards / 4,000, a few minutes.

For each category the same records are loaded three times, each into a fresh SQLite
node database:

1. **interface**: a node started with ``prum node serve`` (its third listener), a system
   token from :func:`prum.node.systems.accounts.add_system`, the records POSTed to
   ``/v1/batches`` one batch after the other by one client (NDJSON; multipart with the
   photo and transaction files for faces and fingerprints). Timed from the first request
   to the last answer; the node has started (models loaded) before the clock runs.
2. **cli**: the category's own import, as a user runs it: ``prum dna import`` (a JSON
   array), ``prum records import`` (JSON Lines), ``prum vehicle import`` (CSV),
   ``prum face enroll`` (a folder of photos), ``prum finger enroll`` (the transaction
   files). Timed around the process, start-up included (a few seconds: it matters only
   at ``--quick`` sizes).
3. **node import**: ``prum node import`` of the interface's NDJSON (samples named by
   file beside it), the interface's code path in one process; timed around the process.

Data: DNA profiles from prum.categories.dna.generate (identified persons), synthetic
persons (prum.categories.records.synthetic), vehicles (prum.categories.vehicle.generate),
the real sample photos (prum.demo.samples.sample_faces) and the real FVC prints
(sample_prints) as tenprint cards (ANSI/NIST-ITL, ten Type-14 WSQ images each: card k is
impression k of the ten fingers), photos and cards repeated under distinct national ids.
DNA, police-record, face and fingerprint records carry core data through the interface
(the per-category imports cannot carry any).

Then **kill -9**: a node is killed while it applies a DNA batch of ``--kill9`` lines,
restarted, and the whole batch sent again; lost = national ids of the batch the node
does not hold, duplicated = records stored beyond one per national id (category rows,
national-id rows and "created" changes counted from the database itself).

Writes bench/results/ingest.json and the ingest section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prum.federation.messages import Category
from prum.node.config import CategoryPolicy
from report import write_json, write_section

FULL = {"dna": 100_000, "records": 100_000, "vehicles": 100_000, "faces": 5_000, "cards": 5_000}
# A smoke run of a few minutes: photos and cards go at 1-3 a second on 2 shared cores.
QUICK = {"dna": 2_000, "records": 2_000, "vehicles": 2_000, "faces": 60, "cards": 30}
KILL9_LINES, KILL9_QUICK = 20_000, 4_000
# Lines per POST: a few MB of JSON a request for the text categories; for photos and
# cards about as many samples as the node prepares in a few chunks.
POST_LINES = {"dna": 5_000, "records": 5_000, "vehicles": 5_000, "faces": 200, "cards": 64}
TABLES = {
    "dna": "dna_records",
    "records": "records_persons",
    "vehicles": "vehicle_records",
    "faces": "face_records",
    "cards": "finger_records",
}
CATEGORY = {
    "dna": Category.DNA,
    "records": Category.RECORDS,
    "vehicles": Category.VEHICLE,
    "faces": Category.FACE,
    "cards": Category.FINGER,
}
RESULT_KEYS = {
    "dna": "dna_per_s",
    "records": "records_per_s",
    "vehicles": "vehicles_per_s",
    "faces": "faces_per_s",
    "cards": "finger_cards_per_s",
}
CORE = {
    "surnames": ["Brandt"],
    "first_names": ["Jonas"],
    "date_of_birth": "1987-05-14",
    "nationalities": ["DE"],
    "offence": "burglary",
    "case_number": "DE-2023-118",
    "responsible_authority": "LKA Berlin",
}
NDJSON = "application/x-ndjson"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the data ------------------------------------------------------------------------------


@dataclass
class Inputs:
    """One category's records: NDJSON lines (samples named by file for photos and cards),
    those files, and the per-category command line's input."""

    name: str
    lines: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    cli: list[str] = field(default_factory=list)

    def write_ndjson(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        path = folder / f"{self.name}.ndjson"
        path.write_text("\n".join(self.lines) + "\n")
        return path


def line(category: str, national_id: str, sample: dict[str, Any], **extra: Any) -> str:
    record = {"op": "upsert", "category": category, "national_id": national_id}
    record.update(sample=sample, **extra)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def dna_profiles(n: int, seed: int) -> list[dict[str, Any]]:
    from prum.categories.dna.frequencies import AlleleFrequencies
    from prum.categories.dna.generate import Generator, profile_of
    from prum.categories.dna.loci import LocusSet

    loci = LocusSet("prum")
    generator = Generator(AlleleFrequencies.default(), loci)
    database = generator.database(n, seed=seed, trace_share=0, family_share=0)
    return [json.loads(profile_of(row, loci, identified=True).to_json()) for row in database.codes]


def dna_lines(n: int, seed: int, prefix: str) -> list[str]:
    return [
        line("dna", f"{prefix}{i:07d}", {"format": "dna-profile", "content": p}, core_data=CORE)
        for i, p in enumerate(dna_profiles(n, seed))
    ]


def dna_inputs(n: int, folder: Path) -> Inputs:
    profiles = dna_profiles(n, seed=1)
    path = folder / "dna.json"
    path.write_text(json.dumps(profiles))
    lines = [
        line("dna", f"DNA-{i:07d}", {"format": "dna-profile", "content": p}, core_data=CORE)
        for i, p in enumerate(profiles)
    ]
    return Inputs("dna", lines, cli=["dna", "import", str(path), "--country", "DE"])


def records_inputs(n: int, folder: Path) -> Inputs:
    from prum.categories.records.synthetic import PersonGenerator

    people = [p.to_dict() for p in PersonGenerator(seed=5).people(n)]
    path = folder / "persons.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for person in people:
            out.write(json.dumps({**person, "record": {"synthetic": True}}) + "\n")
    lines = [
        line(
            "records",
            f"INPOL-{i:07d}",
            {"format": "police-record", "content": p},
            core_data=CORE,
            synthetic=True,
        )
        for i, p in enumerate(people)
    ]
    return Inputs("records", lines, cli=["records", "import", str(path)])


def vehicle_inputs(n: int, folder: Path) -> Inputs:
    from prum.categories.vehicle.csvio import write_csv
    from prum.categories.vehicle.generate import Generator

    registrations = Generator("DE").registrations(n, seed=3)
    path = folder / "vehicles.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        write_csv(registrations, out)
    lines = [
        line(
            "vehicle",
            f"KBA-{i:07d}",
            {
                "format": "vehicle-registration",
                "content": r.model_dump(mode="json", exclude_none=True),
            },
        )
        for i, r in enumerate(registrations)
    ]
    return Inputs("vehicles", lines, cli=["vehicle", "import", str(path), "--country", "DE"])


def face_inputs(n: int, folder: Path) -> Inputs:
    from prum.demo.samples import sample_faces

    photos = [path for path, _ in sample_faces(allow_fetch=False).images]
    files = {f"face-{k:03d}{p.suffix.lower()}": p.read_bytes() for k, p in enumerate(photos)}
    names = sorted(files)
    cli_folder = folder / "photos"
    cli_folder.mkdir(parents=True, exist_ok=True)
    originals = folder / "photo-originals"
    originals.mkdir(exist_ok=True)
    for name, data in files.items():
        (originals / name).write_bytes(data)
    lines = []
    for i in range(n):
        name = names[i % len(names)]
        # One file per record for `prum face enroll` (a folder enrols one record a file).
        os.link(originals / name, cli_folder / f"{i:06d}-{name}")
        sample = {"format": "image", "file": name}
        lines.append(line("face", f"FACE-{i:07d}", sample, core_data=CORE))
    return Inputs("faces", lines, files, cli=["face", "enroll", str(cli_folder)])


def tenprint_cards(count: int) -> list[bytes]:
    """Up to ``count`` distinct cards: card k holds impression k of the ten FVC fingers."""
    import datetime as dt

    from prum.categories.finger.images import decode_image
    from prum.categories.finger.nist import write_transaction
    from prum.categories.finger.types import FingerImage, Transaction
    from prum.demo.samples import sample_prints

    prints = sample_prints(allow_fetch=False)
    fingers = prints.fingers[:10]
    impressions = min(len(prints.impressions(f)) for f in fingers)
    cards = []
    for k in range(min(count, impressions)):
        images = []
        for position, finger in enumerate(fingers, start=1):
            decoded = decode_image(prints.impressions(finger)[k].path.read_bytes())
            images.append(FingerImage(position, "plain", decoded.ppi or 500, decoded.pixels))
        tx = Transaction(
            tot="CAR",
            originating_agency="DEBKA0001",
            destination_agency="DEBKA0001",
            control_number=f"DE-BENCH-{k}",
            date=dt.date(2026, 1, 2),
            images=images,
        )
        cards.append(write_transaction(tx))
    return cards


def card_inputs(n: int, folder: Path) -> Inputs:
    cards = tenprint_cards(n)
    files = {f"card-{k}.an2": data for k, data in enumerate(cards)}
    names = sorted(files)
    cli_folder = folder / "cards"
    cli_folder.mkdir(parents=True, exist_ok=True)
    originals = folder / "card-originals"
    originals.mkdir(exist_ok=True)
    for name, data in files.items():
        (originals / name).write_bytes(data)
    lines, paths = [], []
    for i in range(n):
        name = names[i % len(names)]
        path = cli_folder / f"{i:06d}-{name}"
        os.link(originals / name, path)
        paths.append(str(path))
        sample = {"format": "ansi-nist", "file": name}
        lines.append(line("finger", f"AFIS-{i:07d}", sample, core_data=CORE))
    return Inputs("cards", lines, files, cli=["finger", "enroll", *paths])


BUILDERS = {
    "dna": dna_inputs,
    "records": records_inputs,
    "vehicles": vehicle_inputs,
    "faces": face_inputs,
    "cards": card_inputs,
}


# --- a node --------------------------------------------------------------------------------


class NodeProcess:
    """A node laid out alone (its own PKI and SQLite database), served by
    ``prum node serve``, with a system account that may write every category."""

    def __init__(self, root: Path, categories: list[Category]):
        from prum.demo.processes import lay_out
        from prum.node.core import Node
        from prum.node.systems.accounts import add_system

        self.layout = lay_out(root, ["DE"], policies={"DE": dict.fromkeys(categories, POLICY)})
        self.party = self.layout.parties["DE"]
        self.config = self.layout.config("DE")
        node = Node(self.config)
        try:
            self.token = add_system(node.engine, "bench", set(categories))
        finally:
            node.close()
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "PRUM_RECORDS_KEY": str(self.config.records_key_path())}

    @property
    def url(self) -> str:
        return self.party.systems_url

    @property
    def database_url(self) -> str:
        return self.config.database()

    def start(self, timeout: float = 300) -> None:
        command = [sys.executable, "-m", "prum", "node", "serve", "--config"]
        command.append(str(self.party.config_path))
        with open(self.layout.root / "node.log", "ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the node exited; see {self.layout.root / 'node.log'}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the node did not answer in {timeout:.0f} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGTERM)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(None, connect=10),
        )


# Every category offered; no penalty or age rule matters to loading.
POLICY = CategoryPolicy()


def post_batch(client: httpx.Client, lines: list[str], files: dict[str, bytes]) -> dict[str, Any]:
    body = ("\n".join(lines) + "\n").encode()
    if not files:
        response = client.post("/v1/batches", content=body, headers={"content-type": NDJSON})
    else:
        wanted = sorted({json.loads(text)["sample"]["file"] for text in lines})
        parts: list[tuple[str, tuple[str, bytes, str]]] = [
            ("records", ("records.ndjson", body, NDJSON))
        ]
        parts += [(n, (n, files[n], "application/octet-stream")) for n in wanted]
        response = client.post("/v1/batches", files=parts)
    if response.status_code != 200:
        raise SystemExit(f"batch refused: HTTP {response.status_code} {response.text[:500]}")
    result: dict[str, Any] = response.json()
    return result


def send(client: httpx.Client, inputs: Inputs, per_post: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    refusals: list[str] = []
    for start in range(0, len(inputs.lines), per_post):
        result = post_batch(client, inputs.lines[start : start + per_post], inputs.files)
        for outcome, n in result["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + n
        refusals += [r["error"]["message"] for r in result["results"] if r.get("error")][:3]
    if refusals:
        log(f"  refused, e.g.: {refusals[:3]}")
    return counts


def count(database_url: str, table: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f'select count(*) from "{table}"')).scalar_one())
    finally:
        engine.dispose()


# --- the three ways in, category after category (so that other load on the machine
# falls on all three alike) ---------------------------------------------------------------


def compare(root: Path, data: dict[str, Inputs]) -> dict[str, dict[str, dict[str, Any]]]:
    categories = [CATEGORY[c] for c in data]
    served = NodeProcess(root / "interface", categories)
    imported = NodeProcess(root / "node-import", categories)  # laid out, never served
    out: dict[str, dict[str, dict[str, Any]]] = {"interface": {}, "cli": {}, "node_import": {}}
    served.start()
    try:
        with served.client() as client:
            for name, inputs in data.items():
                started = time.perf_counter()
                counts = send(client, inputs, POST_LINES[name])
                seconds = time.perf_counter() - started
                stored = count(served.database_url, TABLES[name])
                out["interface"][name] = timing(len(inputs.lines), seconds, stored, counts)
                log(f"interface {name}: {out['interface'][name]}")
                out["cli"][name] = via_cli(root / "cli" / name, inputs, served.env)
                log(f"cli {name}: {out['cli'][name]}")
                out["node_import"][name] = via_node_import(
                    root / "exports" / name, inputs, imported
                )
                log(f"node import {name}: {out['node_import'][name]}")
    finally:
        served.stop()
    return out


def via_cli(folder: Path, inputs: Inputs, env: dict[str, str]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{folder / 'gallery.sqlite'}"
    command = [sys.executable, "-m", "prum", *inputs.cli]
    if inputs.name == "vehicles":  # `prum vehicle import` takes the database only
        command += ["--database-url", database]
    else:
        command += ["--data-dir", str(folder)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:5])} failed: {done.stderr[-2000:]}")
    return timing(len(inputs.lines), seconds, count(database, TABLES[inputs.name]), {})


def via_node_import(folder: Path, inputs: Inputs, node: NodeProcess) -> dict[str, Any]:
    path = inputs.write_ndjson(folder)
    command = [sys.executable, "-m", "prum", "node", "import", str(path)]
    command += ["--config", str(node.party.config_path)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=node.env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"prum node import {inputs.name} failed: {done.stderr[-2000:]}")
    stored = count(node.database_url, TABLES[inputs.name])
    return timing(len(inputs.lines), seconds, stored, {})


def timing(n: int, seconds: float, stored: int, counts: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "records": n,
        "stored": stored,
        "seconds": round(seconds, 2),
        "per_s": round(n / seconds, 1),
    }
    if counts:
        result["outcomes"] = {k: v for k, v in counts.items() if v}
    return result


# --- kill -9 in the middle of a batch (also a row of bench/faults.py) ----------------------


def newest_change(client: httpx.Client) -> int:
    response = client.get("/v1/changes", params={"after": 2**62, "limit": 1})
    response.raise_for_status()
    return int(response.json()["last_seq"])


def kill_mid_batch(
    client: httpx.Client,
    lines: list[str],
    *,
    kill: Any,
    restart: Any,
    database_url: str,
    prefix: str,
    at_share: float = 0.3,
) -> dict[str, Any]:
    """POST ``lines`` (DNA records whose national ids start with ``prefix``), ``kill()``
    the node once about ``at_share`` of them are applied, ``restart()`` it, POST them
    all again; lost and duplicated counted from the database."""
    before = newest_change(client)
    failure: dict[str, str] = {}

    def first_send() -> None:
        try:
            post_batch(client, lines, {})
        except (httpx.HTTPError, SystemExit) as exc:  # the node died under the request
            failure["error"] = type(exc).__name__

    sender = threading.Thread(target=first_send, daemon=True)
    sender.start()
    target = before + max(1, int(len(lines) * at_share))
    deadline = time.monotonic() + 600
    applied = 0
    while sender.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            applied = newest_change(client) - before
        if before + applied >= target:
            break
        time.sleep(0.1)
    mid_batch = sender.is_alive()
    kill()
    sender.join(timeout=60)
    restart()
    again = post_batch(client, lines, {})["counts"]
    held, distinct, stored, created, created_ids = dna_counts(database_url, prefix)
    return {
        "lines": len(lines),
        "applied_before_kill": applied,
        "killed_mid_batch": mid_batch,
        "first_request": failure.get("error", "answered"),
        "resend": {k: v for k, v in again.items() if v},
        "national_ids_held": distinct,
        "dna_rows": stored,
        "lost": len(lines) - distinct,
        "duplicated": (stored - distinct) + (held - distinct) + (created - created_ids),
    }


def dna_counts(database_url: str, prefix: str) -> tuple[int, int, int, int, int]:
    """National-id rows whose DNA record exists (and their distinct ids), DNA rows the
    batch stored, "created" changes (and their distinct ids)."""
    engine = sa.create_engine(database_url)
    ids = {"ids": f"{prefix}%", "keys": f"nsi:dna:{prefix}%"}
    try:
        with engine.connect() as conn:
            held, distinct = conn.execute(
                sa.text(
                    "select count(*), count(distinct n.national_id) from node_national_records n"
                    " join dna_records d on d.reference = n.reference"
                    " where n.category = 'dna' and n.national_id like :ids"
                ),
                ids,
            ).one()
            stored = conn.execute(
                sa.text("select count(*) from dna_records where source_key like :keys"), ids
            ).scalar_one()
            created, created_ids = conn.execute(
                sa.text(
                    "select count(*), count(distinct national_id) from node_record_changes"
                    " where category = 'dna' and operation = 'created' and national_id like :ids"
                ),
                ids,
            ).one()
    finally:
        engine.dispose()
    return int(held), int(distinct), int(stored), int(created), int(created_ids)


def kill9(root: Path, n: int) -> dict[str, Any]:
    from prum.federation.security.signing import AuditVerifier
    from prum.node.core import Node

    node = NodeProcess(root, [Category.DNA])
    node.start()
    lines = dna_lines(n, seed=7, prefix="K9-")
    try:
        with node.client() as client:
            result = kill_mid_batch(
                client,
                lines,
                kill=node.kill,
                restart=node.start,
                database_url=node.database_url,
                prefix="K9-",
            )
    finally:
        node.stop()
    held = Node(node.config)
    try:
        result["audit_chain_ok"] = held.audit.verify(AuditVerifier(node.config.pki_dir)).ok
    finally:
        held.close()
    return result


# --- the report ----------------------------------------------------------------------------


def ratios(runs: dict[str, dict[str, dict[str, Any]]], other: str) -> dict[str, float]:
    return {
        name: round(r["per_s"] / runs[other][name]["per_s"], 2)
        for name, r in runs["interface"].items()
    }


def markdown(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        "Records per second into one node (fresh SQLite database each), the same data three"
        " ways in one run: the national-systems interface over HTTP (`prum node serve`,"
        " batches POSTed to `/v1/batches` by one client, 2 preparation workers), the"
        " category's own command line (process start included), and `prum node import`"
        " (the interface's code path in one process). Target: the interface at least 0.8"
        " times the command line's throughput in every category.",
        "",
        "| category | records | interface /s | CLI /s | node import /s"
        " | interface / CLI | interface / node import |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs["interface"].items():
        cli, imp = runs["cli"][name], runs["node_import"][name]
        lines.append(
            f"| {name} | {r['records']:,} | {r['per_s']:,} | {cli['per_s']:,}"
            f" | {imp['per_s']:,} | {result['cli_ratio'][name]}"
            f" | {result['node_import_ratio'][name]} |"
        )
    k = result["kill9"]
    lines += [
        "",
        f"kill -9 of the node {k['applied_before_kill']:,} records into a DNA batch of"
        f" {k['lines']:,} lines (first request: {k['first_request']}), restart, the whole"
        f" batch sent again ({', '.join(f'{v:,} {o}' for o, v in k['resend'].items())}):"
        f" **{k['lost']} lost, {k['duplicated']} duplicated**; audit chain verifies:"
        f" {k['audit_chain_ok']}.",
        "",
        "`" + result["command"] + "`",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    for name in FULL:
        parser.add_argument(f"--{name}", type=int, help=f"default {FULL[name]:,}")
    parser.add_argument("--kill9", type=int, help=f"lines of the killed batch ({KILL9_LINES:,})")
    parser.add_argument("--workdir", type=Path, help="where the nodes live (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    sizes = {
        name: base[name] if getattr(args, name) is None else getattr(args, name) for name in FULL
    }
    kill_lines = args.kill9 or (KILL9_QUICK if args.quick else KILL9_LINES)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="prum-ingest-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        log(f"sizes {sizes}, kill -9 batch {kill_lines:,}; work folder {root}")
        data = {}
        for name, n in sizes.items():
            if n > 0:
                folder = root / "data" / name
                folder.mkdir(parents=True, exist_ok=True)
                data[name] = BUILDERS[name](n, folder)
                log(f"{n:,} {name} generated")
        runs = compare(root, data)
        killed = kill9(root / "kill9", kill_lines)
        log(f"kill -9: {killed}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    result: dict[str, Any] = {
        RESULT_KEYS[name]: runs["interface"][name]["per_s"] for name in runs["interface"]
    }
    result["cli_ratio"] = ratios(runs, "cli")
    result["node_import_ratio"] = ratios(runs, "node_import")
    result["kill9_lost"] = killed["lost"]
    result["kill9_duplicated"] = killed["duplicated"]
    result["target"] = "interface / CLI >= 0.8 in every category"
    result["target_met"] = all(v >= 0.8 for v in result["cli_ratio"].values())
    result["sizes"] = sizes
    result["command"] = "nice .venv/bin/python bench/ingest.py " + " ".join(sys.argv[1:])
    result["runs"] = runs
    result["kill9"] = killed
    print(json.dumps(result, indent=2))
    if args.no_report:
        return
    print(f"wrote {write_json('ingest', result)}")
    write_section(
        "ingest",
        "## Ingest: national-systems interface vs command lines"
        " (`bench/ingest.py`)\n\n" + markdown(result),
    )


if __name__ == "__main__":
    main()
