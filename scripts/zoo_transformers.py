"""The zoo's transformer-era architectures: ConvNeXt (convs with a transformer's block) and ViT.

Both normalize with LayerNormalization over the last axis and compute GELU through Erf,
as PyTorch exports them; ViT's attention reshapes to heads with a shape computed from
Shape, as exporters do for `x.size()[:-1] + (heads, head_size)`.
"""
from __future__ import annotations

import numpy as np
import onnx

from zoo_layers import F32, ZooBuilder


def convnext_tiny(image: int = 224, classes: int = 1000, depths: tuple[int, ...] = (3, 3, 9, 3),
                  dims: tuple[int, ...] = (96, 192, 384, 768)) -> onnx.ModelProto:
    """Patchify stem, blocks of 7x7 depthwise + channels-last LayerNorm/MLP + layer scale, LN + 2x2 downsampling."""
    g = ZooBuilder()
    x = g.layer_norm_2d(g.conv2d("input", 3, dims[0], 4, stride=4, pad=0), dims[0])
    for stage, (depth, dim) in enumerate(zip(depths, dims)):
        if stage > 0:
            x = g.conv2d(g.layer_norm_2d(x, dims[stage - 1]), dims[stage - 1], dim, 2, stride=2, pad=0)
        for _ in range(depth):
            y = g.conv2d(x, dim, dim, 7, groups=dim)
            y = g.layer_norm(g.op("Transpose", [y], perm=[0, 2, 3, 1]), dim)
            y = g.linear(g.gelu(g.linear(y, dim, 4 * dim)), 4 * dim, dim)
            y = g.op("Transpose", [y], perm=[0, 3, 1, 2])
            scale = g.const(g.rng.uniform(0.05, 0.2, (dim, 1, 1)).astype(F32), "layer_scale")  # real init: 1e-6
            x = g.op("Add", [g.op("Mul", [y, scale]), x])
    x = g.op("Flatten", [g.layer_norm_2d(g.op("GlobalAveragePool", [x]), dims[-1])])
    return g.image_model("convnext_tiny", image, g.gemm(x, dims[-1], classes), [1, classes])


def _attention(g: ZooBuilder, x: str, tokens: int, hidden: int, heads: int) -> str:
    head = hidden // heads
    # [1, T, hidden] -> [1, T, heads, head]: the batch and token counts come from Shape(x)
    shape = g.concat_shape([g.dim(x, 0), g.dim(x, 1), [heads, head]])
    q, k, v = (g.op("Reshape", [g.linear(x, hidden, hidden), shape]) for _ in range(3))
    q, v = (g.op("Transpose", [t], perm=[0, 2, 1, 3]) for t in (q, v))
    k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
    scores = g.op("Mul", [g.op("MatMul", [q, k]), g.const(F32(1 / np.sqrt(head)))])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), g.ints([1, tokens, hidden])])
    return g.linear(context, hidden, hidden, gain=0.5)


def vit(image: int = 224, classes: int = 1000, patch: int = 16, layers: int = 4, hidden: int = 192, heads: int = 3,
        mlp: int = 768) -> onnx.ModelProto:
    """Pre-norm ViT: patch conv, class token, position embedding, attention + GELU MLP blocks, class-token head."""
    g = ZooBuilder()
    patches = (image // patch) ** 2
    tokens = patches + 1
    x = g.conv2d("input", 3, hidden, patch, stride=patch, pad=0)
    x = g.op("Transpose", [g.op("Reshape", [x, g.ints([1, hidden, patches])])], perm=[0, 2, 1])
    cls = g.const((0.02 * g.rng.standard_normal((1, 1, hidden))).astype(F32), "class_token")
    x = g.op("Concat", [cls, x], axis=1)
    x = g.op("Add", [x, g.const((0.02 * g.rng.standard_normal((1, tokens, hidden))).astype(F32), "positions")])
    for _ in range(layers):
        x = g.op("Add", [x, _attention(g, g.layer_norm(x, hidden), tokens, hidden, heads)])
        y = g.linear(g.gelu(g.linear(g.layer_norm(x, hidden), hidden, mlp)), mlp, hidden, gain=0.5)
        x = g.op("Add", [x, y])
    x = g.op("Gather", [g.layer_norm(x, hidden), g.const(np.int64(0), "index")], axis=1)  # the class token: [1, hidden]
    out = g.gemm(x, hidden, classes)
    return g.image_model("vit", image, out, [1, classes])
