"""A category's matcher served by an external ABIS over HTTP (docs/abis.md).

:class:`ExternalMatcher` is a CategoryMatcher: the node's registry
(prum.node.categories) makes one when the category's policy names an ``abis``. The
built-in matcher stays underneath as the node's system of record: records still enter
through it (the national-systems interface prepares and writes them), and in the same
transaction each insert and erasure is queued in the node's outbox for the ABIS
(prum.node.abis.delivery carries them, in order, exactly once). Searches go to the ABIS
with a deadline, behind a circuit breaker; an ABIS that fails or is slow raises
MatcherUnavailable or MatcherTimeout, which the node answers as the country's status
``error`` with the reason (code ``matcher_unavailable`` or ``matcher_timeout``; the
status ``timeout`` is the router's own observation), never by hanging.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Table, or_, select
from sqlalchemy.engine import Engine

from prum.categories.interface import Exposure, Ingester, MatchResult, Preparer, SubjectCategory
from prum.errors import BadInput, InvalidRecord, MatcherTimeout, MatcherUnavailable
from prum.federation.messages import Candidate, Category, Probe
from prum.node.abis.codecs import Codec, codec
from prum.node.abis.contract import (
    MAX_EXCLUDED,
    PREFIX,
    AbisError,
    IdentifyRequest,
    IdentifyResponse,
    InsertRecord,
)
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.outbox import ABIS_DELETE, ABIS_INSERT, enqueue

# Candidates asked of the ABIS beyond those wanted, so that the few the node's age rule
# withholds rarely shorten the list; the contract's maximum caps it.
OVERFETCH = 5
MAX_ASKED = 100


class CircuitBreaker:
    """Closed while the ABIS answers; open after ``failures`` failed searches in a row,
    so that searches fail at once instead of each waiting out its deadline; after
    ``reset_seconds`` one trial search goes through (half open) and its outcome closes
    or reopens the breaker."""

    def __init__(
        self, failures: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        self.last_failure = ""

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._trial else "open"

    def before(self) -> None:
        """Raise MatcherUnavailable while open; let one trial through after the pause."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self.clock() - self._opened_at
            if waited >= self.reset_seconds and not self._trial:
                self._trial = True
                return
            remaining = max(0.0, self.reset_seconds - waited)
            raise MatcherUnavailable(
                f"the ABIS is switched off after {self._count} failed searches in a row"
                f" (last: {self.last_failure}); next try in {remaining:.0f} s"
            )

    def success(self) -> None:
        with self._lock:
            self._count, self._opened_at, self._trial = 0, None, False

    def failure(self, reason: str) -> None:
        with self._lock:
            self._count += 1
            self.last_failure = reason
            if self._trial or self._count >= self.failures:
                self._opened_at, self._trial = self.clock(), False


def client_options(endpoint: AbisEndpoint, *, timeout: float) -> dict[str, Any]:
    """httpx client options for the ABIS: its CA, this node's client certificate
    (mutual TLS) and bearer token, as configured."""
    verify: ssl.SSLContext | bool = True
    if endpoint.ca_file is not None or endpoint.client_cert is not None:
        context = ssl.create_default_context(
            cafile=str(endpoint.ca_file) if endpoint.ca_file else None
        )
        if endpoint.client_cert is not None and endpoint.client_key is not None:
            context.load_cert_chain(str(endpoint.client_cert), str(endpoint.client_key))
        verify = context
    headers = {"Content-Type": "application/json"}
    token = token_of(endpoint)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "base_url": endpoint.url.rstrip("/") + PREFIX,
        "verify": verify,
        "headers": headers,
        "timeout": timeout,
        "limits": httpx.Limits(max_connections=32, max_keepalive_connections=16),
    }


def token_of(endpoint: AbisEndpoint) -> str | None:
    if endpoint.token_file is not None:
        try:
            return Path(endpoint.token_file).read_text().strip()
        except OSError as exc:
            raise BadInput(
                f"the ABIS token file {endpoint.token_file} cannot be read ({exc})"
            ) from None
    return endpoint.token


def error_of(response: httpx.Response) -> AbisError:
    """The ABIS's error body, or one made from the status when it sent none."""
    try:
        return AbisError.model_validate(response.json())
    except (ValueError, ValidationError):
        return AbisError(code="abis_error", message=f"HTTP {response.status_code}")


class ExternalMatcher:
    """The CategoryMatcher of a category whose searches an external ABIS answers."""

    # What the node reads of the built-in matcher underneath (the face pipeline that
    # checks outgoing probes, the index catch-up at start).
    _DELEGATED = frozenset({"gallery", "store", "settings", "warm_up", "refresh", "reader"})

    def __init__(self, category: Category, inner: Any, endpoint: AbisEndpoint):
        self.category = category
        self.inner = inner
        self.endpoint = endpoint
        self.codec: Codec = codec(category)
        self.breaker = CircuitBreaker(endpoint.breaker_failures, endpoint.breaker_reset_seconds)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name in ExternalMatcher._DELEGATED:
            return getattr(self.__dict__["inner"], name)
        raise AttributeError(name)

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    **client_options(self.endpoint, timeout=self.endpoint.deadline_ms / 1000)
                )
            return self._client

    def _store(self) -> tuple[Table, Engine]:
        return self.codec.store_of(self.inner)

    # --- the system of record ---------------------------------------------------------

    def ingester(self) -> ExternalIngester:
        return ExternalIngester(self, self.inner.ingester())

    def enroll(self, sample: bytes, **record: Any) -> str:
        raise InvalidRecord(
            f"the {self.category.value} category is served by an ABIS: records enter through"
            " the national-systems interface, which queues them for it (docs/abis.md)"
        )

    def delete(self, reference: str, *, reason: str) -> None:
        _, engine = self._store()
        with engine.begin() as conn:
            self.ingester().erase(conn, reference, reason)

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "abis": self.endpoint.url,
            "abis_breaker": self.breaker.state,
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.inner.close()

    # --- searches -------------------------------------------------------------------

    def search(
        self,
        probe: Probe,
        *,
        max_candidates: int,
        exposure: Exposure,
        search_type: str | None = None,
    ) -> MatchResult:
        subjects = (
            None if exposure.subjects == frozenset(SubjectCategory) else sorted(exposure.subjects)
        )
        # The ABIS knows no dates of birth: the node's age rule is applied here, to a list
        # a little longer than wanted. Naming every withheld reference in each request
        # cost a scan of the node's records and a request of thousands of references on
        # every search (bench/abis.py); it is done only when the short way comes back short.
        asked = min(MAX_ASKED, max_candidates + max(OVERFETCH, max_candidates // 2))
        request = IdentifyRequest(
            probe=probe, search_type=search_type, max_candidates=asked, subjects=subjects
        )
        answer = IdentifyResponse.model_validate(self._identify(request))
        candidates = self._candidates(answer, exposure)
        if len(candidates) < max_candidates and len(answer.candidates) == asked:
            withheld = self._withheld(exposure)
            if withheld:
                request = IdentifyRequest(
                    probe=probe,
                    search_type=search_type,
                    max_candidates=max_candidates,
                    subjects=subjects,
                    exclude=withheld,
                )
                answer = IdentifyResponse.model_validate(self._identify(request))
                candidates = self._candidates(answer, exposure)
        return MatchResult(
            candidates=candidates[:max_candidates],
            gallery_size=answer.gallery_size,
            probe_quality=answer.probe_quality,
        )

    def _identify(self, request: IdentifyRequest) -> Any:
        self.breaker.before()
        deadline = self.endpoint.deadline_ms / 1000
        try:
            response = self.client.post(
                "/identify", content=request.model_dump_json(), timeout=deadline
            )
        except httpx.TimeoutException:
            reason = f"no answer within {self.endpoint.deadline_ms} ms"
            self.breaker.failure(reason)
            raise MatcherTimeout(f"the {self.category.value} ABIS gave {reason}") from None
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            self.breaker.failure(reason)
            raise MatcherUnavailable(
                f"the {self.category.value} ABIS could not be reached ({reason})"
            ) from None
        if response.status_code == 200:
            try:
                body = response.json()
                IdentifyResponse.model_validate(body)
            except (ValueError, ValidationError) as exc:
                reason = f"an answer that does not follow the contract ({str(exc)[:200]})"
                self.breaker.failure(reason)
                raise MatcherUnavailable(f"the {self.category.value} ABIS sent {reason}") from None
            self.breaker.success()
            return body
        error = error_of(response)
        if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 429):
            # The probe itself (no face found, an unreadable profile): the ABIS works.
            self.breaker.success()
            raise BadInput(f"the {self.category.value} ABIS refused the probe: {error.message}")
        reason = f"HTTP {response.status_code} {error.code}: {error.message}"[:300]
        self.breaker.failure(reason)
        raise MatcherUnavailable(f"the {self.category.value} ABIS failed ({reason})")

    def _withheld(self, exposure: Exposure) -> list[str]:
        """References of records the exposure's subjects allow but its age rule does not
        (the ABIS knows no dates of birth)."""
        latest = exposure.latest_birth_date(dt.date.today())
        if latest is None:
            return []
        table, engine = self._store()
        too_young = table.c.date_of_birth > latest
        if not exposure.unknown_age_exposed:
            too_young = or_(too_young, table.c.date_of_birth.is_(None))
        query = (
            select(table.c.reference)
            .where(table.c.subject_category.in_([s.value for s in exposure.subjects]))
            .where(too_young)
            .limit(MAX_EXCLUDED)
        )
        with engine.connect() as conn:
            return [str(r) for r in conn.execute(query).scalars()]

    def _candidates(self, answer: IdentifyResponse, exposure: Exposure) -> list[Candidate]:
        """The ABIS's candidates as the node sends them: only records the node still
        holds and its exposure rules allow (the ABIS may lag behind an erasure), with
        the provenance the node keeps."""
        if not answer.candidates:
            return []
        table, engine = self._store()
        references = [c.reference for c in answer.candidates]
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    table.c.reference,
                    table.c.subject_category,
                    table.c.date_of_birth,
                    table.c.provenance,
                    table.c.synthetic,
                ).where(table.c.reference.in_(references))
            ).all()
        held = {str(r.reference): r for r in rows}
        candidates: list[Candidate] = []
        for found in answer.candidates:
            row = held.get(found.reference)
            if row is None:
                continue
            if not exposure.allows(SubjectCategory(row.subject_category), row.date_of_birth):
                continue
            candidates.append(
                Candidate(
                    rank=len(candidates) + 1,
                    reference=found.reference,
                    score=found.score,
                    distance=1.0 - found.score if found.distance is None else found.distance,
                    false_match_rate=found.false_match_rate,
                    false_match_words=found.false_match_words,
                    provenance=str(row.provenance)[:200],
                    synthetic=bool(row.synthetic),
                    quality=found.quality,
                    image=None if found.image is None else base64.b64encode(found.image),
                    details=found.details,
                )
            )
        return candidates


class ExternalBatchMatcher(ExternalMatcher):
    """An ABIS-served category that answers batched comparisons (DNA, Art 7): each
    profile of the batch is one identify request."""

    def search_batch(
        self, probes: list[Probe], *, max_candidates: int, exposure: Exposure
    ) -> list[MatchResult]:
        return [
            self.search(probe, max_candidates=max_candidates, exposure=exposure) for probe in probes
        ]


class ExternalIngester:
    """The built-in ingester, with each insert and erasure queued for the ABIS in the
    same transaction (so the ABIS gets exactly what the system of record holds)."""

    def __init__(self, matcher: ExternalMatcher, inner: Ingester):
        self.matcher = matcher
        self.inner = inner

    def preparer(self) -> Preparer:
        return self.inner.preparer()

    def write(self, conn: Connection, prepared: Sequence[Any]) -> list[str]:
        references = self.inner.write(conn, prepared)
        if not references:
            return references
        table, _ = self.matcher._store()
        subjects = dict(
            conn.execute(
                select(table.c.reference, table.c.subject_category).where(
                    table.c.reference.in_(references)
                )
            ).all()
        )
        category = self.matcher.category
        for reference, record in zip(references, prepared, strict=True):
            insert = InsertRecord(
                reference=reference,
                subject=SubjectCategory(subjects[reference]),
                sample=self.matcher.codec.to_sample(record),
            )
            _queue(conn, ABIS_INSERT, category, insert)
        return references

    def erase(self, conn: Connection, reference: str, reason: str) -> None:
        self.inner.erase(conn, reference, reason)
        _queue(
            conn, ABIS_DELETE, self.matcher.category, _Deletion(reference=reference, reason=reason)
        )

    def refresh(self) -> None:
        self.inner.refresh()


class _Deletion(BaseModel):
    reference: str
    reason: str


def _queue(conn: Connection, kind: str, category: Category, body: BaseModel) -> None:
    enqueue(conn, str(uuid.uuid4()), kind, category.value, body.model_dump(mode="json"))


def make_external(category: Category, inner: Any, endpoint: AbisEndpoint) -> ExternalMatcher:
    """The ABIS-served matcher of a category, batch-capable where the built-in one is."""
    from prum.categories.interface import BatchMatcher

    if isinstance(inner, BatchMatcher):
        return ExternalBatchMatcher(category, inner, endpoint)
    return ExternalMatcher(category, inner, endpoint)
