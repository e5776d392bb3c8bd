"""The check registry, the context checks share, and the runner.

A check is a function of the context that returns what it saw when the node conforms,
raises :class:`Failed` with what it saw when it does not, and :class:`NotApplicable`
with the reason when it cannot be made (a category the node does not offer, a figure
the declaration does not give, a decision only the node's approver can take). Each
property of the contract is judged by one check only, so one defect fails one check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prum.conformance.declaration import ANSWERED_AT_ONCE, Declaration
from prum.conformance.wire import RouterListener, Wire, country_reply
from prum.errors import PrumError
from prum.federation.messages import Category, CountryReply, new_message_id
from prum.federation.security.signing import format_time

OFFENCE = "1500 00"  # an ECRIS offence category (prum.federation.offences)
# A penalty above any threshold a node may set (the wire allows up to 100 years).
SEVERE_PENALTY_MONTHS = 240


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not applicable"


class Failed(Exception):
    """The node does not conform: what was seen."""


class NotApplicable(Exception):
    """The check cannot be made here: why."""


@dataclass(frozen=True)
class Check:
    id: str
    rule: str  # where the rule is written: docs/protocol.md section or the Regulation
    rationale: str  # one line: what the rule protects
    run: Callable[[Context], str]


@dataclass(frozen=True)
class Result:
    id: str
    rule: str
    rationale: str
    outcome: Outcome
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "rule": self.rule,
            "rationale": self.rationale,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }


REGISTRY: list[Check] = []


def check(check_id: str, rule: str, rationale: str) -> Callable[[Callable[[Context], str]], Any]:
    """Register a check (run in the order of registration)."""

    def register(run: Callable[[Context], str]) -> Callable[[Context], str]:
        if any(c.id == check_id for c in REGISTRY):
            raise ValueError(f"duplicate check id {check_id}")  # a programming error
        REGISTRY.append(Check(check_id, rule, rationale, run))
        return run

    return register


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise Failed(detail)


@dataclass
class Context:
    """What the checks share: the wire, the declaration, the kit's delivery endpoint and
    what earlier checks found (a hit search's answer, the step-2 requests sent)."""

    wire: Wire
    declaration: Declaration
    listener: RouterListener | None = None
    # Seconds to wait for the tested node's approver to act; None: step-2 decisions are
    # not applicable (nobody acts at the tested node during this run).
    await_decisions: float | None = None
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def party(self) -> str:
        return self.declaration.party

    def offered(self) -> list[Category]:
        return list(self.declaration.categories)

    def search_body(self, category: Category, **fields: Any) -> dict[str, Any]:
        """A valid SearchRequest body from the kit's requester to the tested node (as
        JSON), with ``fields`` replacing its defaults (not validated: a check may want
        an invalid one)."""
        probe = fields.pop("probe", None) or self.declaration.any_probe(category)
        if probe is None:
            raise NotApplicable(
                f"the kit has no {category.value} probe of its own: declare a hit_probe"
            )
        requester = self.wire.requester
        body: dict[str, Any] = {
            "version": "1",
            "message_id": new_message_id(),
            "issued_at": format_time(dt.datetime.now(dt.UTC)),
            "kind": "search_request",
            "request_number": f"CONFORMANCE-{new_message_id()[:8]}",
            "requesting_party": requester,
            "requesting_user": "conformance-kit",
            "category": category.value,
            "purpose": "investigation",
            "offence": OFFENCE,
            "max_penalty_months": SEVERE_PENALTY_MONTHS,
            "case_reference": "CONFORMANCE-1",
            "targets": [self.party],
            "mode": "search",
            "max_candidates": 10,
            "deadline_ms": 10_000,
            "probe": probe.model_dump(mode="json", exclude_none=True),
        }
        body.update(fields)
        return body

    def search(self, body: dict[str, Any], as_party: str | None = None) -> Any:
        """Sign ``body`` as the requester (or ``as_party``) and post it to /v1/search."""
        return self.wire.post(
            "/v1/search", self.wire.sign(body, as_party or body["requesting_party"])
        )

    def first_category(self, *, two_step: bool = False, hit: bool = False) -> Category:
        for category in self.offered():
            if two_step and category in ANSWERED_AT_ONCE:
                continue
            probe = (
                self.declaration.probe(category) if hit else self.declaration.any_probe(category)
            )
            if probe is not None:
                return category
        wanted = "a two-step category (not vehicles) " if two_step else ""
        raise NotApplicable(
            f"the declaration names no {wanted}category with "
            + ("a hit_probe" if hit else "a probe the kit can send")
        )

    def hit(self) -> tuple[dict[str, Any], CountryReply]:
        """A search with a declared hit probe of a two-step category, made once: its
        request body and the node's answer (step 2 asks for its first candidate)."""
        if "hit" not in self.memo:
            category = self.first_category(two_step=True, hit=True)
            body = self.search_body(category, max_candidates=100)
            try:
                reply = country_reply(self.search(body))
            except PrumError as exc:
                raise NotApplicable(f"the hit search was not answered: {exc.message}") from None
            if not reply.candidates:
                raise NotApplicable(
                    f"the declared {category.value} hit_probe found nothing ({reply.status.value})"
                )
            self.memo["hit"] = (body, reply)
        return self.memo["hit"]  # type: ignore[no-any-return]
