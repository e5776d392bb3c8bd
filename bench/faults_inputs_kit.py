"""What the bad-input classes of bench/faults_inputs.py share: how an answer is judged,
the tally of one class (:class:`Trial`), a workbench session, and the clients and
counts of the running federation (:class:`Campaign`).

The files the classes send (images whose headers lie, ANSI/NIST-ITL transactions that
lie) are made in bench/faults_inputs_files.py.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from faults_inputs_files import face_jpeg
from faultworld import InputClass, World, password

SEED = 1982  # every run sends the same inputs
REQUESTER, HOLDER = "AT", "DE"
PARTIES = ("AT", "DE", "HU")
# An answer to a bad input slower than this means it was worked on, not refused.
SLOW_S = 5.0
JSON = {"content-type": "application/json"}
# Columns that change by design (statuses, retries, re-signed envelopes): a new value
# there does not make an altered row.
VOLATILE = frozenset(
    {"status", "reply", "answered_at", "attempts", "next_attempt_at", "last_error"}
    | {"delivered_at", "replied_at", "failed_logins", "locked_until", "hold_started_at"}
    | {"paused_seconds", "decided_by", "decided_at", "reason", "cursor", "upto", "batches"}
    | {"compared", "hits", "next_try_at", "envelope", "updated_at"}
)

Answer = httpx.Response | httpx.HTTPError
Verify = Callable[[], str | None]


# --- what the user saw --------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    kind: str  # refused | accepted | server_error | unclear
    text: str  # status, code and message as the user saw them
    code: str = ""


def send(call: Callable[..., httpx.Response], *args: Any, **kwargs: Any) -> Answer:
    """The answer of ``call(*args, **kwargs)``, or its transport error (a dropped
    connection, a timeout)."""
    try:
        return call(*args, **kwargs)
    except httpx.HTTPError as exc:
        return exc


def judge(answer: Answer) -> Seen:
    """A clear refusal, an acceptance, a server error, or unclear (a 4xx without a message)."""
    if isinstance(answer, httpx.HTTPError):
        return Seen("server_error", f"{type(answer).__name__}: {answer}")
    status, ctype = answer.status_code, answer.headers.get("content-type", "")
    if status >= 500:
        return Seen("server_error", f"{status} {answer.text[:120]}")
    if "json" in ctype:
        return _json_answer(status, answer)
    if status < 400:
        return Seen("accepted", str(status))
    alert = re.search(r'<div class="alert" role="alert"[^>]*>(.*?)</div>', answer.text, re.S)
    if "html" in ctype and alert:
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", alert.group(1))).split())
        code = re.search(r"code: (\w+)", text)
        message = re.sub(r"code: \w+", "", text).replace("The search was refused:", "").strip()
        if message:
            found = code.group(1) if code else ""
            return Seen("refused", f"{status} {found}: {message}", found)
    return Seen("unclear", f"{status} {ctype} {answer.text[:100]}")


def _json_answer(status: int, answer: httpx.Response) -> Seen:
    try:
        body = answer.json()
    except ValueError:
        return Seen("unclear", f"{status} not JSON: {answer.text[:100]}")
    if status < 400:
        # A search answer: the national API's view, or the router's signed SearchReply.
        inner = body.get("body", body) if isinstance(body, dict) else body
        replies = inner.get("replies") if isinstance(inner, dict) else None
        return _replies(status, replies) if isinstance(replies, list) else Seen("accepted", "200")
    named = isinstance(body, dict) and all(
        isinstance(body.get(k), str) for k in ("code", "message")
    )
    if named and body["message"].strip():
        return Seen("refused", f"{status} {body['code']}: {body['message']}", body["code"])
    return Seen("unclear", f"{status} {answer.text[:120]}")


def _replies(status: int, replies: list[dict[str, Any]]) -> Seen:
    """Refused when every country refused or erred with a code."""
    errors = [r.get("error") or {} for r in replies]
    said = [
        (r.get("party"), r.get("status"), e.get("code"))
        for r, e in zip(replies, errors, strict=True)
    ]
    if replies and all(s in ("refused", "error") and code for _, s, code in said):
        party, state, code = said[0]
        message = errors[0].get("message", "")
        return Seen("refused", f"{status} {party} {state} ({code}): {message}", str(code))
    return Seen("accepted", f"{status} " + ", ".join(f"{p} {s}" for p, s, _ in said))


# --- one class ---------------------------------------------------------------------------------


class Trial:
    """The tries of one class of bad input: its row, the rows it may add, its failures."""

    def __init__(self, c: Campaign, name: str, where: str) -> None:
        self.c = c
        self.row = InputClass(name, where)
        self.allowed: Counter[tuple[str, str]] = Counter()
        self.before = c.counts()
        self.rows_before = c.rows()
        self.started = time.monotonic()

    def allow(self, party: str, table: str, n: int = 1) -> None:
        """``n`` more rows in ``party``'s ``table`` are expected (they are no harm)."""
        self.allowed[(party, table)] += n

    def fail(self, text: str) -> None:
        self.row.failures.append(text[:160])

    def check(
        self,
        label: str,
        answer: Answer,
        *,
        codes: set[str] | None = None,
        about: str = "",
        inert: bool = False,
        verify: Verify | None = None,
    ) -> Seen:
        """Count one try. A refusal must carry one of ``codes`` and mention ``about``;
        an acceptance passes only if ``inert`` (neutralised); ``verify`` then finds what is
        wrong with it (it runs for refusals too), or None."""
        seen = judge(answer)
        self.row.tried += 1
        problem = None
        if seen.kind == "server_error":
            self.row.server_errors += 1
            problem = seen.text
        elif seen.kind == "unclear":
            problem = f"unclear answer: {seen.text}"
        elif seen.kind == "refused" and (
            (codes is not None and seen.code not in codes) or about.lower() not in seen.text.lower()
        ):
            problem = f"refused for another reason: {seen.text}"
        elif seen.kind == "accepted" and not inert:
            problem = f"accepted ({seen.text})"
        elif verify is not None:
            problem = verify()
        if problem:
            self.fail(f"{label}: {problem}")
        else:
            self.row.refused += 1
            if not self.row.example and seen.kind == "refused":
                self.row.example = seen.text[:160]
        if isinstance(answer, httpx.Response) and answer.elapsed.total_seconds() > SLOW_S:
            self.fail(f"{label}: answered after {answer.elapsed.total_seconds():.1f} s")
        return seen

    def finish(self) -> InputClass:
        """Compare the stored rows with those before; log the row."""
        after = self.c.counts()
        for party in PARTIES:
            before, now = self.before.get(party, {}), after.get(party, {})
            for table in sorted(set(before) | set(now)):
                moved, allowed = (
                    now.get(table, 0) - before.get(table, 0),
                    self.allowed[(party, table)],
                )
                if moved != allowed:
                    self.row.changed += 1
                    self.fail(f"{party}.{table}: {moved:+d} rows, {allowed:+d} allowed")
        for where, count in self.c.altered(self.rows_before).items():
            self.row.changed += 1
            self.fail(f"{where}: {count} rows that existed before were altered or deleted")
        row = self.row
        self.c.log(
            f"  {row.name}: tried {row.tried}, refused {row.refused}, server errors"
            f" {row.server_errors}, changed {row.changed} ({time.monotonic() - self.started:.1f} s)"
        )
        for failure in row.failures:
            self.c.log(f"    ! {failure}")
        return row


# --- the federation as its users see it -------------------------------------------------------


class Workbench:
    """A browser's session at a node's workbench: its cookie and CSRF token."""

    def __init__(self, world: World, party: str, user: str) -> None:
        url = world.layout.parties[party].api_url
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
        login = {"username": user, "password": password(party), "csrf_token": self.login_token()}
        done = self.client.post("/workbench/login", data=login)
        if done.status_code != 303:
            raise RuntimeError(f"{user} cannot log in at {party}'s workbench ({done.status_code})")
        self.csrf = token_in(self.client.get("/workbench/").text)

    def login_token(self) -> str:
        return token_in(self.client.get("/workbench/login").text)

    def get(self, path: str, **params: Any) -> Answer:
        return send(self.client.get, path, params=params or None)

    def post(
        self, path: str, form: dict[str, Any], files: Any = None, *, csrf: bool = True
    ) -> Answer:
        data = {**form, "csrf_token": self.csrf} if csrf else form
        return send(self.client.post, path, data=data, files=files)


def token_in(page: str) -> str:
    found = re.search(r'name="csrf[_-]token" (?:value|content)="([^"]+)"', page)
    if not found:
        raise RuntimeError("no CSRF token in the workbench page")
    return found.group(1)


class Campaign:
    """The running world, its users' clients, and what the classes share."""

    def __init__(self, world: World, log: Callable[[str], None]) -> None:
        self.world = world
        self.log = log
        self.pki = world.layout.pki_dir
        self.trace = world.facts.dna_trace  # a DNA trace of a person DE holds (JSON)
        self.face = face_jpeg()  # a photo with one face
        self.hits: dict[str, tuple[int, str]] = {}  # searches with a candidate at DE
        self._benches: dict[tuple[str, str], Workbench] = {}
        self._clients: dict[tuple[str, str], httpx.Client] = {}
        self._router: httpx.Client | None = None
        self._signers: dict[str, Any] = {}

    def close(self) -> None:
        clients = [*self._clients.values(), *(b.client for b in self._benches.values())]
        for client in [*clients, *([self._router] if self._router else [])]:
            client.close()

    # --- clients
    def api(self, user: str = "olga", party: str = REQUESTER) -> httpx.Client:
        if (party, user) not in self._clients:
            self._clients[(party, user)] = self.world.api(party, user, timeout=60)
        return self._clients[(party, user)]

    def bench(self, user: str = "olga", party: str = REQUESTER) -> Workbench:
        if (party, user) not in self._benches:
            self._benches[(party, user)] = Workbench(self.world, party, user)
        return self._benches[(party, user)]

    @property
    def router(self) -> httpx.Client:
        if self._router is None:
            self._router = self.world.router(REQUESTER, timeout=60)
        return self._router

    def post(self, path: str, body: Any, user: str = "olga", party: str = REQUESTER) -> Answer:
        return send(self.api(user, party).post, path, json=body)

    def search(self, body: dict[str, Any], user: str = "olga") -> Answer:
        return self.post("/api/searches", body, user)

    def dna_body(self, data: bytes | None = None, **fields: Any) -> dict[str, Any]:
        """A DNA search of AT's officer, to DE only, with ``fields`` changed."""
        sample = base64.b64encode(self.trace if data is None else data).decode()
        body = self.world.search_body("dna", targets=[HOLDER])
        body["probe"] = {"format": "dna_profile", "data": sample}
        body.update(fields)
        return body

    def face_body(self, image: bytes | str) -> dict[str, Any]:
        data = image if isinstance(image, str) else base64.b64encode(image).decode()
        return self.world.search_body("face", image=data, targets=[HOLDER])

    def form(self, **fields: Any) -> dict[str, Any]:
        """AT's workbench search form: a DNA search to DE, with ``fields`` changed."""
        form = {
            "category": "dna",
            "purpose": "investigation",
            "offence": "0500 00",
            "max_penalty_months": "120",
            "case_reference": "AT-INPUTS-FORM",
            "targets": [HOLDER],
            "deadline_s": "10",
            "profile_text": self.trace.decode(),
        }
        form.update(fields)
        return form

    def hit(self, case: str) -> tuple[int, str]:
        """A DNA search of AT's officer with a candidate at DE: (search id, reference)."""
        found = self.api().post("/api/searches", json=self.dna_body(case_reference=case))
        found.raise_for_status()
        view = found.json()
        candidates = [c for r in view["replies"] if r["party"] == HOLDER for c in r["candidates"]]
        if not candidates:
            raise RuntimeError(f"the DNA search for {case} found no candidate at {HOLDER}")
        return int(view["id"]), str(candidates[0]["reference"])

    def view(self, search_id: int | None) -> dict[str, Any]:
        """AT's national API view of a search ({} if there is none)."""
        found = self.api().get(f"/api/searches/{search_id or 0}")
        return dict(found.json()) if found.status_code == 200 else {}

    # --- signed envelopes for the router
    def signer(self, party: str, pki: Path | None = None) -> Any:
        from prum.federation.security.signing import Signer

        key = f"{pki or self.pki}:{party}"
        if key not in self._signers:
            self._signers[key] = Signer(pki or self.pki, party)
        return self._signers[key]

    def envelope(
        self, *, drop: tuple[str, ...] = (), sign_as: str = REQUESTER, **fields: Any
    ) -> dict[str, Any]:
        """A SearchRequest of AT (DNA, to DE) with ``fields`` changed, signed by ``sign_as``."""
        body = self.world.signed_search(REQUESTER)["body"]
        body.update(fields)
        for name in drop:
            body.pop(name, None)
        return dict(self.signer(sign_as).sign(body).to_dict())

    def to_router(self, envelope: dict[str, Any] | bytes, path: str = "/v1/search") -> Answer:
        content = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        return send(self.router.post, path, content=content, headers=JSON)

    # --- what is stored
    def counts(self) -> dict[str, dict[str, int]]:
        """Rows of the protected tables (PostgreSQL may be restarting: retried for 60 s)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.world.stored_everywhere()
            except sa.exc.SQLAlchemyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def rows(self) -> dict[str, dict[Any, str]]:
        """A digest of each row of the protected tables, by table and primary key."""
        digests: dict[str, dict[Any, str]] = {}
        for party in PARTIES:
            engine = sa.create_engine(self.world.database_url(party))
            try:
                with engine.connect() as conn:
                    for name in self.world.stored(party):
                        digests[f"{party}.{name}"] = _digests(conn, name)
            finally:
                engine.dispose()
        return digests

    def altered(self, before: dict[str, dict[Any, str]]) -> dict[str, int]:
        """Per table, how many of the rows ``before`` are now different or gone."""
        after = self.rows()
        counts = {
            where: sum(after.get(where, {}).get(key) != digest for key, digest in rows.items())
            for where, rows in before.items()
        }
        return {where: n for where, n in counts.items() if n}


def _digests(conn: sa.Connection, name: str) -> dict[Any, str]:
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    keys = [c.name for c in table.primary_key.columns]
    kept = [c for c in table.columns if c.name not in VOLATILE]
    rows: dict[Any, str] = {}
    for row in conn.execute(sa.select(*kept)).mappings():
        values = repr(sorted((k, str(v)) for k, v in row.items()))
        rows[tuple(row[k] for k in keys) or values] = hashlib.sha1(values.encode()).hexdigest()
    return rows


def search_id(answer: Answer) -> int | None:
    """The search an answer created: the national API's view, or the workbench redirect."""
    if not isinstance(answer, httpx.Response):
        return None
    if answer.status_code == 200 and "json" in answer.headers.get("content-type", ""):
        found = answer.json()
        return int(found["id"]) if isinstance(found, dict) and "id" in found else None
    moved = re.search(r"/searches/(\d+)$", answer.headers.get("location", ""))
    return int(moved.group(1)) if answer.status_code == 303 and moved else None
