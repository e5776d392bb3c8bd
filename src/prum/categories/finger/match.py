"""Minutia Cylinder-Code: the 1:1 fingerprint comparison.

Cappelli, Ferrara and Maltoni, "Minutia Cylinder-Code: a new representation and
matching technique for fingerprint recognition", IEEE TPAMI 32(12), 2010. Each minutia
gets a *cylinder*: a 16 x 16 grid of cells of radius R around it, aligned with its
direction, times 6 layers of relative direction; a cell bit is 1 when enough
neighbouring minutiae of that relative direction lie near it (the binary variant,
MCC16b). Cylinders are invariant to translation and rotation, so two prints are
compared without aligning them: local similarities between all cylinder pairs, then
the global score by Local Similarity Sort with Relaxation (LSS-R, section 5 of the
paper). Constants are the paper's (Table 1) unless a comment says otherwise.

Everything below is numpy on whole matrices: the similarity of every pair of
cylinders is three matrix products over the bit vectors (section 4.1 rewritten with
|a & c| = a . v_b for cylinders whose invalid cells are zero).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from prum.categories.finger.minutiae import Rows, Template

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class MccParams:
    radius: float = 70.0  # R: pixels at 500 ppi
    ns: int = 16  # cells per side
    nd: int = 6  # direction layers
    sigma_s: float = 28 / 3  # spatial Gaussian
    sigma_d: float = 2 * math.pi / 9  # directional Gaussian
    mu_psi: float = 0.01  # binarisation threshold of a cell
    omega: float = 50.0  # convex hull enlargement for cell validity
    min_vc: float = 0.75  # a cylinder needs 75% of its cells valid ...
    min_m: int = 2  # ... and this many neighbours
    min_me: float = 0.60  # two cylinders are comparable on 60% common valid cells
    delta_theta: float = math.pi / 2  # ... and minutiae directions within this
    min_np: int = 4  # LSS: number of pairs averaged, from min_np ...
    max_np: int = 12  # ... to max_np as the smaller template grows
    mu_p: float = 20.0
    tau_p: float = 0.4
    n_rel: int = 5  # relaxation iterations
    w_r: float = 0.5  # relaxation weight
    mu_rho: tuple[float, float, float] = (5.0, math.pi / 12, math.pi / 12)
    tau_rho: tuple[float, float, float] = (-8 / 5, -30.0, -30.0)
    max_minutiae: int = 100  # keep the best-quality ones (MINDTCT finds many spurious)

    @property
    def bits(self) -> int:
        return self.ns * self.ns * self.nd


@dataclass(frozen=True)
class Cylinders:
    """The cylinders of one template: what is stored for matching."""

    bits: F32  # (n, ns*ns*nd) 0/1, cell-major (cell * nd + layer), invalid cells 0
    valid: F32  # (n, ns*ns) 1 where the cell is valid
    xy: F32  # (n, 2) minutia positions
    angle: F32  # (n,) minutia directions (rad)
    per_cell: F32  # (n, ns*ns) bits set in each cell, over its layers

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @classmethod
    def of(cls, bits: F32, valid: F32, xy: F32, angle: F32) -> Cylinders:
        n, cells = valid.shape
        layers = bits.shape[1] // max(1, cells)
        per_cell = bits.reshape(n, cells, layers).sum(axis=2, dtype=np.float32)
        return cls(bits, valid, xy, angle, per_cell)


def angle_diff(a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """d_phi of the paper: the signed difference of two angles in [-pi, pi)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.asarray((d + math.pi) % (2 * math.pi) - math.pi)


def _psi(v: NDArray[np.floating[Any]], mu: float, tau: float) -> NDArray[np.float64]:
    """The sigmoid of the paper (equation 5)."""
    return np.asarray(1.0 / (1.0 + np.exp(-tau * (np.asarray(v, np.float64) - mu))))


def _select(minutiae: Rows, limit: int) -> Rows:
    finite = np.asarray(minutiae[np.isfinite(minutiae).all(axis=1)], np.float32)
    if len(finite) <= limit:
        return finite
    keep = np.argsort(-finite[:, 4], kind="stable")[:limit]
    return np.asarray(finite[np.sort(keep)], np.float32)


def _hull_mask(xy: NDArray[np.float64], omega: float) -> tuple[NDArray[np.uint8], float, float]:
    """The convex hull of the minutiae enlarged by omega (section 3.1), rasterised."""
    lo = xy.min(axis=0) - omega - 2
    hi = xy.max(axis=0) + omega + 2
    shape = (int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1)
    mask = np.zeros(shape, np.uint8)
    points = np.round(xy - lo).astype(np.int32)
    if len(points) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(points), (1,))
    else:
        for x, y in points:
            mask[y, x] = 1
    if omega > 0:
        outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
        mask = (outside <= omega).astype(np.uint8)
    return mask, float(lo[0]), float(lo[1])


def _gauss_axis(d: NDArray[np.float64], sigma: float) -> NDArray[np.float32]:
    """One axis of the spatial Gaussian, zero beyond 3 sigma."""
    d32 = d.astype(np.float32)
    g = np.exp(d32 * d32 * np.float32(-1 / (2 * sigma**2)))
    g[np.abs(d32) > 3 * sigma] = 0
    return np.asarray(g, np.float32)


_BINS = 3600  # 0.1 degree: far finer than the directional Gaussian (40 degrees)


def _angle_bin(angle: NDArray[np.floating[Any]]) -> NDArray[np.intp]:
    """Index of an angle in [-pi, pi) into the directional table."""
    b = np.floor((np.asarray(angle) + math.pi) * (_BINS / (2 * math.pi))).astype(np.intp)
    return np.asarray(np.clip(b, 0, _BINS - 1))


@functools.cache
def _directional_table(p: MccParams) -> NDArray[np.float32]:
    """Equation 7 tabulated: the area under the directional Gaussian over each layer's
    width, for a relative direction at each bin centre; shape (bins, nd)."""
    delta_d = 2 * math.pi / p.nd
    centres = -math.pi + (np.arange(_BINS) + 0.5) * (2 * math.pi / _BINS)
    layer = -math.pi + (np.arange(p.nd) + 0.5) * delta_d
    diff = angle_diff(layer[None, :], centres[:, None])
    scale = 1 / (p.sigma_d * math.sqrt(2))
    erf = np.vectorize(math.erf)
    table = 0.5 * (erf((diff + delta_d / 2) * scale) - erf((diff - delta_d / 2) * scale))
    return np.asarray(table, np.float32)


def cylinders(template: Template | Rows, params: MccParams = MccParams()) -> Cylinders:
    """The binary cylinders of a template's valid minutiae (section 3)."""
    raw = template.minutiae if isinstance(template, Template) else template
    m = _select(np.asarray(raw, np.float32).reshape(-1, 5), params.max_minutiae)
    p = params
    empty = Cylinders.of(
        np.zeros((0, p.bits), np.float32),
        np.zeros((0, p.ns * p.ns), np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
    )
    if len(m) == 0:
        return empty
    xy = m[:, :2].astype(np.float64)
    # Images have y down; the angles are counter-clockwise as seen, so work y-up.
    pos = np.stack([xy[:, 0], -xy[:, 1]], axis=1)
    theta = m[:, 2].astype(np.float64)
    n = len(m)
    delta_s = 2 * p.radius / p.ns
    # Cell centres in the cylinder frame (equation 1), then rotated by each minutia.
    idx = (np.arange(p.ns) - (p.ns + 1) / 2 + 1) * delta_s
    gi, gj = np.meshgrid(idx, idx, indexing="xy")  # (ns, ns): i along x, j along y
    local = np.stack([gi.ravel(), gj.ravel()], axis=1)  # (ns*ns, 2)
    c, s = np.cos(theta), np.sin(theta)
    cx = pos[:, 0, None] + c[:, None] * local[None, :, 0] - s[:, None] * local[None, :, 1]
    cy = pos[:, 1, None] + s[:, None] * local[None, :, 0] + c[:, None] * local[None, :, 1]
    # Validity: within R of the minutia (always, by the grid) and inside the hull.
    in_radius = np.hypot(local[:, 0], local[:, 1]) <= p.radius
    mask, x0, y0 = _hull_mask(xy, p.omega)
    px = np.clip(np.round(cx - x0).astype(np.int64), 0, mask.shape[1] - 1)
    py = np.clip(np.round(-cy - y0).astype(np.int64), 0, mask.shape[0] - 1)
    inside = (
        (cx - x0 >= 0)
        & (cx - x0 < mask.shape[1])
        & (-cy - y0 >= 0)
        & (-cy - y0 < mask.shape[0])
        & (mask[py, px] > 0)
    )
    valid_cells = inside & in_radius[None, :]  # (n, ns*ns)
    # Contributions (equations 3-7). In the frame of minutia m its cells form a square
    # grid, so the spatial Gaussian of a neighbour t at (u, v) in that frame factorises
    # into exp(-(x_i - u)^2 / 2s^2) * exp(-(y_j - v)^2 / 2s^2): two (n, ns, n) tables and
    # one batched matrix product instead of n * ns^2 * n distances. The paper's cut-off
    # of 3 sigma_s becomes a square of that half-side (the extra corners weigh < 1%).
    rel_x = pos[None, :, 0] - pos[:, None, 0]  # (m, t)
    rel_y = pos[None, :, 1] - pos[:, None, 1]
    u = c[:, None] * rel_x + s[:, None] * rel_y
    v = -s[:, None] * rel_x + c[:, None] * rel_y
    gx = _gauss_axis(idx[None, :, None] - u[:, None, :], p.sigma_s)  # (m, i, t)
    gy = _gauss_axis(idx[None, :, None] - v[:, None, :], p.sigma_s)  # (m, j, t)
    gx[np.arange(n), :, np.arange(n)] = 0  # a minutia does not describe itself
    rel = angle_diff(theta[:, None], theta[None, :])  # (n, n): d_phi(theta_m, theta_t)
    directional = _directional_table(p)[_angle_bin(rel)]  # (m, t, nd)
    # w[m, t, i, d] = gx[m, i, t] * directional[m, t, d]
    w = (gx.transpose(0, 2, 1)[:, :, :, None] * directional[:, :, None, :]).reshape(n, n, -1)
    value = np.matmul(gy, w).reshape(n, p.ns * p.ns, p.nd)  # cell index j * ns + i
    value *= np.float32(1 / (p.sigma_s * math.sqrt(2 * math.pi)))
    bits = (value > p.mu_psi) & valid_cells[:, :, None]
    # A cylinder is kept with enough valid cells and enough neighbours (section 3.2).
    between = np.hypot(pos[None, :, 0] - pos[:, None, 0], pos[None, :, 1] - pos[:, None, 1])
    neighbours = (between <= p.radius + 3 * p.sigma_s).sum(axis=1) - 1
    keep = (valid_cells.sum(axis=1) >= p.min_vc * in_radius.sum()) & (neighbours >= p.min_m)
    if not keep.any():
        return empty
    return Cylinders.of(
        bits=bits[keep].reshape(int(keep.sum()), -1).astype(np.float32),
        valid=valid_cells[keep].astype(np.float32),
        xy=pos[keep].astype(np.float32),
        angle=theta[keep].astype(np.float32),
    )


def local_similarities(a: Cylinders, b: Cylinders, params: MccParams = MccParams()) -> F32:
    """Similarity of every cylinder of ``a`` with every one of ``b`` (section 4.1)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    # Validity is per cell, the same in every layer: three of the four products run
    # over cells (ns^2) rather than bits (ns^2 nd).
    na = a.per_cell @ b.valid.T  # |a & common valid|
    nb = a.valid @ b.per_cell.T
    both = a.bits @ b.bits.T
    common = a.valid @ b.valid.T
    xor = np.maximum(na + nb - 2 * both, 0)
    norms = np.sqrt(na) + np.sqrt(nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(norms > 0, 1 - np.sqrt(xor) / norms, 0.0)
    cells = params.ns * params.ns * (math.pi / 4)  # valid cells of a full cylinder
    ok = (common >= params.min_me * cells) & (
        np.abs(angle_diff(a.angle[:, None], b.angle[None, :])) <= params.delta_theta
    )
    return np.where(ok, sim, 0.0).astype(np.float32)


@dataclass(frozen=True)
class Comparison:
    score: float  # 0..1
    pairs: int  # minutia pairs that carry the score (matched minutiae)
    # Those pairs' positions, for the examiner's chart: (x, y) in the first template's
    # pixels, then (x, y) in the second's (y down, as in the image).
    paired: tuple[tuple[float, float, float, float], ...] = ()


def _pairs_count(na: int, nb: int, p: MccParams) -> int:
    """n_P of equation 10: more pairs are averaged as the smaller template grows."""
    grow = float(_psi(np.array(min(na, nb)), p.mu_p, p.tau_p))
    return p.min_np + round(grow * (p.max_np - p.min_np))


def _greedy_pairs(sim: F32, limit: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Up to ``limit`` pairs of the best local similarity, each minutia used once.

    Rounds of mutual best matches (row maximum that is also its column maximum) give
    the same pairs as taking the largest entries one by one, in a few array passes.
    """
    work = sim.astype(np.float32, copy=True)
    rows: list[NDArray[np.intp]] = []
    cols: list[NDArray[np.intp]] = []
    taken = 0
    while taken < limit:
        best_col = work.argmax(axis=1)
        best_row = work.argmax(axis=0)
        r = np.flatnonzero(
            (best_row[best_col] == np.arange(work.shape[0]))
            & (work[np.arange(work.shape[0]), best_col] > 0)
        )
        if len(r) == 0:
            break
        c = best_col[r]
        order = np.argsort(-work[r, c], kind="stable")[: limit - taken]
        r, c = r[order], c[order]
        rows.append(r)
        cols.append(c)
        taken += len(r)
        work[r, :] = 0
        work[:, c] = 0
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.concatenate(rows), np.concatenate(cols)


def _wrap(d: NDArray[Any]) -> NDArray[Any]:
    """An angle difference into [-pi, pi), keeping the array's float type."""
    return np.asarray((d + math.pi) % (2 * math.pi) - math.pi)


def compatibility(
    pa: NDArray[Any], ta: NDArray[Any], pb: NDArray[Any], tb: NDArray[Any], params: MccParams
) -> NDArray[Any]:
    """rho of equation 13 for every two of k minutia pairs: the distance between the
    two minutiae, their relative direction and the angle of the joining segment
    relative to each must agree in both prints. ``pa`` (..., k, 2) and ``ta`` (..., k)
    are positions and directions in print a, ``pb`` and ``tb`` their partners in b;
    leading dimensions are batches (many fingers at once)."""
    p = params
    dxa = pa[..., None, :, 0] - pa[..., :, None, 0]  # [t, k]: from minutia t to k
    dya = pa[..., None, :, 1] - pa[..., :, None, 1]
    dxb = pb[..., None, :, 0] - pb[..., :, None, 0]
    dyb = pb[..., None, :, 1] - pb[..., :, None, 1]
    d1 = np.abs(np.hypot(dxa, dya) - np.hypot(dxb, dyb))
    turn = ta - tb  # each pair's rotation from a to b
    d2 = np.abs(_wrap(turn[..., :, None] - turn[..., None, :]))
    d3 = np.abs(_wrap(turn[..., :, None] - np.arctan2(dya, dxa) + np.arctan2(dyb, dxb)))
    rho = (
        _psi(d1, p.mu_rho[0], p.tau_rho[0])
        * _psi(d2, p.mu_rho[1], p.tau_rho[1])
        * _psi(d3, p.mu_rho[2], p.tau_rho[2])
    ).astype(pa.dtype)
    k = rho.shape[-1]
    rho[..., np.arange(k), np.arange(k)] = 0
    return np.asarray(rho)


def _relax(lam0: NDArray[Any], rho: NDArray[Any], p: MccParams) -> NDArray[Any]:
    """Equation 12: n_rel rounds in which each pair's similarity moves towards the
    mean of the others weighted by their compatibility (last axis: the pairs)."""
    k = lam0.shape[-1]
    lam = lam0
    for _ in range(p.n_rel):
        lam = p.w_r * lam + (1 - p.w_r) * np.einsum("...ij,...j->...i", rho, lam) / max(1, k - 1)
    return lam


def compare(a: Cylinders, b: Cylinders, params: MccParams = MccParams()) -> Comparison:
    """The global score of two templates by LSS-R (section 5.2)."""
    return _relaxed_score(a, b, local_similarities(a, b, params), params)


def compare_many(
    a: Cylinders, others: list[Cylinders], params: MccParams = MccParams()
) -> list[Comparison]:
    """``compare(a, b)`` for each of ``others``: the local similarities of all of them
    in one set of matrix products (most of a comparison's cost), then LSS-R each."""
    if not others:
        return []
    joined = Cylinders(
        bits=np.concatenate([b.bits for b in others]),
        valid=np.concatenate([b.valid for b in others]),
        xy=np.concatenate([b.xy for b in others]),
        angle=np.concatenate([b.angle for b in others]),
        per_cell=np.concatenate([b.per_cell for b in others]),
    )
    sim = local_similarities(a, joined, params)
    out = []
    start = 0
    for b in others:
        out.append(_relaxed_score(a, b, sim[:, start : start + len(b)], params))
        start += len(b)
    return out


def _relaxed_score(a: Cylinders, b: Cylinders, sim: F32, params: MccParams) -> Comparison:
    p = params
    if sim.size == 0 or not sim.any():
        return Comparison(0.0, 0)
    n_p = _pairs_count(len(a), len(b), p)
    ia, ib = _greedy_pairs(sim, min(len(a), len(b)))
    if len(ia) == 0:
        return Comparison(0.0, 0)
    lam0 = sim[ia, ib].astype(np.float64)
    rho = compatibility(
        a.xy[ia].astype(np.float64),
        a.angle[ia].astype(np.float64),
        b.xy[ib].astype(np.float64),
        b.angle[ib].astype(np.float64),
        p,
    )
    lam = _relax(lam0, rho, p)
    k = len(lam0)
    efficiency = lam / np.maximum(lam0, 1e-12)
    top = np.argsort(-efficiency, kind="stable")[: min(n_p, k)]
    score = float(lam[top].sum() / n_p)
    used = top[lam[top] > 0]
    # Cylinders keep positions y-up (see cylinders()); the chart is drawn y-down.
    paired = tuple(
        (float(a.xy[i, 0]), float(-a.xy[i, 1]), float(b.xy[j, 0]), float(-b.xy[j, 1]))
        for i, j in zip(ia[used], ib[used], strict=True)
    )
    return Comparison(score=min(1.0, max(0.0, score)), pairs=len(used), paired=paired)


def quick_scores(
    sim: NDArray[np.floating[Any]],
    probe: Cylinders,
    sizes: NDArray[np.int64],
    xy: F32,
    angle: F32,
    params: MccParams = MccParams(),
    pairs: int = 16,
) -> NDArray[np.float64]:
    """An LSS-R score for each of many fingers at once, from few pairs: what trims a
    1:N search's voted fingers to the short list (prum.categories.finger.index).

    ``sim`` holds the similarities of the probe's cylinders (rows) with the cylinders
    of all the fingers, concatenated in order (columns); ``sizes`` says how many
    cylinders each finger has, ``xy`` and ``angle`` are their minutiae. Each probe
    cylinder is paired with its most similar cylinder of the finger (directions within
    delta_theta), the ``pairs`` best of those are relaxed by the geometry of the
    minutiae as :func:`compare` does, and the best n_P averaged. Unlike
    :func:`compare` the pairs need not be one to one and the similarity is what the
    caller gives, so the scores only rank; a mate whose cylinders match weakly but
    agree in geometry still comes first, which a mean of the best similarities missed.
    """
    p = params
    out = np.zeros(len(sizes))
    n_probe, total = sim.shape
    if n_probe == 0 or total == 0:
        return out
    # Directions within delta_theta of each other: the cosine of the difference.
    ca = np.stack([np.cos(probe.angle), np.sin(probe.angle)], axis=1)
    cb = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    usable = ca @ cb.T >= math.cos(p.delta_theta) - 1e-6
    # The best cylinder of each finger for each probe cylinder in one reduceat: the
    # similarity (20 bits) in the high bits of an integer, the column in the low 24.
    key = (np.where(usable, sim, 0.0) * (1 << 20)).astype(np.int64) << 24
    key |= np.arange(total, dtype=np.int64)[None, :]
    present = np.flatnonzero(sizes > 0)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[present]
    best = np.maximum.reduceat(key, starts, axis=1).T  # (fingers, probe cylinders)
    k = min(pairs, n_probe)
    rows = np.argpartition(-best, k - 1, axis=1)[:, :k]
    chosen = np.take_along_axis(best, rows, axis=1)
    cols = chosen & ((1 << 24) - 1)
    lam0 = (chosen >> 24).astype(np.float32) / (1 << 20)
    rho = compatibility(probe.xy[rows], probe.angle[rows], xy[cols], angle[cols], p)
    lam = _relax(lam0, rho, p)
    efficiency = lam / np.maximum(lam0, 1e-12)
    ranked = np.take_along_axis(lam, np.argsort(-efficiency, axis=1), axis=1)
    grow = _psi(np.minimum(n_probe, sizes[present]), p.mu_p, p.tau_p)
    n_p = p.min_np + np.round(grow * (p.max_np - p.min_np))
    summed = (ranked * (np.arange(k)[None, :] < n_p[:, None])).sum(axis=1)
    out[present] = summed / n_p
    return out
