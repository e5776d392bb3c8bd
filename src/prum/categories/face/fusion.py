"""Score-level fusion of dlib and SFace: one comparison score from two models.

Each model's score is z-normalised by the mean and standard deviation of its impostor
scores on the LFW fitting people (dlib: minus the L2 distance; SFace: cosine of the
mirror-averaged embeddings), then mixed ``w * z(dlib) + (1 - w) * z(SFace)`` and divided
by the standard deviation of that mix over the same impostors, so the fused score is
again "impostor standard deviations above the impostor mean". Where SFace found no face,
dlib's z stands alone (it has the same scale). The figures are fitted by
bench/face_accuracy.py and shipped in fusion_figures.json beside this module.

The rest of the face category speaks in *distances* (lower is more similar, candidate
lists sorted ascending, calibration of the lower tail). The fused score is mapped to one
by ``2 / (1 + exp(z / 2))``: monotone, in (0, 2) like the distance of unit vectors, an
impostor average (z = 0) at 1.0 and a typical mate (z = 8) near 0.04.

A fused template is 256 floats: dlib's 128 then SFace's 128 (all zero when YuNet found
no face and only dlib could be computed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from prum.errors import InvalidModel

DLIB_DIM = 128
SFACE_DIM = 128
FUSED_DIM = DLIB_DIM + SFACE_DIM
# Slope of the z-to-distance map: z / 2 keeps the operating range (z 3 to 6, FMR 1e-3 to
# 1e-6) between distances 0.36 and 0.1, well inside float32 resolution.
Z_SCALE = 2.0


@dataclass(frozen=True)
class FusionFigures:
    """z-normalisation constants and weight, fitted on development data (see ``source``)."""

    dlib_mean: float  # of the impostor scores (minus L2 distance)
    dlib_std: float
    sface_mean: float  # of the impostor cosines
    sface_std: float
    weight: float  # of dlib's z; SFace gets 1 - weight
    mix_std: float  # standard deviation of the weighted mix over the same impostors
    source: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@cache
def shipped_figures() -> FusionFigures:
    """The figures shipped with the package (fusion_figures.json)."""
    text = resources.files("prum.categories.face").joinpath("fusion_figures.json").read_text()
    data = json.loads(text)
    try:
        return FusionFigures(**{k: data[k] for k in FusionFigures.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise InvalidModel(f"fusion_figures.json is incomplete: {exc}") from exc


def z_dlib(distance: NDArray[np.floating[Any]], f: FusionFigures) -> NDArray[np.float64]:
    return (-np.asarray(distance, dtype=np.float64) - f.dlib_mean) / f.dlib_std


def z_sface(cosine: NDArray[np.floating[Any]], f: FusionFigures) -> NDArray[np.float64]:
    return (np.asarray(cosine, dtype=np.float64) - f.sface_mean) / f.sface_std


def fused_z(
    dlib_distance: NDArray[np.floating[Any]],
    sface_cosine: NDArray[np.floating[Any]],
    f: FusionFigures,
) -> NDArray[np.float64]:
    """The fused score; a NaN cosine (no SFace embedding on one side) leaves dlib alone."""
    zd = z_dlib(dlib_distance, f)
    zs = z_sface(sface_cosine, f)
    mixed = (f.weight * zd + (1.0 - f.weight) * zs) / f.mix_std
    return np.where(np.isnan(zs), zd, mixed)


def z_to_distance(z: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """The monotone map from fused score to a distance in (0, 2) (module docstring)."""
    return 2.0 / (1.0 + np.exp(np.clip(np.asarray(z, dtype=np.float64) / Z_SCALE, -300, 300)))


def fused_distances(
    probe: NDArray[np.floating[Any]],
    gallery: NDArray[np.floating[Any]],
    f: FusionFigures | None = None,
) -> NDArray[np.float64]:
    """Fused distance of one 256-float probe template to each row of ``gallery`` (n, 256)."""
    f = f or shipped_figures()
    p = np.asarray(probe, dtype=np.float32).reshape(-1)
    g = np.asarray(gallery, dtype=np.float32).reshape(-1, FUSED_DIM)
    if p.shape[0] != FUSED_DIM:
        raise InvalidModel(f"a fused template has {FUSED_DIM} values; this one has {p.shape[0]}")
    d = np.linalg.norm(g[:, :DLIB_DIM] - p[:DLIB_DIM], axis=1)
    cos = g[:, DLIB_DIM:] @ p[DLIB_DIM:]
    missing = (np.abs(g[:, DLIB_DIM:]).sum(axis=1) == 0) | (not np.any(p[DLIB_DIM:]))
    cos = np.where(missing, np.nan, cos)
    return z_to_distance(fused_z(d, cos, f))


def fused_pair_distances(
    a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """Fused distance of each row pair of two (n, 256) arrays (calibration's pair_distance)."""
    f = shipped_figures()
    d = np.linalg.norm(a[:, :DLIB_DIM] - b[:, :DLIB_DIM], axis=1)
    cos = np.einsum("ij,ij->i", a[:, DLIB_DIM:], b[:, DLIB_DIM:])
    missing = ~np.any(a[:, DLIB_DIM:], axis=1) | ~np.any(b[:, DLIB_DIM:], axis=1)
    return z_to_distance(fused_z(d, np.where(missing, np.nan, cos), f))


def fused_block_distances(
    a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """Fused distances between every row of ``a`` and every row of ``b`` ((n, 256) each)."""
    f = shipped_figures()
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da, db = a[:, :DLIB_DIM], b[:, :DLIB_DIM]
    sq = np.einsum("ij,ij->i", da, da)[:, None] + np.einsum("ij,ij->i", db, db)[None, :]
    d = np.sqrt(np.maximum(sq - 2 * da @ db.T, 0.0))
    cos = a[:, DLIB_DIM:] @ b[:, DLIB_DIM:].T
    missing = ~np.any(a[:, DLIB_DIM:], axis=1)[:, None] | ~np.any(b[:, DLIB_DIM:], axis=1)[None, :]
    return z_to_distance(fused_z(d, np.where(missing, np.nan, cos), f))
