"""Reference impostor distributions shipped with the package, one per model set.

A node that has not yet compared enough of its own people's photos still has to say how
often a stranger scores as high as a candidate. It then uses a reference: the impostor
scores of the LFW fitting people (at most 20 photos each, so a few people do not make the
distribution theirs), fitted by bench/face_accuracy.py and kept here as a serialised
:class:`~prum.categories.face.calibration.ImpostorDistribution` (its knots are the
figures). The statement names the reference and says the node has not checked it.

Calibration does not travel (issue 31): at a predicted 1e-3, 2.3e-3 to 3.1e-3 was observed
on other collections of ordinary portraits and 50 to 90 times more under harsh lighting.
A rate from the reference alone is therefore multiplied by a safety factor
(``FaceSettings.reference_fmr_factor``) before it is shown.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from prum.categories.face.calibration import ImpostorDistribution

SHIPPED_DIR = Path(__file__).resolve().parent
# Model set name -> file beside this module.
REFERENCE_FILES = {
    "dlib+sface": "reference_dlib+sface.bin",
    "dlib": "reference_dlib.bin",
}


@cache
def reference_for(model_set: str) -> ImpostorDistribution | None:
    """The shipped reference of a model set ("dlib", "dlib+sface"), or None."""
    name = REFERENCE_FILES.get(model_set)
    if name is None:
        return None
    resource = resources.files("prum.categories.face").joinpath(name)
    if not resource.is_file():
        return None
    return ImpostorDistribution.from_bytes(resource.read_bytes())
