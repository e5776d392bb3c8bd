"""Runs the registered checks: importing the check modules registers them (each module
imports prum.conformance.checks, so the registry itself imports none of them)."""

from __future__ import annotations

import traceback

from prum.conformance import access, envelope, search, step2  # noqa: F401 - registers
from prum.conformance.checks import (
    REGISTRY,
    Context,
    Failed,
    NotApplicable,
    Outcome,
    Result,
)
from prum.errors import PrumError


def run_checks(context: Context, only: set[str] | None = None) -> list[Result]:
    """Run the registered checks (those whose id starts with one of ``only``)."""
    results = []
    for item in REGISTRY:
        if only and not any(item.id == o or item.id.startswith(o + ".") for o in only):
            continue
        try:
            outcome, detail = Outcome.PASS, item.run(context)
        except Failed as exc:
            outcome, detail = Outcome.FAIL, str(exc)
        except NotApplicable as exc:
            outcome, detail = Outcome.NOT_APPLICABLE, str(exc)
        except PrumError as exc:
            outcome, detail = Outcome.FAIL, exc.message
        except Exception as exc:  # a check must report, never stop the run
            where = traceback.extract_tb(exc.__traceback__)[-1]
            outcome = Outcome.FAIL
            detail = f"the check could not complete: {type(exc).__name__}: {exc} ({where.name})"
        results.append(Result(item.id, item.rule, item.rationale, outcome, detail[:500]))
    return results
