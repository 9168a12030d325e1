"""Layers the zoo's architectures share, written the way PyTorch's ONNX exporter writes them.

Exporters write some things in long hand (SiLU as x*Sigmoid(x), GELU through Erf, layer
norm over channels between two Transposes, reshape targets computed from Shape), and
those forms are what an importer meets in the wild, so the zoo keeps them.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from make_models import GraphBuilder

F32 = np.float32


class ZooBuilder(GraphBuilder):
    """GraphBuilder plus dilated/padded convs, multi-output nodes, activations and shape arithmetic."""

    def conv2d(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1,
               pad: int | None = None, gain: float = 1.0) -> str:
        """Conv with a bias; `gain` scales He's weights (below 1 keeps residual sums moderate)."""
        fan_in = cin // groups * kernel * kernel
        w = self.const((self.rng.standard_normal((cout, cin // groups, kernel, kernel)) * gain
                        * np.sqrt(2.0 / fan_in)).astype(F32), "w")
        b = self.const((self.rng.standard_normal(cout) * 0.01).astype(F32), "b")
        pad = dilation * (kernel // 2) if pad is None else pad
        return self.op("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                       dilations=[dilation, dilation], group=groups)

    def linear(self, x: str, cin: int, cout: int, gain: float = 1.0) -> str:
        """MatMul + Add, as exporters write nn.Linear on a tensor of rank > 2."""
        w = self.const((self.rng.standard_normal((cin, cout)) * gain * np.sqrt(2.0 / cin)).astype(F32), "w")
        b = self.const((self.rng.standard_normal(cout) * 0.01).astype(F32), "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def gemm(self, x: str, cin: int, cout: int) -> str:
        """nn.Linear on a matrix: Gemm with transB and a small bias."""
        b = self.const((self.rng.standard_normal(cout) * 0.01).astype(F32), "b")
        return self.op("Gemm", [x, self.weight((cout, cin), cin), b], transB=1)

    def ops(self, op_type: str, inputs: list[str], outputs: int, **attrs) -> list[str]:
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def hardswish(self, x: str) -> str:
        return self.op("HardSwish", [x])

    def hardsigmoid(self, x: str) -> str:
        return self.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)  # PyTorch's relu6(x + 3) / 6

    def sigmoid(self, x: str) -> str:
        return self.op("Sigmoid", [x])

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def gelu(self, x: str) -> str:
        erf = self.op("Erf", [self.op("Div", [x, self.const(F32(np.sqrt(2)))])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, self.const(F32(1))])]), self.const(F32(0.5))])

    def maxpool(self, x: str, kernel: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        return self.op("MaxPool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                       ceil_mode=int(ceil))

    def squeeze_excite(self, x: str, channels: int, squeeze: int, act=None, gate=None) -> str:
        """GlobalAveragePool, 1x1 reduce, act, 1x1 expand, gate, Mul (torchvision's SqueezeExcitation)."""
        act, gate = act or self.relu, gate or self.sigmoid
        s = act(self.conv2d(self.op("GlobalAveragePool", [x]), channels, squeeze, 1))
        return self.op("Mul", [gate(self.conv2d(s, squeeze, channels, 1)), x])

    def layer_norm(self, x: str, channels: int) -> str:
        gamma = self.const((1 + 0.1 * self.rng.standard_normal(channels)).astype(F32), "gamma")
        beta = self.const((0.1 * self.rng.standard_normal(channels)).astype(F32), "beta")
        return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-6)

    def layer_norm_2d(self, x: str, channels: int) -> str:
        """Layer norm over the channels of NCHW: Transpose to NHWC, normalize the last axis, Transpose back."""
        y = self.layer_norm(self.op("Transpose", [x], perm=[0, 2, 3, 1]), channels)
        return self.op("Transpose", [y], perm=[0, 3, 1, 2])

    def ints(self, values: list[int]) -> str:
        return self.const(np.array(values, np.int64), "shape")

    def dim(self, x: str, axis: int) -> str:
        """Shape(x)[axis] as a 1-element tensor: Shape -> Gather (scalar) -> Unsqueeze."""
        scalar = self.op("Gather", [self.op("Shape", [x]), self.const(np.int64(axis), "axis")], axis=0)
        return self.op("Unsqueeze", [scalar, self.ints([0])])

    def dims(self, x: str, start: int, end: int) -> str:
        """Shape(x)[start:end]: Shape -> Slice."""
        return self.op("Slice", [self.op("Shape", [x]), self.ints([start]), self.ints([end])])

    def concat_shape(self, parts: list[str | list[int]]) -> str:
        """A shape computed in the graph: 1-D pieces (tensor names or constant lists) concatenated."""
        return self.op("Concat", [p if isinstance(p, str) else self.ints(p) for p in parts], axis=0)

    def flatten_computed(self, x: str) -> str:
        """x.view(x.size(0), -1) as exported: Reshape to Concat(Unsqueeze(Gather(Shape)), [-1])."""
        return self.op("Reshape", [x, self.concat_shape([self.dim(x, 0), [-1]])])

    def resize(self, x: str, scales: list[float] | None = None, sizes: str | list[int] | None = None,
               transform: str = "half_pixel") -> str:
        """Bilinear Resize by constant scales, constant sizes or sizes computed in the graph."""
        if scales is not None:
            inputs = [x, "", self.const(np.array(scales, F32), "scales")]
        else:
            inputs = [x, "", "", sizes if isinstance(sizes, str) else self.ints(sizes)]
        return self.op("Resize", inputs, mode="linear", coordinate_transformation_mode=transform)

    def image_model(self, name: str, image: int, output: str, output_shape: list[int]) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, image, image])]
        return self.model(name, inputs, output, output_shape)
