"""Alignment and embedding: from a face box to a template.

Two embedders share one small interface. The dlib ResNet (128-D, 99.38 % on LFW as
published) is the embedded default; an operator may plug in an ONNX model (for
example an ArcFace export) run through onnxruntime. Every template carries the id of
the model that made it (name plus a hash of the weights), so a gallery can refuse to
mix templates that are not comparable.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import dlib
import face_recognition_models
import numpy as np
from numpy.typing import NDArray

from prum.categories.face.types import FaceBox, Pixels, Template
from prum.errors import InvalidModel


@cache
def _file_digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()[:12]


class Aligner:
    """dlib's 5-point landmark model (eye corners and nose; Boost-licensed, free to use).

    It places the face for the embedder, whatever landmarker the quality stage uses.
    """

    def __init__(self) -> None:
        self._predictor: Any = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )

    def shape(self, pixels: Pixels, box: FaceBox) -> Any:
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        return self._predictor(pixels, rect)

    @staticmethod
    def points(shape: Any) -> NDArray[np.float64]:
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


class Embedder(Protocol):
    """Turns an aligned face into a fixed-length vector."""

    model_id: str
    dim: int
    #: whether vectors are unit length (distances then lie in [0, 2])
    normalised: bool

    def embed(self, pixels: Pixels, shape: Any) -> Template: ...


class DlibEmbedder:
    """dlib's ResNet-29 face descriptor (128-D); same person if L2 distance < 0.6."""

    dim = 128
    normalised = False

    def __init__(self) -> None:
        path = face_recognition_models.face_recognition_model_location()
        self.model_id = f"dlib-resnet-v1@{_file_digest(path)}"
        self._model: Any = dlib.face_recognition_model_v1(path)

    def embed(self, pixels: Pixels, shape: Any) -> Template:
        vector = np.asarray(self._model.compute_face_descriptor(pixels, shape), dtype=np.float32)
        return Template(self.model_id, vector)


class OnnxEmbedder:
    """An operator-supplied ONNX model (ArcFace-style: aligned RGB chip in, vector out).

    The input layout (NCHW or NHWC) and chip size are read from the model's input
    shape; pixels are scaled as ArcFace exports expect, ``(x - 127.5) / 128``, and the
    output is L2-normalised.
    """

    normalised = True

    def __init__(self, path: Path):
        import onnxruntime

        if not path.is_file():
            raise InvalidModel(f"ONNX model {path} does not exist")
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InvalidModel(f"ONNX model {path} cannot be loaded: {exc}") from exc
        model_input = self._session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4:
            raise InvalidModel(f"ONNX model input must be 4-D (batch, image); it is {shape}")
        if shape[1] == 3 and isinstance(shape[2], int):
            self._layout, self.chip_size = "nchw", int(shape[2])
        elif shape[3] == 3 and isinstance(shape[1], int):
            self._layout, self.chip_size = "nhwc", int(shape[1])
        else:
            raise InvalidModel(f"ONNX model input {shape} is neither NCHW nor NHWC RGB")
        self._input_name = model_input.name
        probe = self._run(np.zeros((self.chip_size, self.chip_size, 3), dtype=np.uint8))
        self.dim = int(probe.shape[0])
        self.model_id = f"onnx-{path.stem}@{_file_digest(str(path))}"

    def _run(self, chip: Pixels) -> NDArray[np.float32]:
        x = (chip.astype(np.float32) - 127.5) / 128.0
        x = x.transpose(2, 0, 1)[None] if self._layout == "nchw" else x[None]
        out = np.asarray(self._session.run(None, {self._input_name: x})[0], dtype=np.float32)
        return out.reshape(-1)

    def embed(self, pixels: Pixels, shape: Any) -> Template:
        chip = np.asarray(dlib.get_face_chip(pixels, shape, size=self.chip_size, padding=0.25))
        vector = self._run(chip)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidModel("the ONNX model returned a zero or non-finite vector")
        return Template(self.model_id, vector / norm)


def make_embedder(spec: str) -> Embedder:
    """``"dlib"`` or ``"onnx:/path/to/model.onnx"`` (configuration value)."""
    if spec == "dlib":
        return DlibEmbedder()
    if spec.startswith("onnx:"):
        return OnnxEmbedder(Path(spec.removeprefix("onnx:")))
    raise InvalidModel(f"unknown embedder {spec!r}; use 'dlib' or 'onnx:/path/model.onnx'")
