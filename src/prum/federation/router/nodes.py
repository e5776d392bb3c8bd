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

import asyncio
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from prum.errors import (
    BadCertificate,
    DeliveryRejected,
    DestinationUnavailable,
    InvalidReply,
    MalformedRequest,
    NoAnswer,
    PrumError,
    SecurityError,
    Unreachable,
)
from prum.federation.messages import (
    CountryReply,
    ErrorInfo,
    ReplyHeader,
    ReplyStatus,
    SearchHeader,
    utcnow,
)
from prum.federation.router.http11 import Broken, ConnectFailed, HttpFailure, Pool, TooLarge
from prum.federation.security.signing import Verifier, canonical_json

# An acknowledgement or error from a node's inbox is small; anything larger is wrong.
MAX_ACK_BYTES = 64 * 1024
# What a node may say about itself; timeout and unavailable are the router's to observe.
NODE_STATUSES = frozenset(
    {ReplyStatus.ANSWERED, ReplyStatus.NO_HIT, ReplyStatus.REFUSED, ReplyStatus.ERROR}
)


@dataclass(frozen=True)
class Answer:
    """One target's CountryReply and the metadata the audit log keeps of it."""

    party: str
    status: ReplyStatus
    reply_json: bytes  # canonical JSON: the node's body as it signed it, or the router's
    message_id: str
    candidates: int
    duration_ms: int
    signature: str | None  # the node's, when the reply is its own
    reason_code: str | None


class NodeLink:
    """The router's connections to one node: where it is and a pool to it."""

    def __init__(self, url: str, tls: ssl.SSLContext) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{url!r} is not an https URL")
        self.prefix = parts.path.rstrip("/")
        self.pool = Pool(parts.hostname, parts.port or 443, tls)

    async def post(self, path: str, body: bytes, *, limit: int) -> tuple[int, bytes]:
        answer = await self.pool.post(self.prefix + path, body, limit=limit)
        return answer.status, answer.body

    def close(self) -> None:
        self.pool.close()


class Fanout:
    """Posts a search envelope to one node and judges what comes back."""

    def __init__(
        self,
        links: Mapping[str, NodeLink],
        verifier: Verifier,
        *,
        max_reply_bytes: int,
    ):
        self.links = links
        self.verifier = verifier
        self.max_reply_bytes = max_reply_bytes

    async def ask(self, party: str, payload: bytes, request: SearchHeader) -> Answer:
        """The target's answer; never raises (a failure is a reply the router writes).

        The caller enforces the deadline by cancelling the task."""
        started = time.monotonic()
        try:
            return await self._ask(party, payload, request, started)
        except PrumError as exc:
            return self.written(request, party, exc, _ms(started))
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug must cost one reply, never the whole search
            failure = InvalidReply(
                f"the router could not read the answer of {party} ({type(exc).__name__})",
                party=party,
            )
            return self.written(request, party, failure, _ms(started))

    async def _ask(
        self, party: str, payload: bytes, request: SearchHeader, started: float
    ) -> Answer:
        try:
            status, raw = await self.links[party].post(
                "/v1/search", payload, limit=self.max_reply_bytes
            )
        except ConnectFailed as exc:
            if exc.tls_reason is not None:
                raise BadCertificate(
                    f"the TLS handshake with {party} failed: {exc.tls_reason}", party=party
                ) from None
            raise Unreachable(f"{party} cannot be reached: {exc}"[:500], party=party) from None
        except TooLarge:
            raise InvalidReply(
                f"the answer of {party} is larger than {self.max_reply_bytes} bytes",
                party=party,
            ) from None
        except HttpFailure as exc:
            raise InvalidReply(
                f"the connection to {party} broke before a full answer ({exc})", party=party
            ) from None
        if status != 200:
            raise InvalidReply(
                f"{party} answered HTTP {status}{_error_code(raw)}",
                party=party,
                http_status=status,
            )
        try:
            message = self.verifier.verify_json(raw, expected_signer=party)
        except MalformedRequest:
            raise InvalidReply(f"the answer of {party} is not JSON", party=party) from None
        body = message.body
        candidates = body.get("candidates", [])
        try:
            reply = ReplyHeader.model_validate(body)
            if body.get("kind") != "country_reply" or not isinstance(candidates, list):
                raise ValueError("not a country_reply with a list of candidates")
        except (ValidationError, ValueError) as exc:
            problems = (
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                if isinstance(exc, ValidationError)
                else str(exc)
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
            reply_json=message.body_json,  # as the node signed it
            message_id=reply.message_id,
            candidates=len(candidates),
            duration_ms=_ms(started),
            signature=message.signature,
            reason_code=None if reply.error is None else reply.error.code,
        )

    def written(
        self, request: SearchHeader, party: str, exc: PrumError, duration_ms: int
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
            # Without the newer optional "withheld", which older requesters do not know.
            reply_json=canonical_json(reply.model_dump(mode="json", exclude={"withheld"})),
            message_id=reply.message_id,
            candidates=0,
            duration_ms=duration_ms,
            signature=None,
            reason_code=exc.code,
        )

    def timed_out(self, request: SearchHeader, party: str, waited_ms: int) -> Answer:
        """The reply for a target still silent at the deadline."""
        failure = NoAnswer(_no_answer(party, waited_ms / 1000), party=party)
        return self.written(request, party, failure, waited_ms)


async def deliver_to_inbox(
    link: NodeLink,
    destination: str,
    payload: bytes,
    message_id: str,
    *,
    timeout: float,
) -> dict[str, Any]:
    """Post a core-data envelope to ``destination``'s inbox; its acknowledgement."""
    try:
        status, raw = await asyncio.wait_for(
            link.post("/v1/inbox", payload, limit=MAX_ACK_BYTES), timeout
        )
    except TimeoutError:
        raise DestinationUnavailable(
            f"{destination} did not acknowledge within {timeout:g} s; send again later",
            destination=destination,
        ) from None
    except (HttpFailure, Broken) as exc:
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


def _error_code(raw: bytes) -> str:
    try:
        code = json.loads(raw).get("code")
    except (ValueError, AttributeError):
        return ""
    return f" ({code[:64]})" if isinstance(code, str) else ""


def _ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
