"""Biometric evaluation of face templates on a labelled set (DESIGN.md section 7).

Accuracy and demographic differentials are measured, not assumed. Given templates, the
identity of each and optionally a group label (age band, sex, skin tone...), this
computes the figures of ISO/IEC 19795-1 for verification - genuine and impostor
distance distributions, FMR and FNMR at chosen thresholds, the equal error rate (EER),
a DET curve (Martin et al., "The DET curve in assessment of detection task
performance", Eurospeech 1997) - and closed-set leave-one-out identification rates.

A comparison is accepted (a "match") when its Euclidean distance is at or below the
threshold. Every pair is compared once; the distance matrix is computed in row blocks so
10,000 templates need tens of megabytes of working memory (plus 4 bytes per impostor
pair kept: pass ``max_impostor_pairs`` to sample them).

Per group, the figures are computed *within* the group: genuine and impostor pairs
with both templates in the group, and identification against a gallery of that group
only. That is the question of a demographic differential - do two different people of
this group look alike to the model more often than two of that group? - and it keeps a
group's impostors from being dominated by cross-group pairs, which are easy. Each
group also gets its FMR and FNMR at the global EER threshold: one operating point, as a
node would run it, applied to every group.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from prum.categories.face.calibration import impostor_pair_count, labelled_vectors
from prum.errors import InvalidLabelledSet

# Distances computed per block of the matrix (float64): about 16 MB.
BLOCK_ELEMENTS = 2_000_000
HISTOGRAM_BINS = 50
# Points of a DET curve kept in the report: log-spaced in FMR, and in FNMR.
DET_POINTS = 100
# Identification ranks reported.
RANKS = (1, 10)

_NORMAL = NormalDist()


# The (len(a), len(b)) distances between two sets of templates.
BlockDistances = Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]


@dataclass(frozen=True)
class DistanceSummary:
    """Order statistics of a set of distances, and a histogram for plotting."""

    count: int
    min: float
    p1: float
    p5: float
    median: float
    p95: float
    p99: float
    max: float
    histogram_edges: list[float]
    histogram_counts: list[int]


@dataclass(frozen=True)
class OperatingPoint:
    """Error rates at one threshold (accept when distance <= threshold)."""

    threshold: float
    fmr: float
    fnmr: float
    false_matches: int
    false_non_matches: int


@dataclass(frozen=True)
class DetCurve:
    fmr: list[float]
    fnmr: list[float]
    threshold: list[float]


@dataclass(frozen=True)
class Figures:
    """Verification and identification figures of one population (all, or one group)."""

    samples: int
    identities: int
    genuine: DistanceSummary
    impostor: DistanceSummary
    impostor_pairs_total: int  # impostor pairs in the set; impostor.count were used
    eer: float
    eer_threshold: float
    operating_points: list[OperatingPoint]
    probes: int  # samples whose identity has another sample: the identification probes
    rank1: float
    rank10: float
    det: DetCurve


@dataclass(frozen=True)
class GroupFigures:
    """A group's own figures (``None`` with a reason when it cannot be evaluated alone)."""

    group: str
    samples: int
    figures: Figures | None
    fmr_at_global_eer_threshold: float | None
    fnmr_at_global_eer_threshold: float | None
    skipped: str | None = None


@dataclass(frozen=True)
class EvaluationReport:
    overall: Figures
    groups: list[GroupFigures]
    thresholds: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data."""
        return asdict(self)


@dataclass(frozen=True)
class _Scores:
    genuine: NDArray[np.float64]  # sorted
    impostor: NDArray[np.float32]  # sorted (sampled when asked); float32 halves 10k samples' 200 MB
    impostor_total: int
    ranks: NDArray[np.int64]  # rank of the nearest mate per probe; 0 when it has none


def evaluate(
    vectors: ArrayLike,
    identities: Sequence[str],
    groups: Sequence[str] | None = None,
    thresholds: Sequence[float] = (0.5, 0.55, 0.6),
    *,
    max_impostor_pairs: int | None = None,
    distances: BlockDistances | None = None,
) -> EvaluationReport:
    """Evaluate templates ``vectors`` (n, dim) of people ``identities`` (and ``groups``).

    ``distances(rows, all)`` gives the (len(rows), len(all)) distance block of two sets of
    templates; the default is Euclidean, "dlib+sface" templates pass their fused distance
    (face/fusion.py ``fused_block_distances``).

    ``max_impostor_pairs`` caps the impostor distances kept for the distributions, EER
    and FMR (a uniform random sample, seed 0); identification always uses all pairs.
    Raises ``InvalidLabelledSet`` when the set cannot be evaluated.
    """
    x, codes = labelled_vectors(vectors, identities)
    x = x.astype(np.float64)
    thresholds = [float(t) for t in thresholds]
    if not all(math.isfinite(t) for t in thresholds):
        raise InvalidLabelledSet("thresholds must be finite numbers")
    if max_impostor_pairs is not None and max_impostor_pairs < 1:
        raise InvalidLabelledSet("max_impostor_pairs must be at least 1")
    if groups is not None and len(groups) != len(x):
        raise InvalidLabelledSet(
            f"{len(x)} vectors but {len(groups)} group labels", vectors=len(x), groups=len(groups)
        )
    reason = _unevaluable(codes)
    if reason:
        raise InvalidLabelledSet(f"the set cannot be evaluated: {reason}")
    scores = _scores(x, codes, max_impostor_pairs, distances)
    overall = _figures(scores, codes, thresholds)
    group_figures = []
    if groups is not None:
        labels = np.asarray([str(g) for g in groups])
        for group in sorted(set(labels.tolist())):
            members = labels == group
            reason = _unevaluable(codes[members])
            if reason:
                group_figures.append(
                    GroupFigures(group, int(members.sum()), None, None, None, reason)
                )
                continue
            group_scores = _scores(x[members], codes[members], max_impostor_pairs, distances)
            at_eer = _operating_point(group_scores, overall.eer_threshold)
            group_figures.append(
                GroupFigures(
                    group,
                    int(members.sum()),
                    _figures(group_scores, codes[members], thresholds),
                    at_eer.fmr,
                    at_eer.fnmr,
                )
            )
    return EvaluationReport(overall, group_figures, thresholds)


def _unevaluable(codes: NDArray[np.int64]) -> str | None:
    sizes = np.bincount(codes)
    sizes = sizes[sizes > 0]
    if len(sizes) < 2:
        return "it needs samples of at least two identities (impostor pairs)"
    if sizes.max() < 2:
        return "it needs an identity with at least two samples (genuine pairs)"
    return None


def _scores(
    x: NDArray[np.float64],
    codes: NDArray[np.int64],
    max_impostors: int | None,
    distances: BlockDistances | None = None,
) -> _Scores:
    """All pair distances, in row blocks: genuine, impostor (sampled) and mate ranks."""
    n = len(x)
    total = impostor_pair_count(codes)
    # Impostor pairs are numbered in the order the blocks meet them; keep a uniform sample.
    keep = None
    if max_impostors is not None and max_impostors < total:
        keep = np.sort(np.random.default_rng(0).choice(total, max_impostors, replace=False))
    seen = 0
    squares = np.einsum("ij,ij->i", x, x)
    columns = np.arange(n)
    genuine, impostor = [], []
    ranks = np.zeros(n, dtype=np.int64)
    block = max(1, BLOCK_ELEMENTS // n)
    for a in range(0, n, block):
        rows = np.arange(a, min(n, a + block))
        d = (
            np.sqrt(np.maximum(squares[rows, None] + squares[None, :] - 2 * x[rows] @ x.T, 0.0))
            if distances is None
            else np.asarray(distances(x[rows], x), dtype=np.float64)
        )
        same = codes[rows, None] == codes[None, :]
        upper = columns[None, :] > rows[:, None]
        genuine.append(d[same & upper])
        pairs = d[~same & upper]
        if keep is not None:
            first, end = np.searchsorted(keep, [seen, seen + pairs.size])
            seen += pairs.size
            pairs = pairs[keep[first:end] - (seen - pairs.size)]
        impostor.append(pairs.astype(np.float32))
        # Leave-one-out: the rank of the nearest other sample of the probe's identity
        # among all other samples; an impostor at the same distance counts as ahead.
        mates = np.where(same, d, np.inf)
        mates[rows - a, rows] = np.inf
        nearest = mates.min(axis=1)
        ahead = np.sum(~same & (d <= nearest[:, None]), axis=1)
        ranks[rows] = np.where(np.isfinite(nearest), ahead + 1, 0)
    return _Scores(
        genuine=np.sort(np.concatenate(genuine)),
        impostor=np.sort(np.concatenate(impostor)),
        impostor_total=total,
        ranks=ranks,
    )


def _figures(s: _Scores, codes: NDArray[np.int64], thresholds: list[float]) -> Figures:
    eer, eer_threshold = _eer_sorted(s.genuine, s.impostor)
    lo = float(min(s.genuine[0], s.impostor[0]))
    hi = float(max(s.genuine[-1], s.impostor[-1]))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HISTOGRAM_BINS + 1)
    probes = s.ranks[s.ranks > 0]
    rank1, rank10 = (float(np.mean(probes <= r)) for r in RANKS)
    return Figures(
        samples=len(codes),
        identities=len(np.unique(codes)),
        genuine=_summary(s.genuine, edges),
        impostor=_summary(s.impostor, edges),
        impostor_pairs_total=s.impostor_total,
        eer=eer,
        eer_threshold=eer_threshold,
        operating_points=[_operating_point(s, t) for t in thresholds],
        probes=len(probes),
        rank1=rank1,
        rank10=rank10,
        det=_det_sorted(s.genuine, s.impostor),
    )


def _summary(d: NDArray[np.floating[Any]], edges: NDArray[np.float64]) -> DistanceSummary:
    p1, p5, median, p95, p99 = (float(v) for v in np.percentile(d, [1, 5, 50, 95, 99]))
    return DistanceSummary(
        count=int(d.size),
        min=float(d[0]),
        p1=p1,
        p5=p5,
        median=median,
        p95=p95,
        p99=p99,
        max=float(d[-1]),
        histogram_edges=[float(e) for e in edges],
        # Uniform bins given as a count and a range: numpy's fast path, no sorting.
        histogram_counts=[
            int(c) for c in np.histogram(d, bins=len(edges) - 1, range=(edges[0], edges[-1]))[0]
        ],
    )


def _operating_point(s: _Scores, threshold: float) -> OperatingPoint:
    fm = int(_at_most(s.impostor, threshold))
    fnm = int(s.genuine.size - _at_most(s.genuine, threshold))
    return OperatingPoint(threshold, fm / s.impostor.size, fnm / s.genuine.size, fm, fnm)


def equal_error_rate(genuine: ArrayLike, impostor: ArrayLike) -> tuple[float, float]:
    """The EER and the threshold where it occurs (accept when distance <= threshold).

    FMR(t) and FNMR(t) are step functions. The EER is where the ROC polyline, joining
    the operating points of consecutive distinct scores, crosses FMR = FNMR; the
    threshold is interpolated linearly between those two scores. When the rates are
    equal on a whole interval (perfectly separated sets: both 0 between the largest
    genuine and the smallest impostor distance), the threshold is its midpoint.
    """
    return _eer_sorted(np.sort(np.asarray(genuine)), np.sort(np.asarray(impostor)))


def _eer_sorted(g: NDArray[Any], i: NDArray[Any]) -> tuple[float, float]:
    ng, ni = g.size, i.size
    if ng == 0 or ni == 0:
        raise InvalidLabelledSet("an EER needs genuine and impostor distances")

    def counts(t: float) -> tuple[int, int]:  # (false non-matches, false matches)
        return ng - int(_at_most(g, t)), int(_at_most(i, t))

    def sign(t: float) -> int:  # sign of FNMR(t) - FMR(t), exactly in integers
        fnm, fm = counts(t)
        return (fnm * ni > fm * ng) - (fnm * ni < fm * ng)

    def first_score(pred: Any) -> float:  # smallest score where pred(sign) holds
        found = []
        for arr in (g, i):
            lo, hi = 0, arr.size
            while lo < hi:  # sign is non-increasing in t: bisect
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if pred(sign(float(arr[mid]))) else (mid + 1, hi)
            if lo < arr.size:
                found.append(float(arr[lo]))
        return min(found)  # at the largest score FNMR = 0 < FMR = 1: always found

    t2 = first_score(lambda s: s <= 0)
    fnm2, fm2 = counts(t2)
    if sign(t2) == 0:
        return fm2 / ni, (t2 + first_score(lambda s: s < 0)) / 2
    below = [float(a[k - 1]) for a in (g, i) if (k := int(_below(a, t2))) > 0]
    t1 = max(below) if below else t2
    fnm1, fm1 = counts(t1) if below else (ng, 0)
    d1, d2 = fnm1 / ng - fm1 / ni, fnm2 / ng - fm2 / ni
    alpha = d1 / (d1 - d2)
    return fm1 / ni + alpha * (fm2 / ni - fm1 / ni), t1 + alpha * (t2 - t1)


def _at_most(sorted_values: NDArray[Any], t: Any) -> Any:
    """How many of ``sorted_values`` are <= t, searched in their own dtype.

    A float64 needle would make numpy convert a float32 array whole on every call. The
    needle is rounded down to the array's dtype, which changes no count: no value of
    that dtype lies between the rounded needle and t.
    """
    t = np.asarray(t, dtype=np.float64)
    needle = t.astype(sorted_values.dtype)
    down = np.nextafter(needle, np.full_like(needle, -np.inf))
    return np.searchsorted(sorted_values, np.where(needle > t, down, needle), side="right")


def _below(sorted_values: NDArray[Any], t: float) -> int:
    """How many of ``sorted_values`` are < t (t is one of them, or of the other set)."""
    needle = np.asarray(t).astype(sorted_values.dtype)
    up = np.nextafter(needle, np.full_like(needle, np.inf))
    return int(np.searchsorted(sorted_values, np.where(needle < t, up, needle), side="left"))


def det_curve(genuine: ArrayLike, impostor: ArrayLike) -> DetCurve:
    """FMR and FNMR at thresholds log-spaced in both rates (``DET_POINTS`` each)."""
    return _det_sorted(np.sort(np.asarray(genuine)), np.sort(np.asarray(impostor)))


def _det_sorted(g: NDArray[Any], i: NDArray[Any]) -> DetCurve:
    at_fmr = i[np.unique(np.geomspace(1, i.size, DET_POINTS).astype(np.int64) - 1)]
    at_fnmr = g[g.size - np.unique(np.geomspace(1, g.size, DET_POINTS).astype(np.int64))]
    t = np.unique(np.concatenate([at_fmr, at_fnmr, [g[0] - 1e-9, i[-1]]]))
    fmr = _at_most(i, t) / i.size
    fnmr = 1.0 - _at_most(g, t) / g.size
    return DetCurve([float(v) for v in fmr], [float(v) for v in fnmr], [float(v) for v in t])


def plot_det(
    source: EvaluationReport | tuple[ArrayLike, ArrayLike],
    path: str | os.PathLike[str],
    *,
    title: str = "DET curve",
) -> Path:
    """Write a DET curve PNG: FNMR against FMR on normal-deviate axes, EER marked.

    ``source`` is a report (one curve overall, one per evaluated group) or a pair
    ``(genuine, impostor)`` of distance arrays.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves: list[tuple[str, DetCurve, float]] = []
    if isinstance(source, EvaluationReport):
        curves.append(("all", source.overall.det, source.overall.eer))
        curves += [
            (f"group {g.group}", g.figures.det, g.figures.eer)
            for g in source.groups
            if g.figures is not None
        ]
    else:
        genuine, impostor = source
        curves.append(("all", det_curve(genuine, impostor), equal_error_rate(genuine, impostor)[0]))

    positive = [v for _, c, _ in curves for v in (*c.fmr, *c.fnmr) if v > 0]
    floor = max(1e-6, min(positive, default=1e-3) / 2)
    top = 0.5

    def deviate(rates: Sequence[float]) -> list[float]:
        return [_NORMAL.inv_cdf(min(max(r, floor), 1 - floor)) for r in rates]

    figure = Figure(figsize=(6, 6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for label, curve, eer in curves:
        (line,) = ax.plot(deviate(curve.fmr), deviate(curve.fnmr), label=f"{label} (EER {eer:.2%})")
        ax.plot(deviate([eer]), deviate([eer]), "o", color=line.get_color())
    ax.plot(deviate([floor, top]), deviate([floor, top]), ":", color="grey", linewidth=0.8)
    ticks = [t for t in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5) if floor <= t <= top]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(deviate(ticks), labels=[f"{100 * t:g}%" for t in ticks])
    lim = deviate([floor, top])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false-match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(title)
    ax.grid(True, linewidth=0.4)
    ax.legend(loc="upper right", fontsize="small")
    out = Path(path)
    figure.savefig(out, format="png", dpi=100)
    return out


def summary_lines(report: EvaluationReport) -> list[str]:
    """The report in a few lines for a terminal."""
    lines = _figure_lines(report.overall)
    for g in report.groups:
        if g.figures is None:
            lines.append(f"group {g.group} ({g.samples} samples): not evaluated - {g.skipped}")
            continue
        f = g.figures
        lines.append(
            f"group {g.group}: {f.samples} samples, {f.identities} identities; EER {f.eer:.2%}"
            f" at {f.eer_threshold:.3f}; at the global EER threshold"
            f" {report.overall.eer_threshold:.3f}: FMR {g.fmr_at_global_eer_threshold:.2%},"
            f" FNMR {g.fnmr_at_global_eer_threshold:.2%}; rank-1 {f.rank1:.1%}"
        )
    return lines


def _figure_lines(f: Figures) -> list[str]:
    sampled = (
        f" (sample of {f.impostor_pairs_total:,})"
        if f.impostor.count < f.impostor_pairs_total
        else ""
    )
    lines = [
        f"{f.samples} samples of {f.identities} identities: {f.genuine.count:,} genuine pairs,"
        f" {f.impostor.count:,} impostor pairs{sampled}",
    ]
    for name, d in (("genuine", f.genuine), ("impostor", f.impostor)):
        lines.append(
            f"{name} distance: min {d.min:.3f}  p1 {d.p1:.3f}  p5 {d.p5:.3f}  median"
            f" {d.median:.3f}  p95 {d.p95:.3f}  p99 {d.p99:.3f}  max {d.max:.3f}"
        )
    lines.append(f"EER {f.eer:.2%} at distance {f.eer_threshold:.3f}")
    for p in f.operating_points:
        lines.append(
            f"at distance {p.threshold:.3f}: FMR {p.fmr:.3%} ({p.false_matches:,}),"
            f" FNMR {p.fnmr:.2%} ({p.false_non_matches:,})"
        )
    lines.append(
        f"leave-one-out identification over {f.probes} probes: rank-1 {f.rank1:.1%},"
        f" rank-10 {f.rank10:.1%}"
    )
    return lines
