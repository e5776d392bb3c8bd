"""The federation the fault and abuse campaign (bench/faults.py) runs against.

A router and three nodes as separate processes over mutual TLS on 127.0.0.1: AT (the
requester, SQLite), DE (SQLite, its data folder on a small tmpfs of its own when we run
as root, so that its disk can be filled) and HU (PostgreSQL, a fresh database). DE and HU
hold generated DNA profiles, police records and vehicle registrations; AT holds traces of
DE's people for the bulk comparison. Four more parties are in the router's directory,
each offering DNA, each played by a misbehaving stand-in: CZ accepts the TCP connection
and never answers, SK answers after the deadline, PL answers with something that is not
JSON, SE answers with a reply signed by another party.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from prum.demo.processes import Federation, Layout, free_port, lay_out, poll
from prum.demo.run import USERS  # the demo's five users, one per role
from prum.errors import Unavailable
from prum.federation.messages import Category, CountryReply, Purpose, ReplyStatus
from prum.federation.security import pki
from prum.federation.security.signing import Signer
from prum.node.config import CategoryPolicy, ComparisonSettings
from prum.node.core import Node
from prum.node.schema import core_data
from prum.node.users import add_user

PARTIES = ["AT", "DE", "HU"]
REQUESTER, HOLDER, POSTGRES_PARTY = "AT", "DE", "HU"
# The misbehaving stand-ins and what each does with a search.
ROGUES = {"CZ": "silent", "SK": "slow", "PL": "malformed", "SE": "wrongly_signed"}
POSTGRES_ADMIN = os.environ.get(
    "PRUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg://", "postgresql://")
DATABASE = "prum_faults"  # and the process id: runs side by side never share one
TMPFS_BYTES = 64 * 2**20
DNA_HELD, RECORDS_HELD, VEHICLES_HELD, TRACES_AT_AT = 300, 400, 300, 6
# AT's own DNA database besides the traces: enough for a bulk comparison of many batches.
DNA_AT = 200
# Every category at every party: no penalty threshold or age rule in the way of the
# experiments (the refusals those rules make are tested elsewhere).
POLICY = CategoryPolicy(
    purposes=[Purpose.INVESTIGATION], min_penalty_months=0, min_age=None, max_candidates=10
)
CATEGORIES = [Category.FACE, Category.DNA, Category.RECORDS, Category.VEHICLE]
# What the rows of these tables hold is the national data and the exchange's state: a
# refused input must leave every one of them as it was (audit entries, sessions and
# capacity counters may grow).
PROTECTED_SUFFIXES = ("_records", "_persons", "_encodings", "_templates", "_parties", "_deletions")
PROTECTED_TABLES = {
    "node_users",
    "node_searches",
    "node_verifications",
    "node_core_requests_out",
    "node_core_requests_in",
    "node_core_data",
    "node_outbox",
    "node_inbox",
    "node_comparisons",
}


def password(party: str) -> str:
    return f"faults-{party.lower()}-password"


@dataclass
class Facts:
    dna_trace: bytes = b""  # a crime-scene trace at AT of a person DE holds
    dna_source: str = ""  # DE's reference of that person
    records_person: dict[str, Any] = field(default_factory=dict)
    records_reference: str = ""
    plate: str = ""  # a registration DE holds


@dataclass
class FaultRow:
    """One fault experiment: what was done, what the user saw, what was lost or doubled."""

    name: str
    fault: str
    seen: str = ""
    lost: int = 0
    duplicated: int = 0
    survived: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class InputClass:
    """One class of bad input: how many were tried, refused clearly, or did harm.

    ``refused``: answered with a 4xx (or a per-country refusal) that names the problem;
    ``server_errors``: a 5xx, a dropped connection or a hang; ``changed``: protected
    rows (see :meth:`World.stored`) that differ afterwards.
    """

    name: str
    where: str
    tried: int = 0
    refused: int = 0
    server_errors: int = 0
    changed: int = 0
    example: str = ""  # one refusal as the user saw it
    failures: list[str] = field(default_factory=list)  # what went wrong, if anything


class World:
    """The running federation, its files and databases, and clients for its APIs."""

    def __init__(self, root: Path, *, log: Callable[[str], None] = print) -> None:
        self.root = root
        self.log = log
        self.tmpfs: dict[str, Path] = {}
        self.postgres_url: str | None = None
        self.database = f"{DATABASE}_{os.getpid()}"
        self.facts = Facts()
        self.rogues: RogueNodes | None = None
        root.mkdir(parents=True, exist_ok=True)
        # DE's data folder and the router's: small disks of their own, to be filled.
        self._mount_tmpfs(HOLDER, root / HOLDER.lower())
        self._mount_tmpfs("ROUTER", root / "router")
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.layout: Layout = lay_out(
            self.root,
            PARTIES,
            policies={p: dict.fromkeys(CATEGORIES, POLICY) for p in PARTIES},
            outbox_retry_seconds=0.3,
        )
        self._configure()
        self._add_rogues()
        self._enrol()
        self.federation = Federation(self.layout)

    # --- set-up ---------------------------------------------------------------------------

    def _mount_tmpfs(self, name: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.log(f"not root: {name}'s data folder is not on a tmpfs (no disk-full run)")
            return
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            self.tmpfs[name] = folder
        else:
            self.log(f"cannot mount a tmpfs ({done.stderr.strip()}): no disk-full experiments")

    def _configure(self) -> None:
        self.postgres_url = _fresh_postgres_database(self.database)
        for party in PARTIES:
            update: dict[str, Any] = {
                "comparison": ComparisonSettings(batch_size=20, poll_seconds=0.5)
            }
            if party == POSTGRES_PARTY:
                if self.postgres_url is None:
                    self.log(f"PostgreSQL unreachable at {POSTGRES_ADMIN}: {party} uses SQLite")
                else:
                    update["database_url"] = self.postgres_url
            config = self.layout.config(party).model_copy(update=update)
            self.layout.parties[party].config_path.write_text(config.model_dump_json(indent=2))

    def _add_rogues(self) -> None:
        directory = json.loads(self.layout.directory_file.read_text())
        ports = {}
        for party in ROGUES:
            pki.issue(self.layout.pki_dir, party, role="node")
            ports[party] = free_port()
            directory["parties"][party] = {
                "url": f"https://localhost:{ports[party]}",
                "offers": [Category.DNA.value],
                "accepts": [Purpose.INVESTIGATION.value],
            }
        self.layout.directory_file.write_text(json.dumps(directory, indent=2))
        self.rogues = RogueNodes(self.layout.pki_dir, ports)

    def _enrol(self) -> None:
        from prum.categories.dna.frequencies import AlleleFrequencies
        from prum.categories.dna.generate import Generator, profile_of
        from prum.categories.dna.loci import LocusSet
        from prum.categories.records.synthetic import PersonGenerator
        from prum.categories.vehicle.generate import Generator as VehicleGenerator

        loci = LocusSet("prum")
        generator = Generator(AlleleFrequencies.default(), loci)
        rng = np.random.default_rng(5)
        nodes = {p: Node(self.layout.config(p)) for p in PARTIES}
        try:
            for party, node in nodes.items():
                for name, role in USERS.items():
                    add_user(node.engine, name, password(party), {role})
            for party in (HOLDER, POSTGRES_PARTY):
                node = nodes[party]
                dna: Any = node.matcher(Category.DNA)
                database = generator.database(DNA_HELD, seed=ord(party[0]))
                references = [
                    dna.enroll(profile_of(row, loci, identified=bool(known)).to_json())
                    for row, known in zip(database.codes, database.identified, strict=True)
                ]
                people = PersonGenerator(seed=ord(party[1])).people(RECORDS_HELD)
                case = {"offence": "robbery", "case_number": f"{party}-1", "synthetic": True}
                records: Any = node.matcher(Category.RECORDS)
                stored = records.enroll_many([(person, case) for person in people])
                vehicles: Any = node.matcher(Category.VEHICLE)
                registrations = VehicleGenerator(party).registrations(VEHICLES_HELD, seed=3)
                with vehicles.store.writer() as writer:
                    writer.add_many(registrations)
                if party != HOLDER:
                    continue
                source = int(rng.choice(np.flatnonzero(database.identified)))
                self.facts.dna_source = references[source]
                self.facts.dna_trace = profile_of(
                    generator.trace(database.codes[source], rng, keep=10), loci, identified=False
                ).to_json()
                self.facts.records_person = people[0].to_dict()
                self.facts.records_reference = stored[0]
                self.facts.plate = registrations[0].plate
                with node.engine.begin() as conn:
                    for reference in (self.facts.dna_source, self.facts.records_reference):
                        conn.execute(
                            core_data.insert().values(
                                reference=reference,
                                data={"surnames": ["Brandt"], "gender": "M"},
                            )
                        )
                at_dna: Any = nodes[REQUESTER].matcher(Category.DNA)
                own = generator.database(DNA_AT, seed=99)
                for row, known in zip(own.codes, own.identified, strict=True):
                    at_dna.enroll(profile_of(row, loci, identified=bool(known)).to_json())
                for i in rng.choice(DNA_HELD, TRACES_AT_AT, replace=False):
                    trace = generator.trace(database.codes[int(i)], rng, keep=10)
                    at_dna.enroll(profile_of(trace, loci, identified=False).to_json())
        finally:
            for node in nodes.values():
                node.close()

    # --- running ----------------------------------------------------------------------------

    def start(self) -> None:
        assert self.rogues is not None
        self.rogues.start()
        self.federation.start_all()

    def close(self) -> None:
        if hasattr(self, "federation"):
            self.federation.stop()
        if self.rogues is not None:
            self.rogues.stop()
        for folder in self.tmpfs.values():
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        if self.postgres_url is not None:
            _drop_postgres_database(self.database)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- clients -------------------------------------------------------------------------------

    def api(self, party: str, user: str = "olga", *, timeout: float = 60) -> httpx.Client:
        """The national API of ``party`` as one of its users (HTTP Basic)."""
        return httpx.Client(
            base_url=self.layout.parties[party].api_url,
            auth=(user, password(party)),
            timeout=timeout,
        )

    def router(self, party: str = REQUESTER, *, timeout: float = 60) -> httpx.Client:
        """The router's federation API with ``party``'s client certificate."""
        return httpx.Client(
            base_url=self.layout.router_url,
            verify=pki.client_context(self.layout.pki_dir, party),
            timeout=timeout,
        )

    def search_body(self, category: str = "dna", **fields: Any) -> dict[str, Any]:
        """A valid search by AT's officer: the DNA trace of a person DE holds, by default."""
        body: dict[str, Any] = {
            "category": category,
            "purpose": "investigation",
            "offence": "0500 00",
            "max_penalty_months": 120,
            "case_reference": "AT-FAULTS-1",
            "targets": [HOLDER, POSTGRES_PARTY],
        }
        if category == "dna":
            trace = base64.b64encode(self.facts.dna_trace).decode()
            body["probe"] = {"format": "dna_profile", "data": trace}
        elif category == "records":
            body["person"] = self.facts.records_person
        elif category == "vehicle":
            body["probe"] = {"format": "vehicle_query", "vehicle": {"plate": self.facts.plate}}
            body["targets"] = [HOLDER]  # a plate query goes to one country
        body.update(fields)
        return body

    def search(self, category: str = "dna", **fields: Any) -> httpx.Response:
        with self.api(REQUESTER) as officer:
            return officer.post("/api/searches", json=self.search_body(category, **fields))

    def signed_search(self, party: str = REQUESTER, **fields: Any) -> dict[str, Any]:
        """A signed search envelope as ``party`` sends it to the router (DNA, to DE)."""
        from prum.federation.messages import Probe, SearchRequest

        body = SearchRequest(
            request_number=f"{party}-{uuid.uuid4().hex[:8]}",
            requesting_party=party,
            requesting_user="faults",
            category=Category.DNA,
            purpose=Purpose.INVESTIGATION,
            offence="0500 00",
            max_penalty_months=120,
            case_reference="AT-FAULTS-2",
            probe=Probe(format="dna_profile", data=base64.b64encode(self.facts.dna_trace)),
            targets=[HOLDER],
            deadline_ms=5_000,
        ).model_dump(mode="json")
        body.update(fields)
        return Signer(self.layout.pki_dir, party).sign(body).to_dict()

    # --- what is stored ---------------------------------------------------------------------

    def database_url(self, party: str) -> str:
        config = self.layout.config(party)
        return config.database_url or f"sqlite:///{config.data_dir / 'gallery.sqlite'}"

    def stored(self, party: str) -> dict[str, int]:
        """Rows per protected table of ``party``'s database (see PROTECTED_TABLES)."""
        engine = sa.create_engine(self.database_url(party))
        try:
            with engine.connect() as conn:
                names = sa.inspect(conn).get_table_names()
                wanted = [
                    n
                    for n in names
                    if n in PROTECTED_TABLES
                    or (n.endswith(PROTECTED_SUFFIXES) and not n.startswith("alembic"))
                ]
                return {
                    n: int(conn.execute(sa.text(f'select count(*) from "{n}"')).scalar_one())
                    for n in sorted(wanted)
                }
        finally:
            engine.dispose()

    def stored_everywhere(self) -> dict[str, dict[str, int]]:
        return {party: self.stored(party) for party in PARTIES}

    def audit_ok(self, party: str) -> bool:
        with self.api(party, "otto") as auditor:
            response = auditor.get("/api/audit/verify")
        return response.status_code == 200 and bool(response.json().get("ok"))

    def healthy(self) -> bool:
        try:
            self.federation.wait_ready(timeout=60)
        except Unavailable:
            return False
        return True


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    return poll(what, check, timeout, every=0.25)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _admin_engine() -> sa.Engine:
    url = POSTGRES_ADMIN.replace("postgresql://", "postgresql+psycopg://")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def _fresh_postgres_database(name: str) -> str | None:
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {name} with (force)"))
            conn.execute(sa.text(f"create database {name}"))
        engine.dispose()
    except sa.exc.OperationalError:
        return None
    base = POSTGRES_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    return f"{base}/{name}"


def _drop_postgres_database(name: str) -> None:
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {name} with (force)"))
        engine.dispose()
    except sa.exc.OperationalError:
        pass


# --- the misbehaving stand-ins ------------------------------------------------------------------


class RogueNodes:
    """CZ, SK, PL, SE: parties in the directory whose servers misbehave, each its own way.

    CZ is a bare TCP listener that accepts and never speaks (not even TLS). The others
    speak mutual TLS with their federation certificates and answer /v1/search: SK after
    ``slow_seconds``, PL with bytes that are not JSON, SE with a well-formed reply signed
    by DE's key instead of its own.
    """

    def __init__(self, pki_dir: Path, ports: dict[str, int], *, slow_seconds: float = 30) -> None:
        self.pki_dir = pki_dir
        self.ports = ports
        self.slow_seconds = slow_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._silent: list[socket.socket] = []
        self._accepted: list[socket.socket] = []

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise Unavailable("the stand-in nodes did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        for s in self._silent + self._accepted:
            s.close()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        servers = []
        for party, behaviour in ROGUES.items():
            port = self.ports[party]
            if behaviour == "silent":
                listener = socket.create_server(("127.0.0.1", port), backlog=64)
                listener.setblocking(False)
                self._silent.append(listener)
                loop.add_reader(listener.fileno(), self._accept_and_ignore, listener)
                continue
            context = pki.server_context(self.pki_dir, party)
            handler = self._handler(party, behaviour)
            servers.append(
                loop.run_until_complete(
                    asyncio.start_server(handler, "127.0.0.1", port, ssl=context)
                )
            )
        ready.set()
        try:
            loop.run_forever()
        finally:
            for server in servers:
                server.close()
            loop.close()

    def _accept_and_ignore(self, listener: socket.socket) -> None:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return
        self._accepted.append(connection)  # held open, never read, never answered

    def _handler(self, party: str, behaviour: str) -> Any:
        signer = Signer(self.pki_dir, HOLDER if behaviour == "wrongly_signed" else party)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    body = await reader.readexactly(length) if length else b""
                    answer = await self._answer(party, behaviour, body, signer)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(answer)}\r\n\r\n".encode()
                        + answer
                    )
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
                pass
            finally:
                writer.close()

        return handle

    async def _answer(self, party: str, behaviour: str, body: bytes, signer: Signer) -> bytes:
        if behaviour == "malformed":
            return b"<html>502 Bad Gateway</html> {not json"
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        request_id = json.loads(body)["body"]["message_id"]
        reply = CountryReply(
            in_reply_to=request_id,
            party=party,
            status=ReplyStatus.NO_HIT,
            answered_at=dt.datetime.now(dt.UTC),
            duration_ms=1.0,
            gallery_size=1,
            candidates=[],
        )
        return signer.sign(reply.model_dump(mode="json")).to_json()
