"""Embedders: the dlib default and an operator-supplied ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prum.categories.face.config import FaceSettings
from prum.categories.face.embed import DlibEmbedder, OnnxEmbedder, make_embedder
from prum.categories.face.gallery import FaceGallery
from prum.categories.face.pipeline import FacePipeline
from prum.categories.face.types import Template
from prum.config import Settings
from prum.demo.samples import SampleSet
from prum.errors import InvalidModel, ModelMismatch


def tiny_onnx_model(path: Path, *, size: int = 32, dim: int = 16, layout: str = "nchw") -> Path:
    """A real (if useless) face embedder: flatten the chip and project it to ``dim``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = [1, 3, size, size] if layout == "nchw" else [1, size, size, 3]
    weights = np.random.default_rng(7).normal(size=(3 * size * size, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["chip"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "tiny-embedder",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_dlib_model_id_names_the_weights() -> None:
    embedder = DlibEmbedder()
    assert embedder.model_id.startswith("dlib-resnet-v1@")
    assert len(embedder.model_id.split("@")[1]) == 12


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_onnx_model_is_loaded_with_its_shape(tmp_path: Path, layout: str) -> None:
    embedder = OnnxEmbedder(tiny_onnx_model(tmp_path / "tiny.onnx", layout=layout))
    assert embedder.dim == 16
    assert embedder.chip_size == 32
    assert embedder.model_id.startswith("onnx-tiny@")


@pytest.mark.realdata
def test_onnx_embedder_runs_in_the_pipeline(tmp_path: Path, samples: SampleSet) -> None:
    model = tiny_onnx_model(tmp_path / "tiny.onnx")
    pipeline = FacePipeline(FaceSettings(embedder=f"onnx:{model}"))
    data = samples.images[0][0].read_bytes()
    first = pipeline.extract(data, use="probe", check=False).template
    again = pipeline.extract(data, use="probe", check=False).template
    assert first is not None and again is not None
    assert first.dim == 16
    assert np.isclose(np.linalg.norm(first.vector), 1.0, atol=1e-5)
    np.testing.assert_allclose(first.vector, again.vector, atol=1e-6)


def test_unloadable_onnx_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InvalidModel, match="cannot be loaded"):
        OnnxEmbedder(bad)
    with pytest.raises(InvalidModel, match="does not exist"):
        OnnxEmbedder(tmp_path / "missing.onnx")
    with pytest.raises(InvalidModel, match="unknown embedder"):
        make_embedder("resnet9000")


def test_gallery_refuses_to_mix_models(tmp_path: Path) -> None:
    gallery = FaceGallery(Settings(data_dir=tmp_path))
    from prum.categories.face.store import NewRecord
    from prum.categories.interface import SubjectCategory

    vec = np.ones(128, np.float32)
    gallery.add_records(
        [NewRecord(SubjectCategory.SUSPECT, "test", "dlib-resnet-v1@aaaaaaaaaaaa", vec)]
    )
    with pytest.raises(ModelMismatch, match="cannot be compared"):
        gallery.add_records([NewRecord(SubjectCategory.SUSPECT, "test", "onnx-x@b", vec)])
    with pytest.raises(ModelMismatch):
        gallery.search_template(Template("onnx-x@b", vec))
    assert gallery.store.count() == 1
