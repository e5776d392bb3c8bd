"""What a supervisor needs from an evaluation (``prum face evaluate``, issue 31 point 4).

On a labelled set of photos: the failure-to-enrol rate; FNMR at FMR 1e-3 / 1e-4 / 1e-5
with the number of impostor pairs behind each, pooled and weighted per person (a few
people with many photos otherwise make the pooled figures theirs); rank-1 and rank-10;
the calibration check (the false-match rate the shipped reference predicts against the
rate observed on this set); each model of a fused template alone beside the fused score;
and the same per group when the labels have a group column.

Scores are distances (lower = more alike). A "dlib+sface" template is scored whole by the
fused distance, its dlib half alone by L2 and its SFace half alone by ``1 - cosine``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.categories.face.calibration import ImpostorDistribution
from prum.categories.face.fused import MODEL_SET
from prum.categories.face.fusion import DLIB_DIM, fused_block_distances

LEVELS = (1e-3, 1e-4, 1e-5)
CHECK_LEVELS = (1e-2, 1e-3, 1e-4, 1e-5)
Distances = Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]


def l2_block(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
    return np.asarray(np.sqrt(np.maximum(sq - 2 * a @ b.T, 0.0)))


def cosine_block(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    return np.asarray(1.0 - a @ b.T)


def systems_for(model_set: str | None) -> dict[str, tuple[Distances, slice]]:
    """The scorings to report: the model set's own, and each fused model alone."""
    if model_set == MODEL_SET:
        return {
            "dlib+sface (fused)": (fused_block_distances, slice(None)),
            "dlib alone": (l2_block, slice(0, DLIB_DIM)),
            "SFace + mirror alone": (cosine_block, slice(DLIB_DIM, None)),
        }
    return {model_set or "model": (l2_block, slice(None))}


def _threshold(impostor: NDArray[Any], weights: NDArray[Any] | None, level: float) -> float:
    """The largest distance with at most ``level`` (weighted) impostors at or below it."""
    order = np.argsort(impostor, kind="stable")
    d = impostor[order]
    w = np.ones(len(d)) if weights is None else weights[order]
    cum = np.cumsum(w) / w.sum()
    k = int(np.searchsorted(cum, level, side="right"))  # the k closest impostors fit
    return float(np.nextafter(d[k], -np.inf)) if k < len(d) else float(d[-1])


def _pairs(
    x: NDArray[Any], codes: NDArray[np.int64], distances: Distances
) -> tuple[NDArray[Any], NDArray[np.bool_], NDArray[Any], NDArray[Any], NDArray[Any]]:
    d = np.asarray(distances(x, x), dtype=np.float64)
    iu, ju = np.triu_indices(len(x), 1)
    return d[iu, ju], codes[iu] == codes[ju], iu, ju, d


def measure(
    x: NDArray[Any],
    identities: Sequence[str],
    distances: Distances,
    reference: ImpostorDistribution | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring for one scoring of one labelled set."""
    _, codes = np.unique(np.asarray(identities), return_inverse=True)
    codes = codes.astype(np.int64)
    s, same, iu, ju, full = _pairs(x, codes, distances)
    genuine, impostor = s[same], s[~same]
    if len(genuine) == 0 or len(impostor) == 0:
        return {"error": "needs two photos of one person and photos of two people"}
    count = np.bincount(codes)
    genuine_pairs = np.bincount(codes[iu][same], minlength=len(count)).astype(np.float64)
    gw = 1.0 / genuine_pairs[codes[iu][same]]
    iw = 1.0 / (count[codes[iu][~same]] * count[codes[ju][~same]]).astype(np.float64)
    out: dict[str, Any] = {
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "levels": [],
    }
    for level in LEVELS:
        t = _threshold(impostor, None, level)
        tw = _threshold(impostor, iw, level)
        out["levels"].append(
            {
                "fmr": level,
                # Fewer than 10 impostors expected at the level: not resolved, say so.
                "resolved": len(impostor) * level >= 10,
                "impostors_at_or_below": int((impostor <= t).sum()),
                "fnmr": float((genuine > t).mean()),
                "fnmr_per_person": float((gw * (genuine > tw)).sum() / gw.sum()),
            }
        )
    np.fill_diagonal(full, np.inf)
    mates = codes[:, None] == codes[None, :]
    has_mate = mates.sum(axis=1) > 1
    best_mate = np.where(mates, full, np.inf).min(axis=1)
    ahead = np.sum(~mates & (full < best_mate[:, None]), axis=1)[has_mate]
    out["rank1"] = float((ahead == 0).mean())
    out["rank10"] = float((ahead < 10).mean())
    if reference is not None:
        out["calibration"] = calibration_check(reference, impostor)
    return out


def calibration_check(reference: ImpostorDistribution, impostor: NDArray[Any]) -> dict[str, Any]:
    """Predicted (reference) against observed false-match rates at CHECK_LEVELS."""
    d = np.sort(impostor)
    rows: list[dict[str, Any]] = []
    worst: float | None = 1.0
    for level in CHECK_LEVELS:
        lo, hi = 0.0, 4.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if reference.fmr_at(mid) < level else (lo, mid)
        seen = int(np.searchsorted(d, lo, side="right"))
        observed = seen / len(d)
        resolved = len(d) * level >= 10
        ratio = observed / level if seen else None
        rows.append(
            {
                "predicted": level,
                "observed": observed,
                "impostors": seen,
                "ratio": ratio,
                "resolved": resolved,
            }
        )
        if resolved and worst is not None:
            # No impostor at all where 10 were expected: no finite ratio to show.
            worst = max(worst, ratio, 1 / ratio) if ratio else None
    return {"source": reference.source, "levels": rows, "max_ratio_resolved": worst}


def supervise(
    vectors: NDArray[Any],
    identities: Sequence[str],
    groups: Sequence[str] | None,
    *,
    attempted: int,
    model_set: str | None,
    reference: ImpostorDistribution | None,
) -> dict[str, Any]:
    """The report: FTE, and ``measure`` for every scoring, overall and per group."""
    x = np.asarray(vectors, dtype=np.float64)
    report: dict[str, Any] = {
        "photos": attempted,
        "enrolled": len(x),
        "fte_rate": 1.0 - len(x) / attempted if attempted else 0.0,
        "systems": {},
    }
    systems = systems_for(model_set)
    for n, (name, (distances, part)) in enumerate(systems.items()):
        ref = reference if n == 0 else None  # the reference belongs to the model set
        report["systems"][name] = measure(x[:, part], identities, distances, ref)
    if groups is not None:
        labels = np.asarray([str(g) for g in groups])
        first, (distances, part) = next(iter(systems.items()))
        report["groups"] = {
            str(g): measure(
                x[labels == g][:, part],
                [i for i, m in zip(identities, labels == g, strict=True) if m],
                distances,
            )
            for g in sorted(set(labels.tolist()))
        }
        report["groups_system"] = first
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"photos {report['photos']}, enrolled {report['enrolled']},"
        f" failure to enrol {100 * report['fte_rate']:.2f} %"
    ]
    for name, r in report["systems"].items():
        lines += _lines(name, r)
    for group, r in report.get("groups", {}).items():
        lines += _lines(f"group {group} ({report['groups_system']})", r)
    return lines


def _lines(name: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [f"{name}: {r['error']}"]
    out = [
        f"{name}: {r['genuine_pairs']:,} genuine, {r['impostor_pairs']:,} impostor pairs;"
        f" rank-1 {100 * r['rank1']:.1f} %, rank-10 {100 * r['rank10']:.1f} %"
    ]
    for p in r["levels"]:
        note = "" if p["resolved"] else " (not resolved: too few impostor pairs)"
        out.append(
            f"  FNMR at FMR {p['fmr']:.0e}: {100 * p['fnmr']:.2f} % pooled,"
            f" {100 * p['fnmr_per_person']:.2f} % per person"
            f" ({p['impostors_at_or_below']:,} impostors at or below){note}"
        )
    if "calibration" in r:
        c = r["calibration"]
        out.append(f"  calibration against {c['source']}:")
        for row in c["levels"]:
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
            note = "" if row["resolved"] else " (too few impostors to tell)"
            out.append(
                f"    predicted {row['predicted']:.0e}, observed {row['observed']:.2e}"
                f" ({row['impostors']:,}), ratio {ratio}{note}"
            )
    return out
