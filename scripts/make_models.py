#!/usr/bin/env python3
"""Demo ONNX models with random weights, built with onnx's own helpers (no torch).

    python scripts/make_models.py [--out models] [--only resnet18,mobilenetv2,bert]

- resnet18.onnx: ResNet-18, 1x3x224x224 -> 1x1000 (batch norm folded into conv biases)
- mobilenetv2.onnx: MobileNetV2 1.0, 1x3x224x224 -> 1x1000 (ReLU6 as Clip)
- bert.onnx: a BERT-style encoder, 4 layers, hidden 256, 4 heads, seq 128, with an
  attention mask: input_ids and attention_mask (int64, 1x128) -> 1x128x256
- with --only, the zoo (zoo.py): mobilenetv3_small, efficientnet_b0, shufflenet_v2, resnext50,
  regnet_y_400mf, deeplabv3, convnext_tiny, inception, squeezenet and vit at their real
  sizes, 1x3x224x224 -> 1x1000 (deeplabv3: -> 1x21x224x224)

Every model is checked with `onnx.checker`. The builders take sizes, so tests can make
small versions of the same graphs and compare runtimes on them cheaply.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
#: The IR version of opset 17 (onnx's default is newer than ONNX Runtime reads).
IR_VERSION = 8


class GraphBuilder:
    """Nodes and random initializers of one graph, with fresh names."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array: np.ndarray, prefix: str = "const") -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int) -> str:
        """He-scaled random weights keep activations in a sane range through deep nets."""
        return self.const((self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), "w")

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> str:
        w = self.weight((cout, cin // groups, kernel, kernel), cin // groups * kernel * kernel)
        b = self.const((self.rng.standard_normal(cout) * 0.01).astype(np.float32), "b")
        pad = kernel // 2
        return self.op("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride],
                       pads=[pad] * 4, group=groups)

    def relu6(self, x: str) -> str:
        return self.op("Clip", [x, self.const(np.float32(0)), self.const(np.float32(6))])

    def dense(self, x: str, cin: int, cout: int) -> str:
        y = self.op("MatMul", [x, self.weight((cin, cout), cin)])
        return self.op("Add", [y, self.const(np.zeros(cout, np.float32), "b")])

    def classifier(self, x: str, channels: int, classes: int) -> str:
        pooled = self.op("Flatten", [self.op("GlobalAveragePool", [x])])
        return self.op("Gemm", [pooled, self.weight((classes, channels), channels),
                                self.const(np.zeros(classes, np.float32), "b")], transB=1)

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], output: str, output_shape: list[int]) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [output], ["output"]))
        graph = helper.make_graph(self.nodes, name, inputs,
                                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, output_shape)],
                                  self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="autotune",
                                  ir_version=IR_VERSION)
        onnx.checker.check_model(model, full_check=True)
        return model


def resnet18(image: int = 224, classes: int = 1000, width: int = 64) -> onnx.ModelProto:
    g = GraphBuilder()
    x = g.op("Relu", [g.conv("input", 3, width, 7, stride=2)])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = width
    for stage, cout in enumerate([width, 2 * width, 4 * width, 8 * width]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = g.op("Relu", [g.conv(x, cin, cout, 3, stride)])
            y = g.conv(y, cout, cout, 3)
            shortcut = g.conv(x, cin, cout, 1, stride) if (stride != 1 or cin != cout) else x
            x, cin = g.op("Relu", [g.op("Add", [y, shortcut])]), cout
    out = g.classifier(x, cin, classes)
    return g.model("resnet18", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, image, image])],
                   out, [1, classes])


MOBILENETV2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenetv2(image: int = 224, classes: int = 1000) -> onnx.ModelProto:
    g = GraphBuilder()
    x, cin = g.relu6(g.conv("input", 3, 32, 3, stride=2)), 32
    for expand, cout, repeats, first_stride in MOBILENETV2_BLOCKS:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            hidden = cin * expand
            y = g.relu6(g.conv(x, cin, hidden, 1)) if expand != 1 else x
            y = g.relu6(g.conv(y, hidden, hidden, 3, stride, groups=hidden))
            y = g.conv(y, hidden, cout, 1)
            x, cin = (g.op("Add", [x, y]) if stride == 1 and cin == cout else y), cout
    x = g.relu6(g.conv(x, cin, 1280, 1))
    out = g.classifier(x, 1280, classes)
    return g.model("mobilenetv2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, image, image])],
                   out, [1, classes])


def bert(layers: int = 4, hidden: int = 256, heads: int = 4, seq: int = 128, vocab: int = 1000) -> onnx.ModelProto:
    g = GraphBuilder()
    head = hidden // heads

    def layer_norm(x: str) -> str:
        return g.op("LayerNormalization", [x, g.const(np.ones(hidden, np.float32)), g.const(np.zeros(hidden, np.float32))],
                    axis=-1, epsilon=1e-12)

    def split_heads(x: str) -> str:  # [1, S, H] -> [1, heads, S, head]
        x = g.op("Reshape", [x, g.const(np.array([1, seq, heads, head], np.int64))])
        return g.op("Transpose", [x], perm=[0, 2, 1, 3])

    embeddings = g.const((g.rng.standard_normal((vocab, hidden)) * 0.02).astype(np.float32), "embedding")
    positions = g.const((g.rng.standard_normal((1, seq, hidden)) * 0.02).astype(np.float32), "positions")
    x = layer_norm(g.op("Add", [g.op("Gather", [embeddings, "input_ids"]), positions]))
    # attention_mask 1 = attend, 0 = padding -> additive bias 0 / -10000, shaped [1, 1, 1, S]
    keep = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [g.const(np.float32(1)), keep]), g.const(np.float32(-10000))])
    bias = g.op("Unsqueeze", [bias, g.const(np.array([1, 2], np.int64))])
    for _ in range(layers):
        q, k, v = (split_heads(g.dense(x, hidden, hidden)) for _ in range(3))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = g.op("Add", [g.op("Mul", [scores, g.const(np.float32(1 / np.sqrt(head)))]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]),
                                   g.const(np.array([1, seq, hidden], np.int64))])
        x = layer_norm(g.op("Add", [x, g.dense(context, hidden, hidden)]))
        up = g.dense(x, hidden, 4 * hidden)
        gelu = g.op("Mul", [g.op("Mul", [up, g.const(np.float32(0.5))]),
                            g.op("Add", [g.const(np.float32(1)), g.op("Erf", [g.op("Mul", [up, g.const(np.float32(1 / np.sqrt(2)))])])])])
        x = layer_norm(g.op("Add", [x, g.dense(gelu, 4 * hidden, hidden)]))
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, [1, seq]) for name in ("input_ids", "attention_mask")]
    return g.model("bert", inputs, x, [1, seq, hidden])


MODELS = {"resnet18": resnet18, "mobilenetv2": mobilenetv2, "bert": bert}
DEMO_MODELS = tuple(MODELS)
ZOO_NAMES = ("mobilenetv3_small", "efficientnet_b0", "shufflenet_v2", "resnext50", "regnet_y_400mf", "deeplabv3",
             "convnext_tiny", "inception", "squeezenet", "vit")


def _zoo_model(name: str) -> Callable[..., onnx.ModelProto]:
    """A zoo model's full-size builder, imported on first use: zoo imports GraphBuilder from this file."""
    def build(**sizes) -> onnx.ModelProto:
        from zoo import ZOO
        return ZOO[name][0](**sizes)
    return build


MODELS.update({name: _zoo_model(name) for name in ZOO_NAMES})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models", help="output folder (default models/)")
    parser.add_argument("--only", default=",".join(DEMO_MODELS),
                        help="comma-separated (default: the demo models): " + ", ".join(MODELS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.only.split(","):
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        path = os.path.join(args.out, f"{name}.onnx")
        onnx.save(MODELS[name](), path)
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
