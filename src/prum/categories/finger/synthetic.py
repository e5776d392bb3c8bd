"""Synthetic fingers for benchmarks at scale, made from real minutiae.

Ten real fingers (the FVC development set) cannot fill a 100,000-finger gallery, and
copies of them would be mates of each other, not a gallery of strangers. So:

- :func:`new_identity` turns a real template into a *different finger*: a strong
  smooth warp (random Gaussian displacement bumps of about 25 px over 50 px, far
  beyond the few pixels of skin distortion two impressions differ by), a smooth random
  field added to the ridge directions (up to about 60 degrees), a mirror image half of
  the time, kinds reassigned, a fifth of the minutiae dropped and as many added at
  random inside the print. bench/finger.py measures that these identities score as
  impostors against their source and each other, like real different fingers do.
- :func:`impression` makes another *impression of the same finger*: rotation,
  translation, a mild elastic distortion (a smooth displacement field of a few
  pixels), positional and directional jitter, dropout of minutiae and a few spurious
  ones, and cropping to the scanned area, the differences real impressions show
  (Maltoni et al., Handbook of Fingerprint Recognition, 2nd ed., section 4.1).

Coordinates are pixels at 500 ppi, angles radians (prum.categories.finger.minutiae).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from prum.categories.finger.minutiae import Rows


def _smooth_field(
    xy: NDArray[np.float64], rng: np.random.Generator, *, bumps: int, amplitude: float, scale: float
) -> NDArray[np.float64]:
    """A smooth random 2-D displacement at each point: a sum of Gaussian bumps."""
    if len(xy) == 0:
        return np.zeros((0, 2))
    lo, hi = xy.min(axis=0) - scale, xy.max(axis=0) + scale
    centres = rng.uniform(lo, hi, size=(bumps, 2))
    vectors = rng.normal(0.0, amplitude, size=(bumps, 2))
    d2 = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    weights = np.exp(-d2 / (2 * scale**2))
    return np.asarray(weights @ vectors)


def _smooth_scalar(
    xy: NDArray[np.float64], rng: np.random.Generator, *, bumps: int, amplitude: float, scale: float
) -> NDArray[np.float64]:
    if len(xy) == 0:
        return np.zeros(0)
    lo, hi = xy.min(axis=0) - scale, xy.max(axis=0) + scale
    centres = rng.uniform(lo, hi, size=(bumps, 2))
    values = rng.normal(0.0, amplitude, size=bumps)
    d2 = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.asarray(np.exp(-d2 / (2 * scale**2)) @ values)


def _random_inside(
    xy: NDArray[np.float64], rng: np.random.Generator, n: int
) -> NDArray[np.float64]:
    """Points uniformly inside the bounding box of the print, kept near real minutiae."""
    if n <= 0 or len(xy) == 0:
        return np.zeros((0, 2))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    out = rng.uniform(lo, hi, size=(4 * n, 2))
    near = np.sqrt(((out[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)).min(axis=1) < 40
    return np.asarray(out[near][:n])


def new_identity(source: Rows, rng: np.random.Generator) -> Rows:
    """A different finger made from the minutiae of a real one (see the module text)."""
    m = np.asarray(source, np.float64).reshape(-1, 5).copy()
    if len(m) == 0:
        return np.zeros((0, 5), np.float32)
    xy = m[:, :2]
    if rng.random() < 0.5:  # mirror image: x -> -x, direction reflected about the y axis
        xy[:, 0] = xy[:, 0].max() + xy[:, 0].min() - xy[:, 0]
        m[:, 2] = math.pi - m[:, 2]
    warped = xy + _smooth_field(xy, rng, bumps=12, amplitude=25.0, scale=50.0)
    m[:, 2] += _smooth_scalar(xy, rng, bumps=10, amplitude=0.8, scale=60.0)
    m[:, :2] = warped
    m[:, 3] = rng.integers(0, 2, size=len(m))
    keep = rng.random(len(m)) >= 0.2
    extra = _random_inside(warped, rng, int(len(m) - keep.sum()))
    added = np.column_stack(
        [
            extra,
            rng.uniform(0, 2 * math.pi, len(extra)),
            rng.integers(0, 2, len(extra)),
            rng.uniform(0.2, 0.8, len(extra)),
        ]
    )
    out = np.concatenate([m[keep], added]) if len(added) else m[keep]
    out[:, 2] %= 2 * math.pi
    # Move into positive image coordinates, as an extractor would report them.
    out[:, :2] -= out[:, :2].min(axis=0) - 20.0
    return np.asarray(out, np.float32)


def impression(
    source: Rows,
    rng: np.random.Generator,
    *,
    rotation_deg: float = 20.0,
    shift_px: float = 25.0,
    distortion_px: float = 5.0,
    jitter_px: float = 1.5,
    jitter_deg: float = 6.0,
    dropout: float = 0.2,
    spurious: float = 0.1,
    crop: float = 0.15,
) -> Rows:
    """Another impression of the same finger (see the module text).

    ``rotation_deg`` and ``shift_px`` are the largest rotation and translation (drawn
    uniformly); ``crop`` the share of the print's width and height lost at random
    sides, as when a finger is placed off centre.
    """
    m = np.asarray(source, np.float64).reshape(-1, 5).copy()
    if len(m) == 0:
        return np.zeros((0, 5), np.float32)
    xy = m[:, :2]
    centre = xy.mean(axis=0)
    xy = xy + _smooth_field(xy, rng, bumps=6, amplitude=distortion_px, scale=80.0)
    a = math.radians(rng.uniform(-rotation_deg, rotation_deg))
    # Rotation as the eye sees the image (y down): counter-clockwise on screen.
    c, s = math.cos(a), math.sin(a)
    rel = xy - centre
    rotated = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]])
    xy = rotated + centre + rng.uniform(-shift_px, shift_px, size=2)
    xy += rng.normal(0.0, jitter_px, size=xy.shape)
    m[:, :2] = xy
    m[:, 2] = (m[:, 2] + a + rng.normal(0.0, math.radians(jitter_deg), len(m))) % (2 * math.pi)
    keep = rng.random(len(m)) >= dropout
    if crop > 0:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        cut = rng.uniform(0, crop, size=4) * np.concatenate([hi - lo, hi - lo])
        keep &= (xy[:, 0] >= lo[0] + cut[0]) & (xy[:, 0] <= hi[0] - cut[2])
        keep &= (xy[:, 1] >= lo[1] + cut[1]) & (xy[:, 1] <= hi[1] - cut[3])
    kept = m[keep]
    n_extra = rng.binomial(len(m), spurious)
    extra = _random_inside(kept[:, :2], rng, n_extra) if len(kept) else np.zeros((0, 2))
    added = np.column_stack(
        [
            extra,
            rng.uniform(0, 2 * math.pi, len(extra)),
            rng.integers(0, 2, len(extra)),
            rng.uniform(0.1, 0.5, len(extra)),
        ]
    )
    out = np.concatenate([kept, added]) if len(added) else kept
    return np.asarray(out, np.float32)
