"""Our own matchers behind the ABIS contract (``prum abis serve``): the work, as plain
functions; prum.node.abis.server puts them on HTTP.

The ABIS keeps its own store (SQLite by default, any database URL): one built-in
category matcher whose records carry the node's reference as their source key, so an
insert of a reference it holds changes nothing and a delete of one it does not hold is
``absent``. Candidates go back under the node's references.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from prum.categories.interface import Exposure, SubjectCategory
from prum.config import Settings
from prum.errors import BadInput, PrumError
from prum.federation.messages import Category
from prum.node.abis.codecs import codec
from prum.node.abis.contract import (
    AbisCandidate,
    DeleteRequest,
    DeleteResponse,
    Health,
    IdentifyRequest,
    IdentifyResponse,
    InsertRequest,
    InsertResponse,
    RecordOutcome,
)
from prum.node.categories import make_matcher

MAX_WANTED = 100  # candidates a built-in matcher returns at most (face: HARD_MAX_CANDIDATES)


class AbisService:
    """One category's matcher over its own store."""

    def __init__(self, category: Category, data_dir: Path, database_url: str = ""):
        self.category = category
        self.codec = codec(category)
        settings = Settings(data_dir=data_dir, database_url=database_url, country="XA")
        # The node applies its own candidate cap: the ABIS answers as many as asked
        # (a face gallery's configured cap, 10 by default, would cut the list before
        # the excluded references are taken out).
        face = settings.face.model_copy(update={"max_candidates": MAX_WANTED})
        self.settings = settings.model_copy(update={"face": face})
        data_dir.mkdir(parents=True, exist_ok=True)
        self.matcher: Any = make_matcher(category, self.settings)
        self.table, self.engine = self.codec.store_of(self.matcher)
        self._write = threading.Lock()  # one writer: inserts and deletes in order

    def warm_up(self) -> None:
        warm_up = getattr(self.matcher, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def close(self) -> None:
        self.matcher.close()

    def _held(self, references: list[str]) -> dict[str, str]:
        """node reference -> this store's reference, for those it holds."""
        key = self.table.c.source_key
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(key, self.table.c.reference).where(key.in_(references))
            ).all()
        return {str(k): str(r) for k, r in rows}

    def insert(self, request: InsertRequest) -> InsertResponse:
        """Hold each record once; a record that cannot be stored is ``refused`` with why
        (the others still go in)."""
        ingester = self.matcher.ingester()
        results: list[RecordOutcome] = []
        with self._write:
            held = self._held([r.reference for r in request.records])
            todo = []
            for record in request.records:
                if record.reference in held:
                    results.append(RecordOutcome(reference=record.reference, outcome="exists"))
                    continue
                try:
                    prepared = self.codec.from_sample(
                        self.matcher, record.sample, record.subject, record.reference
                    )
                except PrumError as exc:
                    results.append(
                        RecordOutcome(
                            reference=record.reference, outcome="refused", message=exc.message
                        )
                    )
                    continue
                todo.append((record.reference, prepared))
                held[record.reference] = ""  # a reference twice in one request: once
                results.append(RecordOutcome(reference=record.reference, outcome="inserted"))
            if todo:
                with self.engine.begin() as conn:
                    ingester.write(conn, [p for _, p in todo])
                ingester.refresh()
        return InsertResponse(results=results)

    def delete(self, request: DeleteRequest) -> DeleteResponse:
        ingester = self.matcher.ingester()
        results: list[RecordOutcome] = []
        with self._write:
            held = self._held(list(request.references))
            with self.engine.begin() as conn:
                for reference in request.references:
                    internal = held.pop(reference, None)
                    if internal is None:
                        results.append(RecordOutcome(reference=reference, outcome="absent"))
                        continue
                    ingester.erase(conn, internal, request.reason)
                    results.append(RecordOutcome(reference=reference, outcome="deleted"))
            ingester.refresh()
        return DeleteResponse(results=results)

    def identify(self, request: IdentifyRequest) -> IdentifyResponse:
        """The built-in matcher's candidates under the node's references, without the
        excluded ones, within the target FPIR."""
        subjects = (
            frozenset(SubjectCategory) if request.subjects is None else frozenset(request.subjects)
        )
        excluded = set(request.exclude)
        # Ask for enough to fill the list after the exclusions, within what a matcher
        # answers at most (the contract's 100): with more excluded references ranked
        # above, the list comes back shorter (docs/abis.md, limits).
        wanted = min(request.max_candidates + len(excluded), MAX_WANTED)
        result = self.matcher.search(
            request.probe,
            max_candidates=wanted,
            exposure=Exposure(subjects=subjects),
            search_type=request.search_type,
        )
        key = self.table.c.source_key
        internal = [c.reference for c in result.candidates]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(self.table.c.reference, key).where(self.table.c.reference.in_(internal))
            ).all()
        theirs = {str(r): str(k) for r, k in rows if k is not None}
        candidates: list[AbisCandidate] = []
        for c in result.candidates:
            reference = theirs.get(c.reference)
            if reference is None or reference in excluded:
                continue
            if request.target_fpir is not None and (
                c.false_match_rate is None
                or c.false_match_rate * result.gallery_size > request.target_fpir
            ):
                continue
            sent = c.model_dump(
                mode="json",
                include={
                    "score",
                    "distance",
                    "false_match_rate",
                    "false_match_words",
                    "quality",
                    "image",
                    "details",
                },
            )
            candidates.append(AbisCandidate.model_validate({**sent, "reference": reference}))
            if len(candidates) == request.max_candidates:
                break
        return IdentifyResponse(
            candidates=candidates,
            gallery_size=result.gallery_size,
            probe_quality=result.probe_quality,
        )

    def health(self) -> Health:
        with self.engine.connect() as conn:
            from sqlalchemy import func

            count = conn.execute(select(func.count()).select_from(self.table)).scalar_one()
        try:
            described = self.matcher.describe()
        except PrumError:
            described = {}
        return Health(
            category=self.category.value,  # type: ignore[arg-type]
            records=int(count),
            matcher={k: v for k, v in described.items() if _plain(v)},
        )


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


__all__ = ["AbisService", "BadInput"]
