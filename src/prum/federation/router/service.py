"""The central router: verifies, authorises, fans out, collects, signs, logs metadata.

Plain Python (no web framework): :mod:`prum.federation.router.api` only translates HTTP to these
calls. The contract is ``docs/protocol.md``; in short:

* ``search``: the envelope must verify, its signer must be the TLS peer and the
  ``requesting_party``, it must not be a replay, and the requester's directory scope
  must allow the category for the purpose. The same envelope then goes to every target
  at once; each target gets exactly one :class:`CountryReply` in the answer, the
  node's own (verified: signed by that target, about this request) or one the router
  writes (``timeout``, ``unavailable``, ``error``, or ``refused`` for a target that does
  not offer the category or accept the purpose: it is never contacted). The call
  returns by the request's deadline (capped by the router) whatever the nodes do.
* ``deliver``: a core-data request or reply goes to the party named in it, and the
  destination's acknowledgement comes back; a destination that is down is a 503, so
  the sender's outbox retries.

Payloads (probes, candidate images, core data, names) pass through memory only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from prum.audit.events import EventKind, Outcome
from prum.audit.log import AuditLog
from prum.audit.stats import Statistics
from prum.errors import (
    AuditUnavailable,
    BadSignature,
    CategoryNotOffered,
    DestinationUnavailable,
    InvalidMessage,
    InvalidTargets,
    MalformedRequest,
    NotAuthorised,
    OutOfScope,
    PrumError,
    PurposeNotAllowed,
    Replay,
    RouterBusy,
    UnknownParty,
)
from prum.federation.messages import (
    CoreDataCancelled,
    CoreDataHold,
    CoreDataReply,
    CoreDataRequest,
    RecordWithdrawn,
    ReplyStatus,
    SearchHeader,
    SearchReply,
)
from prum.federation.router.directory import Directory, PartyEntry, load_directory
from prum.federation.router.journal import AuditTrail, audit_event
from prum.federation.router.nodes import Answer, Fanout, NodeLink, deliver_to_inbox
from prum.federation.router.settings import RouterSettings
from prum.federation.security.pki import ROUTER, PeerIdentity, client_context
from prum.federation.security.signing import (
    ENVELOPE_FIELDS,
    AuditSigner,
    ReplayGuard,
    Signer,
    VerifiedMessage,
    Verifier,
    canonical_json,
    parse_time,
)

M = TypeVar("M", bound=BaseModel)
# One line per search with the milliseconds of each stage, for bench/face_federated.py;
# silent unless PRUM_TIMING_LOG is set (prum.federation.transport).
timing_log = logging.getLogger("prum.timing")

_OUTCOMES = {status: Outcome(status.value) for status in ReplyStatus}
# Told of a search's progress: first {"targets": [...]}, then {"party", "status",
# "candidates", "duration_ms"} per target as its answer settles (a requester's live page).
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class _Target:
    party: str
    entry: PartyEntry
    refusal: PrumError | None  # set: the router answers for the target, without asking it


class Router:
    """One router process: the directory, its keys, its HTTP clients and its audit trail."""

    def __init__(
        self,
        *,
        directory: Directory,
        signer: Signer,
        verifier: Verifier,
        client_tls: ssl.SSLContext,
        trail: AuditTrail,
        statistics: Statistics | None = None,
        max_deadline_ms: int = 120_000,
        deliver_timeout_s: float = 15.0,
        replay_window_s: float = 300.0,
        max_reply_bytes: int = 64 * 1024 * 1024,
        max_in_flight: int = 256,
    ) -> None:
        self.directory = directory
        self.signer = signer
        self.verifier = verifier
        self.trail = trail
        self.statistics = statistics
        self.max_deadline_ms = max_deadline_ms
        self.deliver_timeout_s = deliver_timeout_s
        self.replay_window = dt.timedelta(seconds=replay_window_s)
        self.replays = ReplayGuard(replay_window_s)
        self.max_in_flight = max_in_flight
        # Persistent connections to every party (router/http11.py: why not httpx).
        self.links = {
            party: NodeLink(entry.url, client_tls) for party, entry in directory.parties.items()
        }
        self.fanout = Fanout(self.links, verifier, max_reply_bytes=max_reply_bytes)
        self.started = time.monotonic()
        self.in_flight = 0
        self.shed = 0  # searches refused because max_in_flight were running

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> Router:
        """Build a router from its settings; BadInput when a file is missing or wrong."""
        directory = load_directory(settings.directory_file)
        signer = Signer(settings.pki_dir, ROUTER)
        url = settings.audit_database_url()
        statistics = Statistics(url)
        log = AuditLog(
            url,
            party=ROUTER,
            chain=settings.replica,
            signer=AuditSigner(signer),
            statistics=statistics,
        )
        verifier, client_tls = Verifier(settings.pki_dir), client_context(settings.pki_dir, ROUTER)
        verifier.follow(client_tls)  # a node revoked mid-run: no new connection to it
        return cls(
            directory=directory,
            signer=signer,
            verifier=verifier,
            client_tls=client_tls,
            trail=AuditTrail(log, backlog=settings.audit_backlog),
            statistics=statistics,
            max_deadline_ms=settings.max_deadline_ms,
            deliver_timeout_s=settings.deliver_timeout_s,
            replay_window_s=settings.replay_window_s,
            max_reply_bytes=settings.max_reply_bytes,
            max_in_flight=settings.max_in_flight,
        )

    async def aclose(self) -> None:
        for link in self.links.values():
            link.close()
        await asyncio.to_thread(self.trail.close)

    # --- search ---------------------------------------------------------------------

    async def search(
        self, raw: bytes, peer: PeerIdentity, progress: Progress | None = None
    ) -> bytes:
        """Fan a requester's signed SearchRequest (the envelope's bytes) out; return the
        signed SearchReply (bytes). ``progress`` hears of each target as it settles
        (statuses only: the answers themselves come in the signed reply).

        The envelope travels to every target as it came, byte for byte; the router reads
        its metadata (SearchHeader), never the probe. Each node's reply goes into the
        answer as the node signed it, spliced in, not re-encoded.
        """
        started = time.monotonic()
        log: dict[str, Any] = {"requesting_party": peer.party}
        try:
            self.trail.ready()
            if self.in_flight >= self.max_in_flight:
                self.shed += 1
                raise RouterBusy(
                    f"the router is answering {self.in_flight} searches; try again in a"
                    " second (or at another replica)",
                    in_flight=self.in_flight,
                )
            message = self._verify(raw, peer, log)
            self._check_replay(message)
            request = _parse(SearchHeader, message.body)
            log.update(_search_fields(request))
            if request.requesting_party != message.signer:
                raise NotAuthorised(
                    f"the request is signed by {message.signer} but names "
                    f"{request.requesting_party} as requesting party",
                    signer=message.signer,
                    requesting_party=request.requesting_party,
                )
            self._authorise(request)
            targets = self._targets(request)
        except PrumError as exc:
            self.refused("search", exc, log)
            raise
        deadline_ms = min(request.deadline_ms, self.max_deadline_ms)
        checked = time.monotonic()
        self.in_flight += 1
        try:
            # The writer commits what is queued at once, so this entry is on disk within
            # a millisecond or two, long before any node answers; the answer below
            # leaves only once every entry of the search is committed.
            self.trail.record(
                audit_event(
                    EventKind.SEARCH_RECEIVED,
                    **log,
                    signature=message.signature,
                    detail=f"to {len(targets)} parties",
                )
            )
            answers = await self._fan_out(request, raw, targets, started, deadline_ms, progress)
        finally:
            self.in_flight -= 1
        fanned = time.monotonic()
        ticket = 0
        for answer in answers:
            ticket = self.trail.record(
                audit_event(
                    EventKind.SEARCH_ANSWERED,
                    **log,
                    requested_party=answer.party,
                    outcome=_OUTCOMES[answer.status],
                    reason_code=answer.reason_code,
                    candidate_count=answer.candidates,
                    duration_ms=answer.duration_ms,
                    signature=answer.signature,
                    detail=f"reply {answer.message_id}",
                )
            )
        await self.trail.committed(ticket)
        committed = time.monotonic()
        signed = self.signer.sign_json(_reply_json(request, answers))
        if timing_log.isEnabledFor(logging.INFO):
            stages = {
                "check": checked - started,  # signature, replay, authorisation
                "fan_out": fanned - checked,  # until the last target settled
                "audit": committed - fanned,  # the answers' log entries committed
                "sign": time.monotonic() - committed,
            }
            timing_log.info(
                "%s",
                json.dumps(
                    {
                        "routed": request.message_id,
                        **{k: round(1000 * v, 2) for k, v in stages.items()},
                        **{f"ask_{a.party}": a.duration_ms for a in answers},
                    }
                ),
            )
        return signed

    def _authorise(self, request: SearchHeader) -> None:
        try:
            requester = self.directory.entry(request.requesting_party)
        except UnknownParty:
            raise NotAuthorised(
                f"{request.requesting_party} holds a federation certificate but is not in "
                "the router's directory",
                party=request.requesting_party,
            ) from None
        if not requester.may(request.category, request.purpose):
            raise OutOfScope(
                f"{request.requesting_party} may not search {request.category.value} for "
                f"{request.purpose.value} (its scope in the federation directory)",
                party=request.requesting_party,
                category=request.category.value,
                purpose=request.purpose.value,
            )

    def _targets(self, request: SearchHeader) -> list[_Target]:
        """The parties to ask, each with the refusal the router gives for it, if any.

        ``"all"`` is every other party offering the category. A named party that does
        not offer the category, or any party that does not accept the purpose, is
        answered ``refused`` by the router (it is listed, never silently dropped).
        """
        requester = request.requesting_party
        if request.targets == "all":
            names = self.directory.offering(request.category, besides=requester)
        else:
            names = list(dict.fromkeys(request.targets))  # duplicates asked once
            for name in names:
                self.directory.entry(name)  # UnknownParty before anything is sent
            if requester in names:
                raise InvalidTargets(
                    f"{requester} cannot search itself through the router; search the "
                    "national system directly",
                    party=requester,
                )
        targets = []
        for name in names:
            entry = self.directory.entry(name)
            refusal: PrumError | None = None
            if request.category not in entry.offers:
                refusal = CategoryNotOffered(
                    f"{name} does not offer {request.category.value} searches",
                    party=name,
                    category=request.category.value,
                )
            elif request.purpose not in entry.accepts:
                refusal = PurposeNotAllowed(
                    f"{name} does not answer {request.category.value} searches for "
                    f"{request.purpose.value}",
                    party=name,
                    purpose=request.purpose.value,
                )
            targets.append(_Target(name, entry, refusal))
        return targets

    async def _fan_out(
        self,
        request: SearchHeader,
        payload: bytes,
        targets: list[_Target],
        started: float,
        deadline_ms: int,
        progress: Progress | None = None,
    ) -> list[Answer]:
        """Ask the targets at once; what has not settled ``deadline_ms`` after
        ``started`` is a timeout."""
        deadline = started + deadline_ms / 1000
        asked = {
            t.party: asyncio.create_task(self.fanout.ask(t.party, payload, request))
            for t in targets
            if t.refusal is None
        }
        written = {
            t.party: self.fanout.written(request, t.party, t.refusal, 0)
            for t in targets
            if t.refusal is not None
        }
        if progress is not None:
            progress({"targets": [t.party for t in targets]})
            for answer in written.values():
                progress(_progress_of(answer))
        if asked and progress is None:
            remaining = max(0.0, deadline - time.monotonic())
            _, late = await asyncio.wait(asked.values(), timeout=remaining)
            for pending in late:
                pending.cancel()
        elif asked and progress is not None:
            # One answer at a time, so the requester sees each country as it settles.
            waiting: set[asyncio.Task[Answer]] = set(asked.values())
            while waiting and (remaining := deadline - time.monotonic()) > 0:
                done, waiting = await asyncio.wait(
                    waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for settled in done:
                    progress(_progress_of(settled.result()))
            for pending in waiting:
                pending.cancel()
        answers = []
        for target in targets:
            task = asked.get(target.party)
            if target.party in written:
                answers.append(written[target.party])
            elif task is not None and task.done() and not task.cancelled():
                answers.append(task.result())
            else:
                answer = self.fanout.timed_out(request, target.party, deadline_ms)
                if progress is not None:
                    progress(_progress_of(answer))
                answers.append(answer)
        return answers

    # --- deliver --------------------------------------------------------------------

    async def deliver(self, raw: bytes, peer: PeerIdentity) -> dict[str, Any]:
        """Forward a CoreDataRequest, a CoreDataReply or a RecordWithdrawn notice;
        return the destination's ack.

        There is no replay guard here, only the time window: a sender's outbox resends
        the same message until it is acknowledged, and the destination's inbox makes
        that idempotent (``duplicate: true``). Only the signer can send its envelope
        (signer == TLS peer), so a resend is never a third party's replay.
        """
        started = time.monotonic()
        log: dict[str, Any] = {"requesting_party": peer.party}
        kind = EventKind.REFUSED
        try:
            self.trail.ready()
            message = self._verify(raw, peer, log)
            self._check_fresh(message)
            sender, destination, kind = self._route(message, log)
        except PrumError as exc:
            self.refused("deliver", exc, log)
            raise
        outcome, reason = Outcome.DELIVERED, None
        if kind == EventKind.CORE_DATA_DECIDED:
            outcome = Outcome(message.body["decision"])  # released / refused
            reason = message.body.get("reason")
        try:
            ack = await deliver_to_inbox(
                self.links[destination],
                destination,
                raw,
                message.message_id,
                timeout=self.deliver_timeout_s,
            )
        except PrumError as exc:
            failed = (
                Outcome.UNAVAILABLE if isinstance(exc, DestinationUnavailable) else Outcome.ERROR
            )
            outcome, reason = failed, exc.code
            raise
        finally:
            ticket = self.trail.record(
                audit_event(
                    kind,
                    **log,
                    outcome=outcome,
                    reason_code=reason,
                    duration_ms=_elapsed_ms(started),
                    signature=message.signature,
                    detail=f"{sender} to {destination}",
                )
            )
        await self.trail.committed(ticket)  # acknowledged only once logged
        return ack

    def _route(self, message: VerifiedMessage, log: dict[str, Any]) -> tuple[str, str, EventKind]:
        """(sender, destination, audit kind) of a step-2 message, checked."""
        kind = message.body.get("kind")
        parsed: CoreDataRequest | CoreDataReply | RecordWithdrawn | CoreDataHold | CoreDataCancelled
        if kind == "core_data_request":
            parsed = _parse(CoreDataRequest, message.body)
            sender, destination = parsed.requesting_party, parsed.holder_party
            event_kind, role = EventKind.CORE_DATA_REQUESTED, "requesting_party"
            log.update(
                category=parsed.category,
                offence=parsed.offence,
                max_penalty_months=parsed.max_penalty_months,
                case_reference=parsed.case_reference,
            )
        elif kind == "core_data_reply":
            parsed = _parse(CoreDataReply, message.body)
            sender, destination = parsed.holder_party, parsed.requesting_party
            event_kind, role = EventKind.CORE_DATA_DECIDED, "holder_party"
        elif kind == "record_withdrawn":
            parsed = _parse(RecordWithdrawn, message.body)
            sender, destination = parsed.holder_party, parsed.requesting_party
            event_kind, role = EventKind.RECORD_WITHDRAWN, "holder_party"
            log.update(reference=[w.reference for w in parsed.withdrawn])
        elif kind == "core_data_hold":
            parsed = _parse(CoreDataHold, message.body)
            sender, destination = parsed.holder_party, parsed.requesting_party
            event_kind, role = EventKind.CORE_DATA_HELD, "holder_party"
            log.update(reference=[parsed.reference])
        elif kind == "core_data_cancelled":
            parsed = _parse(CoreDataCancelled, message.body)
            sender, destination = parsed.requesting_party, parsed.holder_party
            event_kind, role = EventKind.CORE_DATA_CANCELLED, "requesting_party"
            log.update(reference=[parsed.reference])
        else:
            raise InvalidMessage(
                "/v1/deliver takes a core_data_request, a core_data_reply, a core_data_hold,"
                f" a core_data_cancelled or a record_withdrawn, not {str(kind)[:40]!r}",
            )
        log.update(requesting_party=parsed.requesting_party, requested_party=parsed.holder_party)
        if sender != message.signer:
            raise NotAuthorised(
                f"the message is signed by {message.signer}, but only its {role} "
                f"({sender}) may send it",
                signer=message.signer,
                expected=sender,
            )
        try:
            self.directory.entry(sender)
        except UnknownParty:
            raise NotAuthorised(f"{sender} is not in the router's directory") from None
        self.directory.entry(destination)
        if destination == sender:
            raise InvalidTargets(f"{sender} cannot send a core-data message to itself")
        return sender, destination, event_kind

    # --- shared -----------------------------------------------------------------------

    def _verify(self, raw: bytes, peer: PeerIdentity, log: dict[str, Any]) -> VerifiedMessage:
        """Signature and signer == TLS peer; the message id goes into the log after.

        A body that is no envelope at all (not JSON, fields missing or of the wrong
        type) is malformed (400); an envelope whose checks fail is a security error."""
        try:
            message = self.verifier.verify_json(raw, expected_signer=peer.party)
        except BadSignature:
            _check_envelope_shape(raw)
            raise
        except RecursionError:  # JSON nested deeper than the parser goes
            raise MalformedRequest("the body is nested too deeply to be an envelope") from None
        log["message_id"] = message.message_id
        return message

    def _check_replay(self, message: VerifiedMessage) -> None:
        self.replays.check(message.message_id, message.body["issued_at"])

    def _check_fresh(self, message: VerifiedMessage) -> None:
        age = dt.datetime.now(dt.UTC) - parse_time(message.body["issued_at"])
        if abs(age) > self.replay_window:
            raise Replay(
                f"message {message.message_id} was issued {age} from now, outside the "
                f"{self.replay_window} window: sign it again with a fresh issued_at",
                message_id=message.message_id,
            )

    def refused(self, endpoint: str, exc: PrumError, log: Mapping[str, Any]) -> None:
        """Log a refused request (metadata known so far, and the error's code).

        A refusal because the log cannot keep up is not logged: it would only add to
        what the log cannot write."""
        if isinstance(exc, AuditUnavailable):
            return
        self.trail.record(
            audit_event(
                EventKind.REFUSED,
                **log,
                outcome=Outcome.REFUSED,
                reason_code=exc.code,
                detail=f"{endpoint} refused",
            )
        )

    def health(self) -> dict[str, Any]:
        failure = self.trail.failure
        if failure is not None:
            return {"status": "degraded", "reason": f"audit log failing ({failure})"}
        return {"status": "ok"}

    def live(self) -> dict[str, Any]:
        """Counters of this process (no personal data)."""
        return {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "searches_in_flight": self.in_flight,
            "searches_shed": self.shed,
            "node_connections_opened": sum(link.pool.opened for link in self.links.values()),
            "audit_pending": self.trail.pending,
            "parties": len(self.directory.parties),
        }

    async def stats(self, year: int | None = None) -> dict[str, Any]:
        summary: dict[str, Any] = (
            {}
            if self.statistics is None
            else await asyncio.to_thread(self.statistics.summary, year)
        )
        return {"router": self.live(), "statistics": summary}


def _parse(model: type[M], body: Mapping[str, Any]) -> M:
    """Validate a signed body; InvalidMessage lists what is wrong, never the values."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:10]
        )
        raise InvalidMessage(
            f"the signed body is not a valid {model.__name__}: {problems}"
        ) from None


def _check_envelope_shape(raw: bytes) -> None:
    """MalformedRequest unless ``raw`` is a JSON object with the envelope's fields, each of
    its type (string fields, an object body)."""
    envelope = json.loads(raw)  # verify_json has parsed it before: it is JSON
    problems = []
    if not isinstance(envelope, dict):
        problems.append("the body is not a JSON object")
    else:
        problems += [f"{name}: missing" for name in sorted(ENVELOPE_FIELDS - envelope.keys())]
        problems += [
            f"{name}: not a string"
            for name in sorted(ENVELOPE_FIELDS - {"body"})
            if name in envelope and not isinstance(envelope[name], str)
        ]
        if "body" in envelope and not isinstance(envelope["body"], dict):
            problems.append("body: not an object")
    if problems:
        raise MalformedRequest(f"the request is malformed: {'; '.join(problems)}")


def _reply_json(request: SearchHeader, answers: list[Answer]) -> bytes:
    """The canonical JSON of the SearchReply, with each CountryReply spliced in as the
    bytes it was signed as (canonical too), so nothing is re-encoded."""
    marker = f"replies-{uuid.uuid4()}"  # cannot occur anywhere else in the body
    body = SearchReply(
        in_reply_to=request.message_id, request_number=request.request_number, replies=[]
    ).model_dump(mode="json")
    body["replies"] = marker
    head, tail = canonical_json(body).split(f'"{marker}"'.encode())
    return head + b"[" + b",".join(a.reply_json for a in answers) + b"]" + tail


def _progress_of(answer: Answer) -> dict[str, Any]:
    return {
        "party": answer.party,
        "status": answer.status.value,
        "candidates": answer.candidates,
        "duration_ms": answer.duration_ms,
    }


def _search_fields(request: SearchHeader) -> dict[str, Any]:
    return {
        "requesting_party": request.requesting_party,
        "category": request.category,
        "purpose": request.purpose,
        "offence": request.offence,
        "max_penalty_months": request.max_penalty_months,
        "case_reference": request.case_reference,
        "request_number": request.request_number,
        "message_id": request.message_id,
    }


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
