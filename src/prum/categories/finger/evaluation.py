"""Accuracy of a fingerprint matcher on a labelled set, and score calibration.

The protocol is FVC's (Maio, Maltoni, Cappelli, Wayman, Jain, "FVC2000: fingerprint
verification competition", IEEE TPAMI 24(3), 2002): genuine comparisons are all pairs
of impressions of the same finger (28 per finger of 8 impressions), impostor
comparisons the first impression of each finger against the first impression of every
other finger. For calibration the impostor set is widened to every pair of
impressions of different fingers (2,880 for 10 x 8), which is what a false-match rate
must be estimated from.

    .venv/bin/python -m prum.categories.finger.evaluation ../shared/data/fingerprints/fvc_db4_b \
        [--calibration finger_calibration.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from prum.errors import InvalidCalibration, InvalidLabelledSet

Key = tuple[int, int]  # (finger, impression)

_NAME = re.compile(r"^(\d+)_(\d+)$")


def load_fvc(directory: Path) -> dict[Key, NDArray[np.uint8]]:
    """The images of an FVC-style set (files ``F_I.tif``: finger F, impression I)."""
    from prum.categories.finger.images import decode_image

    images: dict[Key, NDArray[np.uint8]] = {}
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.stem)
        if m is None or path.suffix.lower() not in {".tif", ".tiff", ".png", ".bmp", ".wsq"}:
            continue
        images[(int(m[1]), int(m[2]))] = decode_image(path.read_bytes()).pixels
    if len({f for f, _ in images}) < 2:
        raise InvalidLabelledSet(f"{directory} holds no FVC set (F_I.tif of two fingers or more)")
    return images


def fvc_pairs(keys: Sequence[Key]) -> tuple[list[tuple[Key, Key]], list[tuple[Key, Key]]]:
    """(genuine, impostor) pairs of the FVC protocol."""
    by_finger: dict[int, list[int]] = {}
    for f, i in sorted(keys):
        by_finger.setdefault(f, []).append(i)
    genuine = [
        ((f, a), (f, b)) for f, imp in by_finger.items() for a, b in itertools.combinations(imp, 2)
    ]
    firsts = [(f, imp[0]) for f, imp in by_finger.items()]
    impostor = list(itertools.combinations(firsts, 2))
    return genuine, impostor


def all_impostor_pairs(keys: Sequence[Key]) -> list[tuple[Key, Key]]:
    """Every pair of impressions of different fingers (for calibration)."""
    return [(a, b) for a, b in itertools.combinations(sorted(keys), 2) if a[0] != b[0]]


@dataclass(frozen=True)
class Rates:
    eer: float  # equal error rate (fraction)
    eer_threshold: float
    fmr100: float  # lowest FNMR with FMR <= 1% (fraction)
    fmr1000: float  # lowest FNMR with FMR <= 0.1%
    genuine: int
    impostor: int


def error_rates(genuine: Sequence[float], impostor: Sequence[float]) -> Rates:
    """EER, FMR100 and FMR1000 as FVC defines them (higher score = more similar).

    The EER is where FMR(t) and FNMR(t) cross; with discrete scores, the mean of the
    two rates at the threshold where they are closest (FVC2000 section 4).
    """
    g = np.sort(np.asarray(genuine, np.float64))
    i = np.sort(np.asarray(impostor, np.float64))
    if len(g) == 0 or len(i) == 0:
        raise InvalidLabelledSet("error rates need genuine and impostor scores")
    thresholds = np.unique(np.concatenate([g, i, [np.inf]]))
    fmr = 1.0 - np.searchsorted(i, thresholds, side="left") / len(i)  # impostors >= t
    fnmr = np.searchsorted(g, thresholds, side="left") / len(g)  # genuine < t
    at = int(np.argmin(np.abs(fmr - fnmr)))

    def best_fnmr(limit: float) -> float:
        ok = fmr <= limit
        return float(fnmr[ok].min()) if ok.any() else 1.0

    return Rates(
        eer=float((fmr[at] + fnmr[at]) / 2),
        eer_threshold=float(thresholds[at]),
        fmr100=best_fnmr(0.01),
        fmr1000=best_fnmr(0.001),
        genuine=len(g),
        impostor=len(i),
    )


def score_pairs(
    pairs: Sequence[tuple[Key, Key]], score: Callable[[Key, Key], float]
) -> list[float]:
    return [score(a, b) for a, b in pairs]


@dataclass(frozen=True)
class Calibration:
    """The false-match rate of a score: the share of impostor comparisons scoring as
    high or higher (an empirical survival function, no model fitted)."""

    impostors: NDArray[np.float64]  # sorted
    source: str

    @classmethod
    def from_scores(cls, scores: Sequence[float], source: str) -> Calibration:
        values = np.sort(np.asarray(scores, np.float64))
        if len(values) < 100 or not np.isfinite(values).all():
            raise InvalidCalibration("a calibration needs 100 finite impostor scores or more")
        return cls(values, source)

    def false_match_rate(self, score: float) -> tuple[float, str]:
        """(rate, words). With no impostor as high, the rate given is 1/n, an upper
        bound the words make explicit."""
        n = len(self.impostors)
        above = n - int(np.searchsorted(self.impostors, score, side="left"))
        if above == 0:
            return 1.0 / n, (
                f"no impostor of {n:,} scored this high ({self.source}): false match rate"
                f" below 1 in {n:,}"
            )
        rate = above / n
        return rate, f"{above:,} of {n:,} impostors scored this high ({self.source})"

    def to_json(self) -> str:
        return json.dumps(
            {"version": 1, "source": self.source, "impostors": self.impostors.tolist()}
        )

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        try:
            data = json.loads(text)
            if data.get("version") != 1:
                raise InvalidCalibration("unknown version of a finger calibration file")
            return cls.from_scores([float(v) for v in data["impostors"]], str(data["source"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidCalibration(f"the finger calibration file is corrupt: {exc}") from exc


def main() -> None:
    from prum.categories.finger.match import compare, cylinders
    from prum.categories.finger.minutiae import MindtctExtractor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--calibration", type=Path, help="write the impostor scores here")
    args = parser.parse_args()
    images = load_fvc(args.directory)
    extractor = MindtctExtractor()
    cyl = {k: cylinders(extractor.extract(v)) for k, v in images.items()}

    def score(a: Key, b: Key) -> float:
        return compare(cyl[a], cyl[b]).score

    genuine, impostor = fvc_pairs(list(images))
    rates = error_rates(score_pairs(genuine, score), score_pairs(impostor, score))
    print(
        f"EER {rates.eer:.2%} at {rates.eer_threshold:.4f}; FMR100 {rates.fmr100:.2%};"
        f" {rates.genuine} genuine, {rates.impostor} impostor comparisons"
    )
    if args.calibration:
        scores = score_pairs(all_impostor_pairs(list(images)), score)
        cal = Calibration.from_scores(scores, f"impostors of {args.directory.name}")
        args.calibration.write_text(cal.to_json())
        print(f"{len(scores)} impostor scores written to {args.calibration}")


if __name__ == "__main__":
    main()
