"""The running node: its configuration, database, keys, logs and matchers."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prum.audit.events import AuditEvent
from prum.audit.log import AuditLog
from prum.audit.stats import Statistics
from prum.categories.interface import CategoryMatcher
from prum.db import make_engine, upgrade
from prum.errors import BadInput, CategoryNotOffered
from prum.federation.messages import Category, Probe
from prum.federation.security.signing import AuditSigner, ReplayGuard, Signer, Verifier
from prum.node.categories import make_matcher
from prum.node.config import NodeConfig

MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Node:
    """Everything a node's services share; one per process."""

    def __init__(self, config: NodeConfig):
        self.config = config
        self.party = config.party
        self.url = config.database()
        self.engine = make_engine(self.url)
        upgrade(self.engine, MIGRATIONS)
        self.signer = Signer(config.pki_dir, config.party)
        self.verifier = Verifier(config.pki_dir)
        self.replay = ReplayGuard()
        self.statistics = Statistics(self.url)
        self.audit = AuditLog(
            self.url,
            party=config.party,
            signer=AuditSigner(self.signer),
            statistics=self.statistics,
        )
        self._matchers: dict[Category, CategoryMatcher] = {}

    def matcher(self, category: Category) -> CategoryMatcher:
        """This node's matcher of a category it offers (built on first use)."""
        if category not in self.config.categories:
            raise CategoryNotOffered(f"{self.party} does not offer the {category.value} category")
        if category not in self._matchers:
            self._matchers[category] = make_matcher(
                category, self.config.settings(), self.config.categories[category].abis
            )
        return self._matchers[category]

    def warm_up(self) -> None:
        """Open every offered category's matcher and load the face models before the
        node serves (the first search would otherwise spend seconds loading them)."""
        for category in self.config.categories:
            warm_up = getattr(self.matcher(category), "warm_up", None)
            if warm_up is not None:
                warm_up()
        self.face_pipeline.warm_up()

    @cached_property
    def face_pipeline(self) -> Any:
        """The face pipeline that checks outgoing probes (also for nodes with no faces);
        the face gallery's own where there is one, so the models load once."""
        from prum.categories.face.pipeline import FacePipeline

        if Category.FACE in self.config.categories:
            return self.matcher(Category.FACE).gallery.pipeline  # type: ignore[attr-defined]
        return FacePipeline(self.config.face)

    def records_query(self, person: dict[str, Any]) -> Probe:
        """A police-records probe from clear biographical data: pseudonymised here with
        the federation's records key, so no clear text leaves this node."""
        from prum.categories.records.encode import make_query
        from prum.categories.records.keys import load_key_file
        from prum.categories.records.person import person_from_dict

        key = load_key_file(self.config.records_key_path())
        return Probe(format="records_query", records=make_query(person_from_dict(person), key))

    def log(self, **fields: Any) -> None:
        """Append an audit event (``at`` defaults to now)."""
        fields.setdefault("at", utcnow())
        self.audit.append(AuditEvent(**fields))

    def close(self) -> None:
        for matcher in self._matchers.values():
            matcher.close()
        self.audit.close()
        self.statistics.close()
        self.engine.dispose()


def validated(model: Any, data: Any) -> Any:
    """``model.model_validate(data)`` with validation errors as BadInput."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BadInput(f"invalid {model.__name__}: {problems}") from None
