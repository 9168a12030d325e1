"""ONNX models: import to Relax, legalize and fuse to PrimFuncs, compile for a device."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from targets import Device


class ModelError(ValueError):
    """The model file or its input shapes cannot be used (a user mistake, said in one line)."""


def load_onnx(source: str | os.PathLike | onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None) -> tvm.IRModule:
    """The model as a Relax module, legalized and fused (`relax.get_pipeline("zero")`).

    `shapes` gives input shapes by name; needed for inputs with symbolic dimensions.
    """
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        try:
            model = onnx.load(os.fspath(source))
        except FileNotFoundError:
            raise ModelError(f"no such file: {os.fspath(source)!r}") from None
        except Exception:  # noqa: BLE001 - protobuf's decode errors have no common base
            raise ModelError(f"{os.fspath(source)!r} is not an ONNX model") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ModelError(f"invalid ONNX model: {str(error).strip().splitlines()[0]}") from None
    inputs = input_shapes(model)
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - set(inputs))
    if unknown:
        raise ModelError(f"unknown input {unknown[0]!r}; the model's inputs: {', '.join(inputs)}")
    for name, dims in inputs.items():
        if name not in shapes and any(not isinstance(d, int) for d in dims):
            raise ModelError(f"input {name!r} has a dimension without size {dims}; give it with --input-shape {name}:...")
    module = from_onnx(model, shape_dict={**{n: list(d) for n, d in inputs.items()}, **shapes})
    return relax.get_pipeline("zero")(module)


def input_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Graph inputs that are not initializers, with their dims (names for symbolic ones)."""
    initializers = {init.name for init in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return shapes


def build(module: tvm.IRModule, device: Device) -> relax.Executable:
    return tvm.compile(module, target=device.tvm_target)
