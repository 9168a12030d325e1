"""Demo models (scripts/make_models.py) and ONNX import: TVM against onnx's reference evaluator."""
import os
import sys

import numpy as np
import onnx
import pytest
import tvm
from onnx.reference import ReferenceEvaluator
from tvm import relax

from autotune.compile import compile_model
from autotune.model import ModelError, load_onnx
from targets import get_device

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402

SMALL = {
    "resnet18": lambda: make_models.resnet18(image=32, classes=10, width=8),
    "mobilenetv2": lambda: make_models.mobilenetv2(image=32, classes=10),
    "bert": lambda: make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50),
}


def feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    result = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            data = rng.integers(0, 50, shape).astype(np.int64)
            if value.name == "attention_mask":
                data = np.ones(shape, np.int64)
                data[..., -2:] = 0  # padding at the end must be masked out
            result[value.name] = data
        else:
            result[value.name] = rng.standard_normal(shape).astype(np.float32)
    return result


@pytest.mark.parametrize("name", SMALL)
def test_small_demo_models_match_onnx_reference(name):
    model = SMALL[name]()
    inputs = feeds(model)
    expected = ReferenceEvaluator(model).run(None, inputs)[0]
    vm = relax.VirtualMachine(compile_model(load_onnx(model), get_device("host")), tvm.cpu())
    actual = vm["main"](*[tvm.runtime.tensor(inputs[v.name], tvm.cpu()) for v in model.graph.input]).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 1e-3  # the graph computes something


def test_full_size_models_are_valid_and_import(tmp_path):
    for name, expected_funcs in [("resnet18", "conv2d"), ("mobilenetv2", "conv2d"), ("bert", "matmul")]:
        model = make_models.MODELS[name]()
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, path)
        module = load_onnx(path)
        names = [gv.name_hint for gv in module.functions]
        assert any(expected_funcs in n for n in names), names


def test_bad_models_and_shapes_are_one_line_errors(tmp_path):
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("hello")
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_onnx(not_onnx)
    with pytest.raises(ModelError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
    model = SMALL["bert"]()
    with pytest.raises(ModelError, match="unknown input 'tokens'"):
        load_onnx(model, {"tokens": [1, 8]})
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "seq"
    with pytest.raises(ModelError, match="dimension without size"):
        load_onnx(model)
    broken = SMALL["bert"]()
    broken.graph.node[0].input[0] = "nowhere"
    with pytest.raises(ModelError, match="invalid ONNX model"):
        load_onnx(broken)
