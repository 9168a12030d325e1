"""Models and checks the GPU tests share: a small conv + matmul model, the demo models' small versions,
inputs, ONNX Runtime's output, and a compiled model run in a Relax VM on the device's runtime device."""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import tvm
from onnx import TensorProto, helper
from tvm import relax

from autotune.compile import compile_model_with_launches, functions_without_kernels, schedule_model
from autotune.model import import_onnx, lower
from targets import get_device
from targets.kernel_launch import check_launches

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402

GPU_PRESETS = ["mali-bifrost", "mali-valhall", "adreno-6xx", "adreno-7xx"]

SMALL = {
    "resnet18": lambda: make_models.resnet18(image=32, classes=10, width=8),
    "mobilenetv2": lambda: make_models.mobilenetv2(image=32, classes=10),
    "bert": lambda: make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50),
}


def conv_matmul() -> onnx.ModelProto:
    """Conv 3->8 3x3, ReLU, Conv 8->16 3x3 stride 2, Flatten, MatMul + Add to 10 classes; 1x3x16x16 in."""
    g = make_models.GraphBuilder(seed=1)
    x = g.op("Relu", [g.conv("input", 3, 8, 3)])
    x = g.op("Flatten", [g.conv(x, 8, 16, 3, stride=2)])
    x = g.dense(x, 16 * 8 * 8, 10)
    return g.model("conv_matmul", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])], x, [1, 10])


def odd_elementwise() -> onnx.ModelProto:
    """ReLU and a per-channel scale on 1x7x11x13 (1001 elements, 7 * 11 * 13): no work group of a warp's
    multiple divides it, so the work-group rule pads the launch and the kernel guards the extra threads."""
    g = make_models.GraphBuilder(seed=2)
    scale = g.const(np.linspace(0.5, 2.0, 7, dtype=np.float32).reshape(1, 7, 1, 1), "scale")
    x = g.op("Mul", [g.op("Relu", ["input"]), scale])
    return g.model("odd_elementwise", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 7, 11, 13])], x,
                   [1, 7, 11, 13])


def feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Random float inputs; token ids below 50; an attention mask with its last two positions masked."""
    rng = np.random.default_rng(0)
    result = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == TensorProto.INT64:
            data = rng.integers(0, 50, shape).astype(np.int64)
            if value.name == "attention_mask":
                data = np.ones(shape, np.int64)
                data[..., -2:] = 0
            result[value.name] = data
        else:
            result[value.name] = rng.standard_normal(shape).astype(np.float32)
    return result


def onnxruntime_output(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def run_vm(executable, device, model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The compiled model's output in a Relax VM on the device's runtime device (PoCL for a GPU here)."""
    dev = device.runtime_device()
    vm = relax.VirtualMachine(executable, dev)
    out = vm["main"](*[tvm.runtime.tensor(inputs[v.name], dev) for v in model.graph.input])
    return (out[0] if isinstance(out, tvm.ir.Array) else out).numpy()


def errors(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error relative to the output's largest magnitude)."""
    worst = float(np.abs(actual - expected).max())
    return worst, worst / float(np.abs(expected).max())


def opencl_source(executable) -> str:
    """The OpenCL C of a compiled model (the "opencl" module in its import tree)."""
    pending, sources = [executable.mod], []
    while pending:
        module = pending.pop()
        if module.kind == "opencl":
            sources.append(module.inspect_source())
        pending.extend(module.imports)
    return "\n".join(sources)


def compile_and_run(model: onnx.ModelProto, preset: str):
    """The model flow of `autotune compile` for the preset, with this machine as the GPU's host; the launches
    and the outputs of the model on PoCL and in ONNX Runtime."""
    device = get_device(preset).driven_from_this_machine()
    module = lower(import_onnx(model), layout=device.conv_layout)
    scheduled, coverage = schedule_model(module, device)
    executable, launches = compile_model_with_launches(scheduled, device)
    inputs = feeds(model)
    return device, scheduled, coverage, launches, run_vm(executable, device, model, inputs), onnxruntime_output(model, inputs)


def assert_every_function_is_a_kernel_within_limits(scheduled, launches, gpu):
    assert functions_without_kernels(scheduled, launches) == []
    assert [v for v in check_launches(launches, gpu) if v.hard] == []
    assert all(launch.threads <= gpu.max_threads_per_work_group and not launch.dynamic for launch in launches)
