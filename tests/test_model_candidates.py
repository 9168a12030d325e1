"""A model's task is tuned on the model's own function: its epilogue fused, its weight packed once, untimed."""
import copy
import os
import random
import sys

import numpy as np
import pytest
import tvm
from onnx import TensorProto, helper

from autotune.compile import extract_tasks
from autotune.measure import ErrorKind, LocalBuilder, LocalRunner, TimingOptions
from autotune.measure.candidate import candidate_module, scheduled_function
from autotune.model import load_onnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_models import GraphBuilder  # noqa: E402


def projection_with_gelu(tokens: int = 197, width: int = 192, out: int = 576):
    """A transformer's projection as exported: MatMul by a weight, bias Add, then GELU (Erf)."""
    g = GraphBuilder()
    w, b = g.weight((width, out), width), g.const(np.linspace(-1, 1, out).astype(np.float32))
    x = g.op("Add", [g.op("MatMul", ["input", w]), b])
    x = g.op("Mul", [g.op("Mul", [x, g.op("Add", [g.op("Erf", [g.op("Div", [x, g.const(np.float32(2 ** 0.5))])]),
                                                   g.const(np.float32(1))])]), g.const(np.float32(0.5))])
    model = g.model("projection", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [tokens, width])],
                    x, [tokens, out])
    return model


@pytest.fixture(scope="module")
def projection_task(host):
    model = projection_with_gelu()
    (model_task,) = extract_tasks(load_onnx(model), host)
    return model_task.task


def test_candidate_is_the_models_function_with_its_weight_packed_outside(projection_task, host):
    """prepack_<weight> then main computes what the model's unscheduled function (TVM's plain loops) does."""
    task = projection_task
    assert "erf" in task.function.script()  # the model's function: the GELU is fused after the matmul
    module, packed = candidate_module(task.measure_input(task.default_config))
    *params, out = task.function.params
    weight = next(i for i, p in enumerate(params) if [int(d) for d in p.shape] == [192, 576])
    assert [index for index, _, _ in packed] == [weight]  # only the weight is packed
    rng = np.random.default_rng(0)
    args = [rng.uniform(-1, 1, [int(d) for d in p.shape]).astype("float32") for p in params]
    reference = tvm.compile(task.function.with_attr("global_symbol", "main"), target="llvm")
    expected = tvm.runtime.empty((197, 576), "float32")
    reference["main"](*[tvm.runtime.tensor(a) for a in args], expected)
    candidate = tvm.compile(module, target=host.tvm_target)
    tensors = [tvm.runtime.tensor(a) for a in args]
    _, shape, dtype = packed[0]
    tensors[weight] = tvm.runtime.empty(shape, dtype)
    candidate.mod[f"prepack_{weight}"](tvm.runtime.tensor(args[weight]), tensors[weight])
    actual = tvm.runtime.empty((197, 576), "float32")
    candidate.mod["main"](*tensors, actual)
    assert np.abs(expected.numpy()).max() > 1  # the GELU epilogue ran in both: outputs are not all near zero
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_tuning_measures_the_models_function_and_checks_it(projection_task):
    """The runner packs the weight, times the compute and checks it against the unscheduled function."""
    task = projection_task
    inputs = [task.measure_input(task.default_config)] + [task.measure_input(c) for c in
                                                          task.space.sample(random.Random(1), 2)]
    with LocalBuilder(n_workers=2, timeout=60) as builder, LocalRunner(TimingOptions(repeat=2, min_repeat_ms=5)) as runner:
        builds = builder.build(inputs)
        assert all(b.packed for b in builds)
        results = runner.run(inputs, builds)
    assert [r.error for r in results] == [ErrorKind.NONE] * 3, [r.message for r in results]


def test_scheduling_leaves_the_models_function_as_it_was(projection_task):
    """Every config starts from the same function (a schedule of a function made from it with `with_attr` changed it)."""
    task = projection_task
    before = copy.deepcopy(task.function)
    for config in [task.default_config] + task.space.sample(random.Random(3), 4):
        scheduled_function(task.measure_input(config))
    tvm.ir.assert_structural_equal(task.function, before)
