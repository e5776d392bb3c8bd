"""How the router talks to the nodes: a search to one requested party, whose outcome
always becomes one CountryReply, and a core-data message to one inbox.

A node's own answer is used only if it is an HTTP 200 with a JSON envelope signed by
that very party, holding a valid CountryReply about this request. Everything else
becomes a reply the router writes, with an :class:`ErrorInfo` saying why:

==========================================  ============  =====================
what the router observed                    status        error code
==========================================  ============  =====================
no answer before the deadline               timeout       ``no_answer``
connection refused, reset, DNS failure      unavailable   ``unreachable``
TLS handshake failed (certificate)          error         ``bad_certificate``
HTTP error, not JSON, too large, invalid    error         ``invalid_reply``
signature wrong, signed by another party    error         the security error's
==========================================  ============  =====================

A delivery to an inbox that cannot be completed now (no connection, timeout, HTTP 5xx,
no proper acknowledgement) is :class:`DestinationUnavailable`, so that the sender's
outbox tries again; a 4xx is :class:`DeliveryRejected`, for good.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from prum.errors import (
    BadCertificate,
    DeliveryRejected,
    DestinationUnavailable,
    InvalidReply,
    NoAnswer,
    PrumError,
    SecurityError,
    Unreachable,
)
from prum.messages import CountryReply, ErrorInfo, ReplyStatus, SearchRequest, utcnow
from prum.security.signing import Verifier

JSON_HEADERS = {"content-type": "application/json"}
# An acknowledgement or error from a node's inbox is small; anything larger is wrong.
MAX_ACK_BYTES = 64 * 1024
# What a node may say about itself; timeout and unavailable are the router's to observe.
NODE_STATUSES = frozenset(
    {ReplyStatus.ANSWERED, ReplyStatus.NO_HIT, ReplyStatus.REFUSED, ReplyStatus.ERROR}
)


@dataclass(frozen=True)
class Answer:
    """One target's CountryReply (as JSON) and the metadata the audit log keeps of it."""

    party: str
    status: ReplyStatus
    reply: dict[str, Any]
    message_id: str
    candidates: int
    duration_ms: int
    signature: str | None  # the node's, when the reply is its own
    reason_code: str | None


class _TooLarge(Exception):
    pass


class Fanout:
    """Posts a search envelope to one node and judges what comes back."""

    def __init__(
        self,
        clients: Mapping[str, httpx.AsyncClient],
        verifier: Verifier,
        *,
        max_reply_bytes: int,
    ):
        self.clients = clients
        self.verifier = verifier
        self.max_reply_bytes = max_reply_bytes

    async def ask(
        self, party: str, url: str, payload: bytes, request: SearchRequest, deadline: float
    ) -> Answer:
        """The target's answer; never raises (a failure is a reply the router writes)."""
        started = time.monotonic()
        try:
            return await self._ask(party, url, payload, request, deadline, started)
        except PrumError as exc:
            return self.written(request, party, exc, _ms(started))
        except Exception as exc:  # a bug must cost one reply, never the whole search
            failure = InvalidReply(
                f"the router could not read the answer of {party} ({type(exc).__name__})",
                party=party,
            )
            return self.written(request, party, failure, _ms(started))

    async def _ask(
        self,
        party: str,
        url: str,
        payload: bytes,
        request: SearchRequest,
        deadline: float,
        started: float,
    ) -> Answer:
        timeout = max(0.001, deadline - started)
        try:
            async with self.clients[party].stream(
                "POST", url + "/v1/search", content=payload, headers=JSON_HEADERS, timeout=timeout
            ) as response:
                raw = await self._read(response)
                status = response.status_code
        except httpx.TimeoutException:
            raise NoAnswer(_no_answer(party, deadline - started), party=party) from None
        except httpx.ConnectError as exc:
            tls = _tls_failure(exc)
            if tls is not None:
                raise BadCertificate(
                    f"the TLS handshake with {party} failed: {tls}", party=party
                ) from None
            raise Unreachable(f"{party} cannot be reached: {exc}"[:500], party=party) from None
        except httpx.TransportError as exc:
            raise InvalidReply(
                f"the connection to {party} broke before a full answer ({type(exc).__name__})",
                party=party,
            ) from None
        except _TooLarge:
            raise InvalidReply(
                f"the answer of {party} is larger than {self.max_reply_bytes} bytes",
                party=party,
            ) from None
        if status != 200:
            raise InvalidReply(
                f"{party} answered HTTP {status}{_error_code(raw)}",
                party=party,
                http_status=status,
            )
        try:
            envelope = json.loads(raw)
        except ValueError:
            raise InvalidReply(f"the answer of {party} is not JSON", party=party) from None
        message = self.verifier.verify(envelope, expected_signer=party)
        try:
            reply = CountryReply.model_validate(message.body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise InvalidReply(
                f"the answer of {party} is not a valid CountryReply: {problems}", party=party
            ) from None
        if reply.party != party or reply.in_reply_to != request.message_id:
            raise InvalidReply(
                f"the answer of {party} is about {reply.party}'s reply to "
                f"{reply.in_reply_to}, not to this request",
                party=party,
            )
        if reply.status not in NODE_STATUSES:
            raise InvalidReply(
                f"{party} reported status {reply.status.value!r}, which only the router "
                "may observe",
                party=party,
            )
        return Answer(
            party=party,
            status=reply.status,
            reply=message.body,  # as the node signed it
            message_id=reply.message_id,
            candidates=len(reply.candidates),
            duration_ms=_ms(started),
            signature=message.signature,
            reason_code=None if reply.error is None else reply.error.code,
        )

    async def _read(self, response: httpx.Response) -> bytes:
        return await _read(response, self.max_reply_bytes)

    def written(
        self, request: SearchRequest, party: str, exc: PrumError, duration_ms: int
    ) -> Answer:
        """A reply the router writes for ``party``: the status follows the error."""
        if isinstance(exc, NoAnswer):
            status = ReplyStatus.TIMEOUT
        elif isinstance(exc, Unreachable):
            status = ReplyStatus.UNAVAILABLE
        elif isinstance(exc, (InvalidReply, SecurityError)):
            status = ReplyStatus.ERROR
        else:
            status = ReplyStatus.REFUSED  # the router's own policy refusal
        reply = CountryReply(
            in_reply_to=request.message_id,
            party=party,
            status=status,
            answered_at=utcnow(),
            duration_ms=duration_ms,
            error=ErrorInfo(code=exc.code, message=exc.message[:2000], details=exc.details),
        )
        return Answer(
            party=party,
            status=status,
            reply=reply.model_dump(mode="json"),
            message_id=reply.message_id,
            candidates=0,
            duration_ms=duration_ms,
            signature=None,
            reason_code=exc.code,
        )

    def timed_out(self, request: SearchRequest, party: str, waited_ms: int) -> Answer:
        """The reply for a target still silent at the deadline."""
        failure = NoAnswer(_no_answer(party, waited_ms / 1000), party=party)
        return self.written(request, party, failure, waited_ms)


async def deliver_to_inbox(
    client: httpx.AsyncClient,
    destination: str,
    url: str,
    payload: bytes,
    message_id: str,
    *,
    timeout: float,
) -> dict[str, Any]:
    """Post a core-data envelope to ``destination``'s inbox; its acknowledgement."""
    try:
        async with client.stream(
            "POST", url + "/v1/inbox", content=payload, headers=JSON_HEADERS, timeout=timeout
        ) as response:
            raw = await _read(response, MAX_ACK_BYTES)
            status = response.status_code
    except httpx.TimeoutException:
        raise DestinationUnavailable(
            f"{destination} did not acknowledge within {timeout:g} s; send again later",
            destination=destination,
        ) from None
    except (httpx.TransportError, _TooLarge) as exc:
        raise DestinationUnavailable(
            f"{destination} cannot take the message now ({type(exc).__name__}); send again later",
            destination=destination,
        ) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status >= 500:
        raise DestinationUnavailable(
            f"{destination} answered HTTP {status}; send again later",
            destination=destination,
            destination_status=status,
        )
    if status != 200:
        code, text = _error_of(answer)
        raise DeliveryRejected(
            f"{destination} refused the message (HTTP {status}"
            f"{', ' + code if code else ''}){': ' + text if text else ''}",
            destination=destination,
            destination_status=status,
            destination_code=code,
        )
    if (
        not isinstance(answer, dict)
        or answer.get("accepted") != message_id
        or not isinstance(answer.get("duplicate"), bool)
    ):
        raise DestinationUnavailable(
            f"{destination} did not acknowledge message {message_id} properly; send again later",
            destination=destination,
        )
    return {"accepted": message_id, "duplicate": answer["duplicate"]}


async def _read(response: httpx.Response, limit: int) -> bytes:
    """The body, or _TooLarge as soon as it exceeds ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error_of(answer: Any) -> tuple[str | None, str | None]:
    """(code, message) of another party's error answer, shortened."""
    if not isinstance(answer, dict):
        return None, None
    code, message = answer.get("code"), answer.get("message")
    return (
        code[:64] if isinstance(code, str) else None,
        message[:500] if isinstance(message, str) else None,
    )


def _no_answer(party: str, seconds: float) -> str:
    return f"no answer from {party} within the deadline ({seconds * 1000:.0f} ms)"


def _tls_failure(exc: BaseException) -> str | None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return (getattr(cause, "reason", None) or type(cause).__name__)[:200]
        cause = cause.__cause__ or cause.__context__
    return None


def _error_code(raw: bytes) -> str:
    try:
        code = json.loads(raw).get("code")
    except (ValueError, AttributeError):
        return ""
    return f" ({code[:64]})" if isinstance(code, str) else ""


def _ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
