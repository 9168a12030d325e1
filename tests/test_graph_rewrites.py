"""Graph rewrites before lowering: N-d matmuls as 2-d ones with their epilogue, against ONNX Runtime."""
import os
import sys

import numpy as np
import onnxruntime
import tvm
from onnx import TensorProto, helper
from tvm import relax

from autotune.compile import compile_model, extract_tasks, schedule_model
from autotune.model import load_onnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_models import GraphBuilder  # noqa: E402


def mlp_on_nhwc(h: int = 5, w: int = 7, c: int = 8, hidden: int = 32):
    """ConvNeXt's MLP as exported: MatMul on [1, H, W, C], bias, GELU by Erf, MatMul, bias, residual add."""
    g = GraphBuilder()
    up = g.dense("input", c, hidden)
    half = g.op("Mul", [up, g.const(np.float32(0.5))])
    gelu = g.op("Mul", [half, g.op("Add", [g.const(np.float32(1)), g.op("Erf", [g.op("Div", [up, g.const(np.float32(np.sqrt(2)))])])])])
    out = g.op("Add", ["input", g.dense(gelu, hidden, c)])
    return g.model("mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, h, w, c])], out, [1, h, w, c])


def test_nd_matmuls_become_2d_with_their_epilogue_fused(host):
    model = mlp_on_nhwc()
    module = load_onnx(model)
    tasks = extract_tasks(module, host)
    assert sorted(str(t.task.workload) for t in tasks) == [
        "matmul(K=32, M=35, N=8, dtype=float32)", "matmul(K=8, M=35, N=32, dtype=float32)"]
    up, down = (t.functions for t in sorted(tasks, key=lambda t: t.task.workload["K"]))
    # one function per matmul, with its epilogue: bias and GELU; bias and the residual add
    assert len(up) == len(down) == 1 and "erf" in up[0] and down[0].count("_add") == 2, (up, down)
    for t in tasks:  # rows on one axis: the A operand of each matmul function is 2-d
        func = module[t.functions[0]]
        assert len(func.params[0].shape) == 2, func
    feeds = {"input": np.random.default_rng(0).standard_normal([1, 5, 7, 8]).astype(np.float32)}
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    scheduled, coverage = schedule_model(module, host, tuned=False)
    assert not coverage.failed
    vm = relax.VirtualMachine(compile_model(scheduled, host), tvm.cpu())
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(feeds["input"])).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_sigmoid_and_clip_become_ops_that_vectorize_and_keep_blocked_layouts(host):
    """SiLU (x * Sigmoid(x)) and HardSwish after a blocked conv: fused into its epilogue with fast exp, no layout transform."""
    g = GraphBuilder()
    x = g.conv("input", 16, 32, 3)
    x = g.op("Mul", [x, g.op("Sigmoid", [x])])
    x = g.op("HardSwish", [g.conv(x, 32, 32, 1)])
    model = g.model("silu", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16, 12, 12])], x, [1, 32, 12, 12])
    module = load_onnx(model)
    functions = [name for t in extract_tasks(module, host) for name in t.functions]
    assert len(functions) == 2 and "fast_exp" in functions[0] + functions[1], functions
    transforms = [gv.name_hint for gv in module.functions if "layout_transform" in gv.name_hint]
    assert len(transforms) <= 2, transforms  # into the blocked layout and out of it, nothing between
    feeds = {"input": np.random.default_rng(0).standard_normal([1, 16, 12, 12]).astype(np.float32)}
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    scheduled, coverage = schedule_model(module, host, tuned=False)
    assert not coverage.failed and not coverage.plain_layout
    vm = relax.VirtualMachine(compile_model(scheduled, host), tvm.cpu())
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(feeds["input"])).numpy(), expected, rtol=1e-4, atol=1e-5)
