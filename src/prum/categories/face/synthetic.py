"""Synthetic 128-D face templates shaped like dlib ResNet embeddings.

Real dlib embeddings are not isotropic Gaussian noise: they sit in a narrow cone
(every template is close to a common mean: cosine 0.87-0.94 to it, norms 1.38-1.63),
people cluster by demographic group, and both the spread between people and the
spread between photos of one person concentrate in a few directions. The model:

    template = mean + group centre + identity offset + quality * sample noise

- ``mean``: a fixed direction of norm 1.39 (the norm of the mean of the real set);
- ``group centre``: one of 12 demographic groups (uneven sizes), drawn with the same
  decaying spectrum as identities; same-group impostors give the left tail of the
  impostor distances that a single Gaussian cannot (real p5 0.73 vs median 0.89);
- ``identity offset``: anisotropic, eigenvalues proportional to i**-0.5 (i = 1..128)
  in a random basis, total variance 0.209;
- ``sample noise``: photo-to-photo variation in another random basis, eigenvalues
  ~ i**-0.5, total variance 0.078, scaled per photo by a log-normal "quality" factor
  (sigma 0.2, mean square 1) so that some photos of a person are far apart.

The constants were fitted (Nelder-Mead on 3000 synthetic identities) to the genuine
and impostor distance percentiles measured on 61 real photos of 13 people (dlib
ResNet, ``REAL_DLIB`` below); ``bench/gallery_search.py`` prints both side by side.

Generation is streamed in chunks, each from its own seeded generator, so a 10M
gallery never exists twice in memory and every run yields the same templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# Measured on this machine: dlib ResNet embeddings of 61 real photos of 13 people.
REAL_DLIB: dict[str, dict[str, float]] = {
    "norm": {"min": 1.38, "median": 1.53, "max": 1.63},
    "genuine": {"min": 0.26, "p5": 0.29, "median": 0.39, "p95": 0.51, "max": 0.61},
    "impostor": {"min": 0.52, "p5": 0.73, "median": 0.89, "p95": 0.99, "max": 1.12},
}

# Prüm data-subject categories used as filter attributes in the benchmark
# (convicted, suspect, unknown at crime scene, missing person, unidentified body).
CATEGORY_SHARES = (0.45, 0.30, 0.15, 0.07, 0.03)
UNKNOWN_DOB = int(np.iinfo(np.int32).min)
_DAYS_PER_YEAR = 365.25
_TODAY_DAYS = 20_400  # 2025-11-08, fixed so that runs are reproducible


@dataclass(frozen=True)
class EmbeddingShape:
    """Constants of the model above (see the module docstring for their origin)."""

    dim: int = 128
    mean_norm: float = 1.39
    groups: int = 12
    group_variance: float = 0.117
    identity_variance: float = 0.209
    identity_decay: float = 0.5
    sample_variance: float = 0.078
    sample_decay: float = 0.5
    quality_sigma: float = 0.20


def _spectrum(dim: int, decay: float, total: float) -> npt.NDArray[np.float64]:
    eig = np.arange(1, dim + 1, dtype=np.float64) ** -decay
    scaled: npt.NDArray[np.float64] = eig * (total / eig.sum())
    return scaled


def _basis(rng: np.random.Generator, dim: int) -> npt.NDArray[np.float64]:
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q


@dataclass
class EmbeddingModel:
    """The fixed geometry (mean, bases, groups); data is drawn from it with any seed."""

    shape: EmbeddingShape = field(default_factory=EmbeddingShape)
    seed: int = 20_240_601

    def __post_init__(self) -> None:
        s = self.shape
        rng = np.random.default_rng(self.seed)
        mean = rng.standard_normal(s.dim)
        self.mean = mean * (s.mean_norm / np.linalg.norm(mean))
        identity_basis = _basis(rng, s.dim)
        self._identity_map = (
            np.sqrt(_spectrum(s.dim, s.identity_decay, s.identity_variance))[:, None]
            * identity_basis.T
        )
        self._sample_map = (
            np.sqrt(_spectrum(s.dim, s.sample_decay, s.sample_variance))[:, None]
            * _basis(rng, s.dim).T
        )
        group_map = (
            np.sqrt(_spectrum(s.dim, s.identity_decay, s.group_variance))[:, None]
            * identity_basis.T
        )
        self.group_centres = rng.standard_normal((s.groups, s.dim)) @ group_map
        self.group_weights = rng.dirichlet(np.full(s.groups, 2.0))
        # float32 from here on: generation speed, and templates are float32 anyway
        self._identity_map = self._identity_map.astype(np.float32)
        self._sample_map = self._sample_map.astype(np.float32)
        self._base = (self.mean + self.group_centres).astype(np.float32)

    def identities(self, n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """Centres of ``n`` new people."""
        group = rng.choice(self.shape.groups, size=n, p=self.group_weights)
        offset = rng.standard_normal((n, self.shape.dim), np.float32) @ self._identity_map
        centres: npt.NDArray[np.float32] = self._base[group] + offset
        return centres

    def samples(
        self, centres: npt.NDArray[np.float32], rng: np.random.Generator
    ) -> npt.NDArray[np.float32]:
        """One photo's template for each centre."""
        sigma = self.shape.quality_sigma
        quality = np.exp(sigma * rng.standard_normal(len(centres), np.float32) - sigma**2)
        noise = rng.standard_normal((len(centres), self.shape.dim), np.float32) @ self._sample_map
        templates: npt.NDArray[np.float32] = centres + quality[:, None] * noise
        return templates


@dataclass
class Chunk:
    """A slice of a synthetic gallery, with the probes drawn from its identities."""

    ids: npt.NDArray[np.int64]  # record ids, 1-based and ascending over the gallery
    vectors: npt.NDArray[np.float32]
    identity: npt.NDArray[np.int64]  # person of each template
    categories: npt.NDArray[np.uint8]
    dob_days: npt.NDArray[np.int32]
    probe_vectors: npt.NDArray[np.float32]  # held-out photos of enrolled people
    probe_identity: npt.NDArray[np.int64]


def gallery_chunks(
    n_templates: int,
    *,
    seed: int = 1,
    chunk_templates: int = 250_000,
    probe_rate: float = 0.001,
    mean_extra_photos: float = 1.5,
    model: EmbeddingModel | None = None,
) -> Iterator[Chunk]:
    """Stream a gallery of people with 1 + Poisson(``mean_extra_photos``) photos each.

    Each enrolled person independently gets a held-out probe photo with probability
    ``probe_rate`` (not in the gallery). The last person may lose photos so that the
    gallery has exactly ``n_templates`` templates.
    """
    model = model or EmbeddingModel()
    done = 0
    person = 0
    for index in range(0, -(-n_templates // chunk_templates)):
        rng = np.random.default_rng([seed, index])
        want = min(chunk_templates, n_templates - done)
        people = int(want / (1 + mean_extra_photos)) + 16
        photos = 1 + np.minimum(rng.poisson(mean_extra_photos, people), 9)
        while photos.sum() < want:
            photos = np.concatenate([photos, 1 + rng.poisson(mean_extra_photos, 16)])
        people = int(np.searchsorted(np.cumsum(photos), want)) + 1
        photos = photos[:people]
        photos[-1] -= int(photos.sum()) - want
        centres = model.identities(people, rng)
        owner = np.repeat(np.arange(people), photos)
        vectors = model.samples(centres[owner], rng)
        probes = np.flatnonzero(rng.random(people) < probe_rate)
        age_years = rng.uniform(10, 80, want)
        dob = (_TODAY_DAYS - age_years * _DAYS_PER_YEAR).astype(np.int32)
        dob[rng.random(want) < 0.03] = UNKNOWN_DOB
        yield Chunk(
            ids=np.arange(done + 1, done + want + 1, dtype=np.int64),
            vectors=vectors,
            identity=owner + person,
            categories=rng.choice(len(CATEGORY_SHARES), want, p=CATEGORY_SHARES).astype(np.uint8),
            dob_days=dob,
            probe_vectors=model.samples(centres[probes], rng),
            probe_identity=probes + person,
        )
        done += want
        person += people


def distance_percentiles(
    vectors: npt.NDArray[np.float32],
    identity: npt.NDArray[np.int64],
    *,
    pairs: int = 200_000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Genuine / impostor L2 distance percentiles and norms, comparable to REAL_DLIB."""
    rng = np.random.default_rng(seed)
    order = np.argsort(identity, kind="stable")
    ident = identity[order]
    starts = np.flatnonzero(np.r_[True, ident[1:] != ident[:-1]])
    counts = np.diff(np.r_[starts, len(ident)])
    multi = np.flatnonzero(counts > 1)
    pick = rng.choice(multi, size=min(pairs, len(multi)))
    a = rng.integers(0, counts[pick])
    b = (a + rng.integers(1, counts[pick])) % counts[pick]
    ga, gb = order[starts[pick] + a], order[starts[pick] + b]
    genuine = np.linalg.norm(vectors[ga] - vectors[gb], axis=1)
    ia, ib = rng.integers(0, len(ident), (2, pairs))
    keep = identity[ia] != identity[ib]
    impostor = np.linalg.norm(vectors[ia[keep]] - vectors[ib[keep]], axis=1)
    norms = np.linalg.norm(vectors[rng.integers(0, len(vectors), pairs)], axis=1)

    def summary(d: npt.NDArray[np.float32]) -> dict[str, float]:
        p = np.percentile(d, [0, 5, 50, 95, 100])
        return dict(zip(("min", "p5", "median", "p95", "max"), map(float, p), strict=True))

    n = summary(norms)
    return {
        "norm": {"min": n["min"], "median": n["median"], "max": n["max"]},
        "genuine": summary(genuine),
        "impostor": summary(impostor),
    }


# Subject categories of the benchmark's category codes (CATEGORY_SHARES order).
_SUBJECTS = (
    "convicted",
    "suspect",
    "unidentified_suspect",
    "missing_person",
    "unidentified_remains",
)
SYNTHETIC_PROVENANCE = "synthetic background template (not a real person)"


def add_synthetic(gallery: Any, n: int, *, seed: int = 1, batch: int = 20_000) -> int:
    """Add ``n`` synthetic templates to a FaceGallery, flagged synthetic everywhere.

    They are centred on the gallery's own real templates when it has any (so they
    compete with real people as a larger gallery's would), otherwise on the model's
    mean. They carry no image: an examiner can never mistake one for a person.
    """
    from prum.categories.face.fused import MODEL_SET, model_set_of
    from prum.categories.face.store import NewRecord
    from prum.categories.interface import SubjectCategory

    model = EmbeddingModel()
    model_id = gallery.model_id or gallery.pipeline.model_id
    fused = model_set_of(model_id) == MODEL_SET
    _, _, real = gallery.store.sample_templates(2_000, seed=seed, model_id=model_id)
    real = real[:, : len(model.mean)] if len(real) else real  # dlib's half of fused ones
    shift = (real.mean(axis=0) - model.mean).astype(np.float32) if len(real) else 0.0
    epoch = dt.date(1970, 1, 1)
    added = 0
    for chunk in gallery_chunks(n, seed=seed, chunk_templates=batch, probe_rate=0.0, model=model):
        vectors = chunk.vectors + shift
        if fused:
            vectors = np.hstack([vectors, _sface_half(chunk.identity, seed, added)])
        records = [
            NewRecord(
                subject_category=SubjectCategory(_SUBJECTS[int(category)]),
                provenance=SYNTHETIC_PROVENANCE,
                model_id=model_id,
                template=vector,
                date_of_birth=None if dob == UNKNOWN_DOB else epoch + dt.timedelta(days=int(dob)),
                person_key=f"synthetic:{seed}:{int(person)}",
                synthetic=True,
            )
            for vector, category, dob, person in zip(
                vectors, chunk.categories, chunk.dob_days, chunk.identity, strict=True
            )
        ]
        gallery.add_records(records)
        added += len(records)
    gallery.save_index()
    return added


SFACE_DIM = 128  # face/fusion.py SFACE_DIM (not imported: this module stays model-free)


def _sface_half(identity: npt.NDArray[Any], seed: int, offset: int) -> npt.NDArray[np.float32]:
    """SFace halves of synthetic "dlib+sface" templates (face/fused.py).

    Random unit vectors: their cosines (mean 0, sd 1/sqrt(128) = 0.088) are close to
    SFace's real impostor cosines (mean 0.08, sd 0.09 on LFW, fusion_figures.json), so
    synthetic people compete with real ones as strangers. Photos of one synthetic person
    share a direction (cosine about 0.6 between them).
    """
    rng = np.random.default_rng([seed, offset, 31])
    people, which = np.unique(identity, return_inverse=True)
    centres = rng.standard_normal((len(people), SFACE_DIM))
    x = centres[which] + 0.8 * rng.standard_normal((len(identity), SFACE_DIM))
    unit: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit
