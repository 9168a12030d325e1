"""Fold the shape arithmetic inside an ONNX graph for static input shapes, before import.

Exporters (PyTorch) compute reshape targets, resize scales and the arguments of
ConstantOfShape/Expand/Range/Tile inside the graph (Shape -> Gather -> Unsqueeze -> Concat
-> Reshape). TVM's importer rejects or mishandles many of these ("emit_te now only supports
Tensor that has ShapeExpr shape"); once the input shapes are fixed they are constants.
onnx's shape inference gives the static shapes, its reference evaluator computes the
constant nodes: no operator is reimplemented here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

MAX_ELEMENTS = 1 << 24
"""A constant larger than this (elements) is left to be computed at run time: no bloated models."""

_RANDOM = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"})
_SMALL = 4096  # constants up to this size go to shape inference as values (data propagation needs them)
_ROUNDS = 8  # shape inference again after folding, when folded values make more shapes static

Shapes = dict[str, tuple[int, list[int] | None]]  # name -> (ONNX elem type, static dims or None)
_Proto = TypeVar("_Proto", onnx.ModelProto, onnx.GraphProto)


def fold_constants(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]],
                   max_elements: int = MAX_ELEMENTS) -> onnx.ModelProto:
    """A copy of `model` whose nodes computable from constants and static shapes are folded.

    `input_shapes` gives the static shape of the graph inputs (others keep the model's).
    Shape and Size of a tensor whose shape is static become constants, then every
    default-domain node whose inputs are all constants is evaluated and its outputs become
    initializers. Random nodes, control flow and custom domains are left alone, as are
    results of more than `max_elements`. Dead nodes and initializers are removed; the
    graph's inputs, outputs, opsets and the names of the remaining nodes are kept. The
    result is only valid for these input shapes.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    opsets = {op.domain or "": op.version for op in model.opset_import}
    fixed = {value.name: list(input_shapes[value.name]) for value in graph.input
             if value.name in input_shapes and value.name not in initializers}
    values: dict[str, np.ndarray] = {}  # outputs of folded nodes
    folded: set[int] = set()
    for _ in range(_ROUNDS):
        shapes = _infer_shapes(model, fixed, initializers, values, folded)
        progress, waiting = False, False
        for index, node in enumerate(graph.node):
            if index in folded or not _foldable(node):
                continue
            outputs = _fold(node, opsets, shapes, initializers, values, max_elements)
            if outputs is None:
                waiting |= node.op_type in ("Shape", "Size")
                continue
            values.update(outputs)
            folded.add(index)
            progress = True
        if not (progress and waiting):  # another inference only helps a Shape that waits for one
            break
    if all(graph.node[i].op_type == "Constant" for i in folded):
        return _shell(model)  # nothing to fold: an exact copy
    return _rebuild(model, folded, values)


def static_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int] | None]:
    """Each tensor's static shape (None where it has none) for these input shapes, weights included;
    inferred on the same light copy as folding, so large models are not serialized for it."""
    initializers = {init.name: init for init in model.graph.initializer}
    fixed = {name: list(dims) for name, dims in input_shapes.items()}
    shapes = {name: dims for name, (_, dims) in _infer_shapes(model, fixed, initializers, {}, set()).items()}
    return {**shapes, **{name: list(init.dims) for name, init in initializers.items()}}


def _foldable(node: onnx.NodeProto) -> bool:
    """Default domain, deterministic, no subgraphs: evaluating it once is the same as at run time."""
    return (node.domain in ("", "ai.onnx") and node.op_type not in _RANDOM
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute))


def _fold(node: onnx.NodeProto, opsets: dict[str, int], shapes: Shapes, initializers: Mapping[str, onnx.TensorProto],
          values: dict[str, np.ndarray], max_elements: int) -> dict[str, np.ndarray] | None:
    """The node's outputs by name when they are constants (None when not, or too large)."""
    if node.op_type in ("Shape", "Size"):
        dims = _static_dims(node.input[0], shapes, initializers, values)
        if dims is None:
            return None
        if node.op_type == "Size":
            return {node.output[0]: np.array(math.prod(dims), np.int64)}
        attrs = {a.name: a.i for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return {node.output[0]: np.array(dims[start:end], np.int64)}  # slicing clamps as the spec says
    known = [name for name in node.input if name]
    if not all(name in values or name in initializers for name in known):
        return None
    for name in node.output:
        dims = shapes.get(name, (0, None))[1]
        if name and dims is not None and math.prod(dims) > max_elements:
            return None
    feeds = {name: values[name] if name in values else numpy_helper.to_array(initializers[name]) for name in known}
    results = _evaluate(node, opsets, feeds)
    if results is None:
        return None
    outputs = {}
    for name, result in zip(node.output, results):
        result = np.asarray(result) if isinstance(result, np.generic) else result
        if not name:
            continue
        if not isinstance(result, np.ndarray) or result.size > max_elements or not _same_type(result, shapes.get(name)):
            return None
        outputs[name] = result
    return outputs


def _evaluate(node: onnx.NodeProto, opsets: dict[str, int], feeds: dict[str, np.ndarray]) -> list | None:
    """The node's outputs by onnx's reference evaluator; None when it cannot compute them.

    A bare node is fastest; operators defined as functions of their input types (Gelu,
    GroupNormalization) need a one-node model that states those types.
    """
    try:
        return ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
    except Exception:  # noqa: BLE001 - the reference kernels raise anything; try the typed form
        pass
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
              for name, array in feeds.items()]
    outputs = [helper.make_value_info(name, onnx.TypeProto()) for name in node.output if name]
    model = helper.make_model(helper.make_graph([node], "node", inputs, outputs),
                                   opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    try:
        return ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # noqa: BLE001 - then the node stays, computed at run time
        return None


def _same_type(array: np.ndarray, inferred: tuple[int, list[int] | None] | None) -> bool:
    """The evaluator's result has a dtype ONNX can store, and the one shape inference expects."""
    try:
        elem_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    except (KeyError, ValueError, TypeError):
        return False
    return inferred is None or inferred[0] in (0, elem_type)


def _static_dims(name: str, shapes: Shapes, initializers: Mapping[str, onnx.TensorProto],
                 values: Mapping[str, np.ndarray]) -> list[int] | None:
    if name in values or name in initializers:
        return list(values[name].shape if name in values else initializers[name].dims)
    return shapes.get(name, (0, None))[1]


def _infer_shapes(model: onnx.ModelProto, fixed: Mapping[str, list[int]], initializers: Mapping[str, onnx.TensorProto],
                  values: Mapping[str, np.ndarray], folded: set[int]) -> Shapes:
    """Static shapes of the tensors, by onnx's shape inference with data propagation.

    It runs on a light copy: remaining nodes, small constants as values, large ones only
    as typed inputs, so a 100 MB model is not serialized for it (nor limited to 2 GB).
    """
    graph = model.graph
    inputs = [helper.make_tensor_value_info(v.name, v.type.tensor_type.elem_type, fixed[v.name]) if v.name in fixed else v
              for v in graph.input if v.name not in initializers]
    small: list[onnx.TensorProto] = []
    for name, init in initializers.items():
        if math.prod(init.dims) <= _SMALL and init.data_location != onnx.TensorProto.EXTERNAL:
            small.append(init)
        else:
            inputs.append(helper.make_tensor_value_info(name, init.data_type, list(init.dims)))
    for name, array in values.items():
        if array.size <= _SMALL:
            small.append(numpy_helper.from_array(array, name))
        else:
            elem_type = helper.np_dtype_to_tensor_dtype(array.dtype)
            inputs.append(helper.make_tensor_value_info(name, elem_type, list(array.shape)))
    nodes = [node for i, node in enumerate(graph.node) if i not in folded]
    light = helper.make_model(helper.make_graph(nodes, graph.name, inputs, graph.output, small),
                                   opset_imports=model.opset_import, ir_version=max(model.ir_version, 4),
                                   functions=model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True).graph
    except Exception:  # noqa: BLE001 - without shapes only constant subgraphs fold
        inferred = light.graph
    shapes: Shapes = {}
    for value in [*inferred.input, *inferred.value_info, *inferred.output]:
        tensor = value.type.tensor_type
        dims = ([d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
                if tensor.HasField("shape") else [None])
        shapes[value.name] = (tensor.elem_type, None if None in dims else dims)
    return shapes


def _rebuild(model: onnx.ModelProto, folded: set[int], values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The model without the folded nodes: needed folded values become initializers.

    A graph output computed by a folded node stays produced by a node of the same name
    (a Constant), so the outputs and their producers' names do not change.
    """
    graph = model.graph
    graph_outputs = {value.name for value in graph.output}
    needed = set(graph_outputs)
    kept: list[onnx.NodeProto] = []
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if not any(name in needed for name in node.output):
            continue
        if index in folded and node.op_type != "Constant":
            outputs = [name for name in node.output if name in graph_outputs]
            kept.extend(helper.make_node("Constant", [], [name], name=node.name or None,
                                         value=numpy_helper.from_array(values[name], name)) for name in outputs)
            continue
        kept.append(node)
        needed.update(_used_names(node))
    kept.reverse()
    produced = {name for node in kept for name in node.output}
    new_inits = [numpy_helper.from_array(array, name) for name, array in values.items()
                 if name in needed and name not in produced]
    old_inits = [init for init in graph.initializer if init.name in needed]
    dropped = {init.name for init in graph.initializer} - needed
    inputs = [value for value in graph.input if value.name not in dropped]
    if model.ir_version < 4:  # initializers must be graph inputs then
        inputs += [helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)) for init in new_inits]
    result = _shell(model, "graph")
    result.graph.CopyFrom(_shell(graph, "node", "input", "initializer", "value_info"))
    result.graph.node.extend(kept)
    result.graph.input.extend(inputs)
    result.graph.initializer.extend(old_inits + new_inits)  # the one copy of the weights
    result.graph.value_info.extend(v for v in graph.value_info if v.name in produced)
    return result


def _shell(message: _Proto, *without: str) -> _Proto:
    """A copy of a protobuf message without the named fields (they would be copied twice)."""
    result = type(message)()
    for field, value in message.ListFields():
        if field.name in without:
            continue
        target = getattr(result, field.name)
        if hasattr(target, "extend"):
            target.extend(value)
        elif hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(result, field.name, value)
    return result


def _used_names(node: onnx.NodeProto) -> set[str]:
    """Inputs of the node and every name its subgraphs read (possibly from the outer scope)."""
    names = {name for name in node.input if name}
    for attr in node.attribute:
        for subgraph in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
            for inner in subgraph.node:
                names |= _used_names(inner)
    return names
