"""Settings of the face category: the pipeline, its quality minimums and the vector
index (nested in the node's :class:`prum.config.Settings` as ``face`` and ``index``).

Every threshold has a comment saying where its default comes from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class QualityMinimums(BaseModel):
    """Minimum per quality component (0-100); a face below any of them is refused.

    Probes are judged more leniently than enrolments: a CCTV still is what it is,
    while a custody photo can be retaken (ISO/IEC 29794-5 distinguishes the two uses).
    """

    overall: float = 0.0
    inter_eye_distance: float = 0.0
    sharpness: float = 0.0
    exposure: float = 0.0
    contrast: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    expression_neutrality: float = 0.0
    single_face: float = 0.0


def _probe_minimums() -> QualityMinimums:
    # Only refuse probes that cannot work: a face under ~20 px between the eyes or
    # turned far beyond the 5-point aligner's range (inter-eye score 10 ~ 18 px,
    # yaw score 20 ~ 63 degrees, see face/quality.py).
    return QualityMinimums(inter_eye_distance=10, yaw=20, sharpness=5)


def _enrol_minimums() -> QualityMinimums:
    # Reference images should be near-frontal, sharp and well exposed
    # (ICAO 9303 / ISO/IEC 39794-5 capture guidance).
    return QualityMinimums(overall=30, inter_eye_distance=25, yaw=40, sharpness=10, exposure=10)


class FaceSettings(BaseModel):
    # 40 MP covers every current phone and DSLR still; larger is refused before
    # decoding (and Pillow's own bomb guard is set to the same bound).
    max_pixels: int = 40_000_000
    # dlib's HOG finds faces down to about 80 px; upsampling once halves that.
    # Images whose longer side is below this are upsampled before detection.
    upsample_below: int = 1200
    # Long side to which huge photos are reduced before detection (speed); the
    # embedding is computed from the full-resolution crop.
    detect_max_side: int = 1600
    detector: str = "hog"  # "hog" or "cnn" (dlib MMOD, slower, finds harder faces)
    landmarker: str = "mediapipe"  # "mediapipe" (Apache-2.0) or "dlib68" (non-commercial)
    # "dlib+sface" (dlib and SFace fused, face/fused.py): on LFW split by identity it
    # missed 2.6 % of mates at FMR 1e-4 where dlib alone missed 42 % (docs/benchmarks.md).
    # "dlib" (dlib alone) or "onnx:/path/model.onnx" (an operator's model, uncalibrated).
    # A gallery keeps the model set it was enrolled with; `prum face reenrol` changes it.
    embedder: str = "dlib+sface"
    # dlib's published operating point for its ResNet model (LFW): same person if
    # distance < 0.6. Used as the default decision threshold of candidate lists.
    decision_distance: float = 0.6
    probe_minimums: QualityMinimums = Field(default_factory=_probe_minimums)
    enrol_minimums: QualityMinimums = Field(default_factory=_enrol_minimums)
    # Candidate list cap (DESIGN.md section 7: default 10, hard maximum 100).
    max_candidates: int = Field(default=10, ge=1, le=100)
    # "dlib+sface" galleries: how many candidates the index finds on dlib's half before
    # the fused score ranks them. dlib alone had the mate within its first 10 for 99.2 %
    # of LFW probes (issue 31); 200 leaves room for galleries thousands of times larger.
    fused_shortlist: int = Field(default=200, ge=1, le=10_000)
    # A rate from the shipped LFW reference alone is multiplied by this: at a predicted
    # 1e-3, 2.3e-3 and 3.1e-3 were observed on two other collections of portraits
    # (issue 31; harsh lighting was worse still: calibrate on the node's own photos).
    reference_fmr_factor: float = Field(default=3.0, ge=1.0)
    # The node's own impostor distribution speaks alone from this many comparisons: 10
    # impostors observed at 1e-5 (calibration.MIN_OBSERVED). Below it, the higher of own
    # and reference rates is shown.
    own_calibration_min_comparisons: int = Field(default=1_000_000, ge=0)
    # Type-10 transactions (face/type10.py): "int-i" is INTERPOL's profile, the one
    # police systems exchange; "ansi-nist" the standard's wider code tables (JPEG 2000).
    type10_profile: Literal["int-i", "ansi-nist"] = "int-i"
    # INT-I: mugshots enrolled at SAP level 30 or above (ANSI/NIST-ITL 1-2011 Table 20).
    type10_min_enrol_sap: int = Field(default=30, ge=0, le=99)


class IndexSettings(BaseModel):
    # Figures below: bench/gallery_search.py (docs/benchmarks.md) and the measurements
    # in the docstring of prum/categories/face/index.py, one thread, top 50.
    # A FAISS factory string forces one index kind; empty chooses by gallery size.
    factory: str = ""
    # Below this many templates the exact (flat) index is both fast and simplest: an
    # exact top-50 costs ~50 ns per template on one core, so 20k stay near 1 ms, inside
    # the 2 ms latency target.
    exact_below: int = 20_000
    # From exact_below up to compressed_above: HNSW over full vectors; above: IVF with
    # 4-bit fast-scan codes and exact re-ranking. 0 skips HNSW: on dlib-shaped data
    # (several photos per person) HNSW32 found the true mate 88 % of the time at 1M
    # (97 % at efSearch 2048, 9 ms) while IVF-PQ fast-scan found all of them in 1.6 ms.
    compressed_above: int = 0
    hnsw_m: int = 32
    # efConstruction >= 100 (DESIGN.md section 4); only used when HNSW is chosen.
    hnsw_ef_construction: int = 100
    hnsw_ef_search: int = 96
    # 256 of the 2048 inverted lists: scanning 1/8 of the gallery kept threshold
    # recall (entries within 0.6) at 0.997 at 1M; 1/16 of 1024 lists gave 0.956.
    ivf_nprobe: int = 256
    # Above large_above templates: 65536 lists (two-level k-means; their centres are
    # searched exhaustively), so that a search scans a far smaller share of the
    # gallery; ivf_large_nprobe of them per search (1/64 of the gallery, ~470k codes
    # at 30M). Chosen for 30M (issue 27) before it was measured: bench/gallery_search.py
    # --sizes 30000000 --sweep 512:4,2048:4 measures it against its neighbours.
    large_above: int = 16_000_000
    ivf_large_nprobe: int = 1024
    # How many approximate candidates are re-ranked exactly, as a multiple of k:
    # with one 4-bit code per dimension, 4 x 50 gave the same recall as 6 x 50.
    rerank_factor: int = 4
