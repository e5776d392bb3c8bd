"""Calibrated false-match rates: what a comparison distance means to an examiner.

A bare distance (0.53) says little. What an examiner needs is how often an unrelated
person - an *impostor* - scores at least that close: the false-match rate (FMR) at that
distance, "about 1 in 40,000 impostors score this high". This module estimates it from
a sample of impostor distances (comparisons of templates of different people, made by
the same model), kept with the gallery. docs/calibration.md describes the method.

* Where at least ``MIN_OBSERVED`` impostors fall at or below the distance, the FMR is
  the empirical fraction.
* Further down the lower tail, where the sample has few or no impostors, the FMR comes
  from a normal distribution fitted to the lowest part of the sample (``fit_normal_tail``)
  and joined to the empirical rate at the ``MIN_OBSERVED``-th smallest distance.
* Alongside the estimate, ``fmr_upper_at`` gives the honest empirical bound (one-sided
  Clopper-Pearson, 95 %): with none of N impostors at or below d, about 3/N.

Distances are Euclidean (dlib ResNet: not unit-normalised, impostors around 0.9);
lower is more similar. A calibration belongs to one embedding model: templates of
another model make it meaningless (``require_model``).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from prum.errors import BadInput, InvalidCalibration, InvalidLabelledSet, ModelMismatch

# Fewest impostor comparisons a calibration accepts: below this not even the bulk of the
# distribution is known.
MIN_IMPOSTORS = 50
# An empirical rate rests on at least this many observed impostors (relative standard
# error about 1/sqrt(10), 32 %); below that count the tail model speaks.
MIN_OBSERVED = 10
# The tail model is fitted to the lowest 1 % of the impostor distances, and to at least
# 100 of them: far enough into the tail to follow its own slope, enough points to be
# stable. At most 500 order statistics (log-spaced in rank) enter the regression.
TAIL_FRACTION = 0.01
MIN_TAIL_POINTS = 100
MAX_FIT_POINTS = 500
# Serialised form: the lowest EXACT_KNOTS distances kept exactly (the tail, where the
# FMR matters), BULK_KNOTS order statistics of the rest (FMR error there < 1/BULK_KNOTS).
EXACT_KNOTS = 50_000
BULK_KNOTS = 50_000
# Confidence of the empirical upper bound shown with the estimate.
CONFIDENCE = 0.95
# Words stop at one in a billion: a tail fitted on at most millions of comparisons
# cannot support a finer claim.
WORDS_FLOOR = 1e-9
# Sampling of impostor pairs: pairs drawn per round, and enumeration of all pairs when
# there are at most this many times max_pairs of them (sampling would repeat pairs).
PAIR_CHUNK = 1 << 16
ENUMERATE_FACTOR = 2

# Distances of row pairs (a[k], b[k]) of two (n, dim) arrays.
PairDistance = Callable[[NDArray[Any], NDArray[Any]], NDArray[np.float64]]

_MAGIC = b"PRUMIMPD"
_VERSION = 1
_HEAD = struct.Struct("<8sHII")  # magic, version, crc32 of the rest, metadata length
_NORMAL = NormalDist()
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def similarity(distance: float) -> float:
    """A 0-1 score shown with a candidate: ``1 - distance / 2``, clipped to [0, 1].

    Monotone and model-agnostic: 2 is the largest distance between unit vectors, so for
    a normalised model the whole range maps onto [0, 1]; dlib's decision distance 0.6
    shows as 0.70. It is *not* a probability: the false-match rate is.
    """
    return min(1.0, max(0.0, 1.0 - float(distance) / 2.0))


@dataclass(frozen=True)
class TailFit:
    """The normal lower-tail model: FMR(d) = anchor_count / n * Phi(z(d)) / Phi(z(anchor)).

    ``mu``, ``sigma``: the normal fitted to the lowest ``fitted_points`` distances;
    ``anchor_distance``: where the model hands over to the empirical rate (the
    ``MIN_OBSERVED``-th smallest impostor distance), ``anchor_count`` impostors at or
    below it.
    """

    mu: float
    sigma: float
    anchor_distance: float
    anchor_count: int
    fitted_points: int


def fit_normal_tail(lowest: NDArray[np.floating[Any]], comparisons: int) -> tuple[float, float]:
    """Fit ``N(mu, sigma)`` to the lower tail by probit-plot regression.

    ``lowest`` holds the m smallest of ``comparisons`` impostor distances, sorted. The
    r-th of them (from 0) sits at the Hazen plotting position p = (r + 0.5) / n; under a
    normal tail, d_r = mu + sigma * Phi^-1(p), a straight line fitted by least squares
    (the normal probability plot, e.g. NIST/SEMATECH e-Handbook of Statistical Methods,
    1.3.3.21). Ranks are log-spaced so the extreme tail weighs as much as its shoulder.
    Only the tail is fitted, not the whole distribution, so a tail heavier than the
    bulk (look-alikes, relatives) shows as a larger sigma instead of being averaged away.
    """
    m = len(lowest)
    ranks = np.unique(np.geomspace(1, m, min(m, MAX_FIT_POINTS)).round().astype(np.int64) - 1)
    z = np.array([_NORMAL.inv_cdf((r + 0.5) / comparisons) for r in ranks])
    d = np.asarray(lowest, dtype=np.float64)[ranks]
    sigma = float(np.polyfit(z, d, 1)[0]) if len(ranks) > 1 else 0.0
    if not math.isfinite(sigma) or sigma <= 1e-9:
        # All tail distances (nearly) equal: a very steep tail, below which nothing falls.
        sigma = max(float(np.std(d)), 1e-6)
    mu = float(np.mean(d) - sigma * np.mean(z))
    return mu, sigma


def _log_normal_cdf(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """log Phi(z), exact to z = -30 and by the asymptotic (Mills ratio) series beyond."""
    out = np.empty_like(z)
    far = z < -30.0
    out[~far] = np.log(0.5 * _erfc(-z[~far] / math.sqrt(2.0)))
    zf = z[far]
    out[far] = (
        -0.5 * zf**2 - 0.5 * math.log(2 * math.pi) - np.log(-zf) + np.log1p(-(zf**-2) + 3 * zf**-4)
    )
    return out


def upper_bound(observed: int, comparisons: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of a rate after ``observed`` of ``comparisons``.

    Exact (Clopper-Pearson) up to 100 observations - with none, 1 - (1 - c)^(1/N), about
    3/N at 95 % (the "rule of three") - and the Wilson score bound beyond.
    """
    k, n, alpha = observed, comparisons, 1.0 - confidence
    if k >= n:
        return 1.0
    if k == 0:
        return 1.0 - float(alpha ** (1.0 / n))
    if k > 100:
        return _wilson(k, n, confidence, +1)
    # P(X <= k) falls as p rises: the bound is the p where it reaches alpha.
    return _solve(lambda p: _binomial_cdf(k, n, p) - alpha, k / n, 1.0)


def lower_bound(observed: int, comparisons: int, confidence: float = CONFIDENCE) -> float:
    """One-sided lower confidence bound, as ``upper_bound`` (0 after no observation)."""
    k, n, alpha = observed, comparisons, 1.0 - confidence
    if k == 0:
        return 0.0
    if k > 100:
        return _wilson(k, n, confidence, -1)
    # P(X >= k) = 1 - P(X <= k - 1) rises with p: the bound is where it reaches alpha.
    return _solve(lambda p: _binomial_cdf(k - 1, n, p) - (1.0 - alpha), 0.0, k / n)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in logs (k small, n up to billions)."""
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
        for j in range(k + 1)
    ]
    top = max(terms)
    return math.exp(top) * sum(math.exp(t - top) for t in terms)


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of a decreasing ``f`` between lo and hi, by bisection (relative 1e-12)."""
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def _wilson(k: int, n: int, confidence: float, side: int) -> float:
    z = _NORMAL.inv_cdf(confidence)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, max(0.0, (centre + side * half) / (1 + z * z / n)))


def _one_in(rate: float) -> str:
    """'1 in 40,000': the reciprocal to two significant figures."""
    x = 1.0 / rate
    step = 10 ** max(0, math.floor(math.log10(x)) - 1)
    return f"1 in {round(x / step) * step:,}"


def about_words(rate: float) -> str:
    """'about 1 in 40,000 of' style words for a rate (face/calibrated.py uses them)."""
    return _about(rate)


def _about(rate: float) -> str:
    if rate < WORDS_FLOOR:
        return f"fewer than {_one_in(WORDS_FLOOR)}"
    if rate >= 0.1:
        return f"about {100 * rate:.0f}% of"
    return f"about {_one_in(rate)}"


class ImpostorDistribution:
    """Distances of impostor comparisons, and the false-match rate they imply.

    Build with ``from_distances`` or ``from_templates``; keep with ``to_bytes``.
    """

    def __init__(
        self,
        *,
        values: NDArray[np.float32],
        ranks: NDArray[np.int64],
        comparisons: int,
        tail: TailFit,
        model_id: str,
        source: str,
        created: datetime,
    ) -> None:
        # values[i] is the ranks[i]-th smallest (from 0) of `comparisons` impostor distances.
        self._values = values.astype(np.float64)
        self._ranks = ranks
        self.comparisons = comparisons
        self.tail = tail
        self.model_id = model_id
        self.source = source
        self.created = created
        # Below the anchor at most MIN_OBSERVED - 1 impostors were seen: the tail model is
        # kept within the confidence interval of what was seen (a model contradicted by
        # the data yields to it, in both directions).
        seen = range(MIN_OBSERVED)
        self._lower = np.array([lower_bound(k, comparisons) for k in seen])
        self._upper = np.array([upper_bound(k, comparisons) for k in seen])

    # --- construction --------------------------------------------------------------

    @classmethod
    def from_distances(
        cls, distances: ArrayLike, source: str, model_id: str
    ) -> ImpostorDistribution:
        """From impostor distances already computed (comparisons of different people)."""
        d = np.asarray(distances, dtype=np.float64).ravel()
        if d.size < MIN_IMPOSTORS:
            raise InvalidLabelledSet(
                f"a calibration needs at least {MIN_IMPOSTORS} impostor comparisons; got {d.size}",
                comparisons=int(d.size),
            )
        if not np.all(np.isfinite(d)):
            raise InvalidLabelledSet("impostor distances must be finite numbers (NaN or inf found)")
        s = np.sort(d.astype(np.float32))
        n = int(s.size)
        exact = min(n, EXACT_KNOTS)
        ranks = np.arange(exact, dtype=np.int64)
        if n > exact:
            bulk = np.linspace(exact, n - 1, min(n - exact, BULK_KNOTS)).round().astype(np.int64)
            ranks = np.concatenate([ranks, np.unique(bulk)])
        fitted = min(exact, max(MIN_TAIL_POINTS, math.ceil(TAIL_FRACTION * n)))
        mu, sigma = fit_normal_tail(s[:fitted], n)
        anchor = float(s[MIN_OBSERVED - 1])
        tail = TailFit(
            mu=mu,
            sigma=sigma,
            anchor_distance=anchor,
            anchor_count=int(np.searchsorted(s, np.float32(anchor), side="right")),
            fitted_points=fitted,
        )
        return cls(
            values=s[ranks],
            ranks=ranks,
            comparisons=n,
            tail=tail,
            model_id=model_id,
            source=source,
            created=datetime.now(UTC),
        )

    @classmethod
    def from_templates(
        cls,
        vectors: ArrayLike,
        identities: Sequence[str] | None,
        *,
        max_pairs: int = 1_000_000,
        seed: int = 0,
        model_id: str,
        source: str,
        pair_distance: PairDistance | None = None,
    ) -> ImpostorDistribution:
        """From templates: distances of up to ``max_pairs`` distinct pairs of different people.

        ``pair_distance(a, b)`` gives the distance of each row pair (default: Euclidean);
        fused templates pass their own (face/fusion.py).

        ``identities[i]`` names the person of ``vectors[i]``; pairs of the same identity
        are never drawn. ``None`` treats every record as its own person: in a real
        gallery a few records are unknown duplicates of one person, so a few genuine
        pairs slip in - a small contamination that makes the FMR pessimistic, not
        optimistic. When the set has at most ``2 * max_pairs`` impostor pairs they are
        all enumerated (then subsampled); otherwise pairs are drawn uniformly without
        repetition, in chunks, so a million vectors take seconds and little memory.
        """
        x, codes = labelled_vectors(vectors, identities)
        if max_pairs < MIN_IMPOSTORS:
            raise InvalidLabelledSet(f"max_pairs must be at least {MIN_IMPOSTORS}; got {max_pairs}")
        rng = np.random.default_rng(seed)
        total = impostor_pair_count(codes)
        if total < MIN_IMPOSTORS:
            raise InvalidLabelledSet(
                f"the set gives {total} impostor pairs; a calibration needs at least"
                f" {MIN_IMPOSTORS} (more records of more people)",
                impostor_pairs=total,
            )
        if total <= ENUMERATE_FACTOR * max_pairs:
            i, j = _all_impostor_pairs(codes)
            if len(i) > max_pairs:
                keep = np.sort(rng.choice(len(i), size=max_pairs, replace=False))
                i, j = i[keep], j[keep]
        else:
            i, j = _sample_impostor_pairs(codes, max_pairs, rng)
        measure = pair_distance or _euclidean
        distances = np.concatenate(
            [
                measure(x[i[a : a + PAIR_CHUNK]], x[j[a : a + PAIR_CHUNK]])
                for a in range(0, len(i), PAIR_CHUNK)
            ]
        )
        return cls.from_distances(distances, source=source, model_id=model_id)

    # --- the false-match rate ---------------------------------------------------------

    def observed_at(self, distance: float) -> int:
        """How many of the sampled impostor comparisons scored at or below ``distance``."""
        return int(self._observed(_finite(distance))[0])

    def fmr_at(self, distance: float) -> float:
        """Estimated probability that an impostor comparison scores at or below ``distance``."""
        return float(self.fmr_at_many(np.array([distance], dtype=np.float64))[0])

    def fmr_at_many(self, distances: ArrayLike) -> NDArray[np.float64]:
        """``fmr_at`` of each distance (any shape)."""
        d = _finite(distances)
        fmr = self._observed(d) / self.comparisons
        below = d < self.tail.anchor_distance
        if np.any(below):
            t = self.tail
            z = (np.concatenate([d[below], [t.anchor_distance]]) - t.mu) / t.sigma
            log_cdf = _log_normal_cdf(z)
            model = t.anchor_count / self.comparisons * np.exp(log_cdf[:-1] - log_cdf[-1])
            seen = np.minimum(self._observed(d[below]), MIN_OBSERVED - 1)
            fmr[below] = np.clip(model, self._lower[seen], self._upper[seen])
        return np.clip(fmr, 0.0, 1.0)

    def distance_at(self, rate: float) -> float:
        """The largest distance whose estimated FMR is at most ``rate`` (bisection; the
        FMR grows with the distance)."""
        if not 0.0 < rate < 1.0:
            raise ValueError(f"a false-match rate lies strictly between 0 and 1, not {rate}")
        lo, hi = 0.0, 4.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.fmr_at(mid) <= rate else (lo, mid)
        return lo

    def fmr_upper_at(self, distance: float, confidence: float = CONFIDENCE) -> float:
        """Empirical one-sided upper bound of the FMR at ``distance`` (no tail model)."""
        return upper_bound(self.observed_at(distance), self.comparisons, confidence)

    def describe(self, distance: float) -> str:
        """The FMR at ``distance`` in words an examiner reads without a statistician."""
        fmr, k, n = self.fmr_at(distance), self.observed_at(distance), self.comparisons
        if k >= MIN_OBSERVED:
            return (
                f"{_about(fmr)} impostors score this high ({k:,} of {n:,} impostor comparisons did)"
            )
        bound = _one_in(self.fmr_upper_at(distance))
        if k == 0:
            return (
                f"fewer than {bound} impostors score this high (none of {n:,} impostor"
                f" comparisons did; {CONFIDENCE:.0%} confidence); tail model: {_about(fmr)}"
            )
        return (
            f"{_about(fmr)} impostors score this high by the tail model ({k} of {n:,} impostor"
            f" comparisons did; at most {bound} with {CONFIDENCE:.0%} confidence)"
        )

    def require_model(self, model_id: str) -> None:
        """Refuse to interpret distances of another model than the one calibrated."""
        if model_id != self.model_id:
            raise ModelMismatch(
                f"this calibration was made with {self.model_id}; distances of {model_id}"
                " mean something else (calibrate again with the new model)",
                calibration_model=self.model_id,
                template_model=model_id,
            )

    def _observed(self, d: NDArray[np.float64]) -> NDArray[np.int64]:
        j = np.searchsorted(self._values, d, side="right")
        return np.where(j > 0, self._ranks[np.maximum(j - 1, 0)] + 1, 0)

    # --- serialisation ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """What the calibration is: size, model, origin, date and tail parameters."""
        return {
            "comparisons": self.comparisons,
            "model_id": self.model_id,
            "source": self.source,
            "created": self.created.isoformat(),
            "tail": asdict(self.tail),
        }

    def to_bytes(self) -> bytes:
        """A versioned, checksummed record: metadata (JSON) then the zlib-packed knots."""
        meta = json.dumps({**self.metadata(), "knots": len(self._ranks)}, sort_keys=True)
        meta_bytes = meta.encode()
        arrays = (
            self._values.astype("<f4").tobytes()
            + np.diff(self._ranks, prepend=0).astype("<i8").tobytes()
        )
        body = meta_bytes + zlib.compress(arrays, 6)
        return _HEAD.pack(_MAGIC, _VERSION, zlib.crc32(body), len(meta_bytes)) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> ImpostorDistribution:
        """Read ``to_bytes`` output; anything else raises ``InvalidCalibration``."""
        try:
            magic, version, crc, meta_len = _HEAD.unpack_from(data)
            if magic != _MAGIC:
                raise ValueError("not an impostor calibration")
            if version != _VERSION:
                raise ValueError(f"unknown version {version}")
            body = data[_HEAD.size :]
            if zlib.crc32(body) != crc:
                raise ValueError("checksum mismatch (truncated or altered)")
            meta = json.loads(body[:meta_len])
            knots = int(meta["knots"])
            arrays = zlib.decompress(body[meta_len:])
            if len(arrays) != 12 * knots:
                raise ValueError("knot arrays have the wrong length")
            values = np.frombuffer(arrays[: 4 * knots], dtype="<f4").astype(np.float32)
            ranks = np.cumsum(np.frombuffer(arrays[4 * knots :], dtype="<i8")).astype(np.int64)
            n = int(meta["comparisons"])
            tail = TailFit(**meta["tail"])
            if not (
                knots >= 1
                and n >= MIN_IMPOSTORS
                and ranks[0] == 0
                and ranks[-1] == n - 1
                and np.all(np.diff(ranks) > 0)
                and np.all(np.isfinite(values))
                and np.all(np.diff(values) >= 0)
                and tail.sigma > 0
            ):
                raise ValueError("inconsistent contents")
            return cls(
                values=values,
                ranks=ranks,
                comparisons=n,
                tail=tail,
                model_id=str(meta["model_id"]),
                source=str(meta["source"]),
                created=datetime.fromisoformat(meta["created"]),
            )
        except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
            raise InvalidCalibration(f"unreadable impostor calibration: {exc}") from exc


# --- labelled sets and their impostor pairs ---------------------------------------------


def labelled_vectors(
    vectors: ArrayLike, identities: Sequence[str] | None
) -> tuple[NDArray[np.floating[Any]], NDArray[np.int64]]:
    """Check a labelled set; return the vectors (n, dim) and an integer code per identity.

    Float vectors keep their precision (a million float32 templates are not copied to
    float64); ``identities=None`` gives every vector its own identity.
    """
    try:
        x = np.asarray(vectors)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidLabelledSet(f"vectors are not a numeric array: {exc}") from exc
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidLabelledSet(
            f"vectors must be an (n, dim) array with n >= 2; got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidLabelledSet("vectors contain NaN or infinite values")
    if identities is None:
        return x, np.arange(len(x), dtype=np.int64)
    if len(identities) != len(x):
        raise InvalidLabelledSet(
            f"{len(x)} vectors but {len(identities)} identities",
            vectors=len(x),
            identities=len(identities),
        )
    _, codes = np.unique(np.asarray([str(s) for s in identities]), return_inverse=True)
    return x, codes.astype(np.int64)


def impostor_pair_count(codes: NDArray[np.int64]) -> int:
    """Unordered pairs of records with different identities."""
    n = len(codes)
    sizes = np.bincount(codes).astype(object)  # Python ints: no overflow
    return n * (n - 1) // 2 - int(sum(c * (c - 1) // 2 for c in sizes))


def _all_impostor_pairs(codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every pair i < j of different identity, found a block of rows at a time."""
    n = len(codes)
    found = []
    block = max(1, (1 << 22) // n)
    for a in range(0, n, block):
        rows = np.arange(a, min(n, a + block))
        mask = (np.arange(n)[None, :] > rows[:, None]) & (codes[rows, None] != codes[None, :])
        r, c = np.nonzero(mask)
        found.append((rows[r], c.astype(np.int64)))
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _sample_impostor_pairs(
    codes: NDArray[np.int64], pairs: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``pairs`` distinct unordered pairs drawn uniformly among pairs of different identity.

    Uniform ordered pairs, rejecting same-identity pairs, then duplicates; only used when
    there are more than ``ENUMERATE_FACTOR * pairs`` impostor pairs, so it ends quickly.
    """
    n = len(codes)
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < pairs:
        i = rng.integers(0, n, size=PAIR_CHUNK * 4)
        j = rng.integers(0, n, size=PAIR_CHUNK * 4)
        ok = codes[i] != codes[j]
        lo, hi = np.minimum(i[ok], j[ok]), np.maximum(i[ok], j[ok])
        keys = np.unique(np.concatenate([keys, lo * n + hi]))
    keys = rng.choice(keys, size=pairs, replace=False)
    return keys // n, keys % n


def _euclidean(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(np.linalg.norm(a - b, axis=1), dtype=np.float64)


def _finite(distances: ArrayLike) -> NDArray[np.float64]:
    d = np.atleast_1d(np.asarray(distances, dtype=np.float64))
    if not np.all(np.isfinite(d)):
        raise BadInput("a distance must be a finite number")
    return d
