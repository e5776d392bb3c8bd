"""Precision and recall of the records matcher on labelled synthetic queries.

A *mated* query is a corrupted variant (prum.categories.records.synthetic.corrupt) of a person
in the index: it should find that person. An *unmated* query is a variant of a
person who is not in the index: every hit it gets is false. At a threshold,

- recall = mated queries whose person is among the hits / mated queries;
- precision = true hits / all hits (of mated and unmated queries; another person
  returned for a mated query, a namesake for instance, is a false hit).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from prum.categories.records.encode import Encoding, make_query
from prum.categories.records.index import RecordsIndex
from prum.categories.records.keys import FederationKey
from prum.categories.records.person import Person
from prum.categories.records.synthetic import PersonGenerator, Variant, corrupt


@dataclass(frozen=True)
class LabelledQuery:
    truth: int | None  # the record id of the person varied, None when not in the index
    variant: Variant


@dataclass
class Evaluation:
    threshold: float
    mated: int
    unmated: int
    true_hits: int = 0
    false_hits: int = 0
    blocking_misses: int = 0  # mated queries whose person no blocking key reached
    missed_by: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        return self.true_hits / self.mated if self.mated else 0.0

    @property
    def precision(self) -> float:
        hits = self.true_hits + self.false_hits
        return self.true_hits / hits if hits else 1.0


def labelled_queries(
    people: list[Person], *, mated: int, unmated: int, seed: int
) -> list[LabelledQuery]:
    """``mated`` variants of random indexed people (record id = position + 1) and
    ``unmated`` variants of fresh people drawn with another seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(mated):
        i = rng.randrange(len(people))
        out.append(LabelledQuery(i + 1, corrupt(people[i], rng)))
    strangers = PersonGenerator(seed + 1_000_003).people(unmated)
    out += [LabelledQuery(None, corrupt(p, rng)) for p in strangers]
    return out


def evaluate(
    index: RecordsIndex,
    key: FederationKey,
    queries: list[LabelledQuery],
    thresholds: list[float],
    *,
    limit: int = 10,
) -> list[Evaluation]:
    """Precision and recall at each threshold (hits capped at ``limit`` per query)."""
    mated = sum(q.truth is not None for q in queries)
    results = [Evaluation(t, mated, len(queries) - mated) for t in thresholds]
    lowest = min(thresholds)
    for q in queries:
        encoding = Encoding.from_query(make_query(q.variant.person, key))
        rows = index.candidates(encoding)
        if q.truth is not None and not np.any(index.record_ids[rows] == q.truth):
            for r in results:
                r.blocking_misses += 1
        hits = index.search(encoding, threshold=lowest, limit=limit)
        for r in results:
            found = [h.record_id for h in hits if h.quality >= r.threshold]
            true = q.truth is not None and q.truth in found
            r.true_hits += true
            r.false_hits += len(found) - true
            if q.truth is not None and not true:
                r.missed_by.update(q.variant.corruptions)
    return results
