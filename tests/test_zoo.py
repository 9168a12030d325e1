"""The zoo of real architectures (scripts/zoo.py): the models are valid (ONNX Runtime agrees with
onnx's reference evaluator), their small versions keep the full ones' operators, and they go
through this project's import, lowering, scheduling and build with the reference's results."""
import collections
import functools
import os
import sys

import numpy as np
import onnx
import pytest
import tvm
from onnx.reference import ReferenceEvaluator
from tvm import relax

from autotune.bench import ORTRunner, random_inputs
from autotune.compile import Coverage, compile_model, schedule_model
from autotune.model import load_onnx, resolve_shapes
from numpy_check import unwritten_outputs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402
from zoo import ZOO  # noqa: E402


@functools.lru_cache(maxsize=None)
def small_case(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray], np.ndarray]:
    """The small model, random inputs and the reference evaluator's output (shared by the tests)."""
    model = ZOO[name][1]()
    feeds = random_inputs(model, resolve_shapes(model))
    return model, feeds, ReferenceEvaluator(model).run(None, feeds)[0]


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Within 1e-4 of the output's largest magnitude and 1e-3 absolute (a deep net's small outputs carry its big ones' rounding)."""
    assert actual.shape == expected.shape
    error = float(np.abs(actual.astype(np.float64) - expected).max())
    assert error <= 1e-4 * float(np.abs(expected).max()) + 1e-6 and error <= 1e-3, error


def run_compiled(model: onnx.ModelProto, feeds: dict[str, np.ndarray], device) -> tuple[np.ndarray, Coverage]:
    """This project's path with template defaults: load_onnx, schedule_model, compile_model, the Relax VM."""
    scheduled, coverage = schedule_model(load_onnx(model), device, tuned=False)
    vm = relax.VirtualMachine(compile_model(scheduled, device), tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(x) for x in feeds.values()])
    return (out[0] if isinstance(out, tvm.ir.Array) else out).numpy(), coverage


def assert_compiled_matches(model: onnx.ModelProto, feeds: dict[str, np.ndarray], expected: np.ndarray, device) -> None:
    """Right numbers first, then every function scheduled by its template or a default schedule."""
    actual, coverage = run_compiled(model, feeds, device)
    assert_close(actual, expected)
    assert not coverage.failed and not coverage.unscheduled, coverage.failed + coverage.unscheduled


def signature(model: onnx.ModelProto) -> set[str]:
    """Operator types, and conv kinds (kernel size, depthwise/grouped, dilated): what a small version must keep."""
    kinds = {node.op_type for node in model.graph.node}
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            out_channels, group = weights[node.input[1]][0], attrs.get("group", 1)
            grouping = "depthwise" if group == out_channels > 1 else "grouped" if group > 1 else "dense"
            dilated = "dilated" if max(attrs.get("dilations", [1])) > 1 else ""
            kinds.add(f"Conv {attrs['kernel_shape'][0]}x{attrs['kernel_shape'][1]} {grouping} {dilated}".strip())
        if node.op_type in ("MaxPool", "Resize"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            kinds.add(f"{node.op_type} ceil_mode={attrs.get('ceil_mode', 0)} inputs={len(node.input)}")
    return kinds


def test_the_zoo_is_registered_in_make_models():
    assert set(make_models.ZOO_NAMES) == set(ZOO)
    assert all(name in make_models.MODELS for name in ZOO)


@pytest.mark.parametrize("name", list(ZOO))
def test_small_version_keeps_the_full_models_kinds_of_operator(name):
    assert signature(ZOO[name][1]()) == signature(ZOO[name][0]())


@pytest.mark.parametrize("name", list(ZOO))
def test_small_model_is_valid_and_onnxruntime_agrees_with_the_reference(name):
    pytest.importorskip("onnxruntime")
    model, feeds, expected = small_case(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    assert np.isfinite(expected).all() and np.abs(expected).max() > 1e-3 and np.abs(expected).max() < 1e3
    assert_close(ORTRunner(model, feeds, threads=1).output(), expected)


@pytest.mark.parametrize("name", list(ZOO))
def test_small_model_through_the_compile_path_matches_the_reference(name, host):
    model, feeds, expected = small_case(name)
    assert_compiled_matches(model, feeds, expected, host)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_full_model_through_the_compile_path_matches_onnxruntime(name, host):
    pytest.importorskip("onnxruntime")
    model = ZOO[name][0]()
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    feeds = random_inputs(model, resolve_shapes(model))
    expected = ORTRunner(model, feeds, threads=host.num_threads).output()
    assert np.isfinite(expected).all()
    assert_compiled_matches(model, feeds, expected, host)


@pytest.mark.parametrize("name", ["shufflenet_v2", "squeezenet"])
def test_every_function_of_a_small_model_writes_its_whole_output(name, host):
    """Padded channels and ceil-mode pools are where a schedule can leave part of an output
    unwritten (the model is then right only when the allocator hands it zeros)."""
    scheduled, _ = schedule_model(load_onnx(small_case(name)[0]), host, tuned=False)
    assert unwritten_outputs(scheduled, host.tvm_target) == {}

