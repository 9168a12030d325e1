"""A zoo of real CNN and transformer architectures with random weights, built with onnx's helpers.

The demo models (make_models.py) use only plain convs; these add what real exported
models contain and importers trip on: grouped, dilated and odd-channel convs, squeeze-
excite, channel shuffles and reshapes whose shapes are computed in the graph, ceil-mode
pooling, bilinear Resize, layer norm around Transposes, attention.

`ZOO[name] = (full, small)`: `full(**sizes)` defaults to the real architecture (1x3x224x224,
1000 classes); `small()` keeps every kind of operator and the odd channel counts on a small
image with fewer blocks, for tests. Batch norm is left out (it folds into conv biases);
residual branches end in a conv with a small gain so that activations stay moderate.
"""
from __future__ import annotations

from collections.abc import Callable

import onnx

from zoo_layers import ZooBuilder
from zoo_transformers import convnext_tiny, vit

RESIDUAL_GAIN = 0.5

# in, kernel, expanded, out, squeeze-excite, hardswish, stride (torchvision's MobileNetV3-Small table)
MOBILENETV3_SMALL = [(16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2),
                     (24, 3, 88, 24, False, False, 1), (24, 5, 96, 40, True, True, 2),
                     (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
                     (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1),
                     (48, 5, 288, 96, True, True, 2), (96, 5, 576, 96, True, True, 1),
                     (96, 5, 576, 96, True, True, 1)]


def _divisible(value: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: the SE squeeze widths (e.g. 576 // 4 -> 144, 96 // 4 -> 24)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenetv3_small(image: int = 224, classes: int = 1000,
                      blocks: list[tuple] = MOBILENETV3_SMALL) -> onnx.ModelProto:
    """Hardswish, squeeze-excite gated by HardSigmoid, 3x3 and 5x5 depthwise, odd widths (72, 88, 120, 144, 288)."""
    g = ZooBuilder()
    x = g.hardswish(g.conv2d("input", 3, 16, 3, stride=2))
    for cin, kernel, expanded, cout, se, hs, stride in blocks:
        act = g.hardswish if hs else g.relu
        y = act(g.conv2d(x, cin, expanded, 1)) if expanded != cin else x
        y = act(g.conv2d(y, expanded, expanded, kernel, stride, groups=expanded))
        if se:
            y = g.squeeze_excite(y, expanded, _divisible(expanded / 4), gate=g.hardsigmoid)
        residual = stride == 1 and cin == cout
        y = g.conv2d(y, expanded, cout, 1, gain=RESIDUAL_GAIN if residual else 1.0)
        x = g.op("Add", [x, y]) if residual else y
    cin = blocks[-1][3]
    x = g.hardswish(g.conv2d(x, cin, 6 * cin, 1))
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    x = g.gemm(g.hardswish(g.gemm(x, 6 * cin, 1024)), 1024, classes)
    return g.image_model("mobilenetv3_small", image, x, [1, classes])


# expand, kernel, stride, in, out, layers (torchvision's EfficientNet-B0 table)
EFFICIENTNET_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                   (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


def efficientnet_b0(image: int = 224, classes: int = 1000, stages: list[tuple] = EFFICIENTNET_B0) -> onnx.ModelProto:
    """MBConv with SiLU as x*Sigmoid(x) and squeeze-excite to a quarter of the block input (480 -> 20)."""
    g = ZooBuilder()
    x = g.silu(g.conv2d("input", 3, 32, 3, stride=2))
    for expand, kernel, first_stride, stage_in, cout, layers in stages:
        for i in range(layers):
            cin, stride = (stage_in, first_stride) if i == 0 else (cout, 1)
            hidden = cin * expand
            y = g.silu(g.conv2d(x, cin, hidden, 1)) if expand != 1 else x
            y = g.silu(g.conv2d(y, hidden, hidden, kernel, stride, groups=hidden))
            y = g.squeeze_excite(y, hidden, max(1, cin // 4), act=g.silu)  # 480 -> 20: a quarter of the block's input
            residual = stride == 1 and cin == cout
            y = g.conv2d(y, hidden, cout, 1, gain=RESIDUAL_GAIN if residual else 1.0)
            x = g.op("Add", [y, x]) if residual else y
    x = g.silu(g.conv2d(x, stages[-1][4], 1280, 1))
    return g.image_model("efficientnet_b0", image, g.classifier(x, 1280, classes), [1, classes])


def _channel_shuffle(g: ZooBuilder, x: str, channels: int) -> str:
    """x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, -1, h, w) with the sizes taken from x.size()."""
    n, h, w = g.dim(x, 0), g.dim(x, 2), g.dim(x, 3)
    half = g.op("Div", [g.dim(x, 1), g.ints([2])])
    y = g.op("Reshape", [x, g.concat_shape([n, [2], half, h, w])])
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3, 4])
    return g.op("Reshape", [y, g.concat_shape([n, [-1], h, w])])


def shufflenet_v2(image: int = 224, classes: int = 1000, repeats: tuple[int, ...] = (4, 8, 4),
                  channels: tuple[int, ...] = (24, 116, 232, 464, 1024)) -> onnx.ModelProto:
    """Split, two-branch units, channel shuffles reshaped by shapes computed from Shape, like exporters write them."""
    g = ZooBuilder()
    x = g.maxpool(g.relu(g.conv2d("input", 3, channels[0], 3, stride=2)), 3, 2, pad=1)
    cin = channels[0]
    for stage, cout in enumerate(channels[1:-1]):
        half = cout // 2
        for i in range(repeats[stage]):
            if i == 0:  # stride 2: both branches see the whole input
                left = g.relu(g.conv2d(g.conv2d(x, cin, cin, 3, 2, groups=cin), cin, half, 1))
                right = g.relu(g.conv2d(x, cin, half, 1))
            else:  # stride 1: torch.chunk(x, 2, dim=1) as Split
                left, right = g.ops("Split", [x, g.ints([half, half])], 2, axis=1)
                right = g.relu(g.conv2d(right, half, half, 1))
            right = g.relu(g.conv2d(g.conv2d(right, half, half, 3, 2 if i == 0 else 1, groups=half), half, half, 1))
            x, cin = _channel_shuffle(g, g.op("Concat", [left, right], axis=1), cout), cout
    x = g.relu(g.conv2d(x, cin, channels[-1], 1))
    x = g.op("ReduceMean", [x], axes=[2, 3], keepdims=0)  # x.mean([2, 3])
    out = g.gemm(x, channels[-1], classes)
    return g.image_model("shufflenet_v2", image, out, [1, classes])


def _stem(g: ZooBuilder, width: int) -> str:
    """ResNet's 7x7 stride-2 conv and 3x3 stride-2 max pool."""
    return g.maxpool(g.relu(g.conv2d("input", 3, width, 7, stride=2)), 3, 2, pad=1)


def resnext50(image: int = 224, classes: int = 1000, layers: tuple[int, ...] = (3, 4, 6, 3), groups: int = 32,
              group_width: int = 4) -> onnx.ModelProto:
    """ResNeXt-50 32x4d: bottlenecks around 3x3 convs of 32 groups."""
    g = ZooBuilder()
    x, cin = _stem(g, 64), 64
    for stage, planes in enumerate([64, 128, 256, 512]):
        width, cout = planes * group_width * groups // 64, planes * 4
        for i in range(layers[stage]):
            stride = 2 if stage > 0 and i == 0 else 1
            y = g.relu(g.conv2d(x, cin, width, 1))
            y = g.relu(g.conv2d(y, width, width, 3, stride, groups=groups))
            y = g.conv2d(y, width, cout, 1, gain=RESIDUAL_GAIN)
            shortcut = g.conv2d(x, cin, cout, 1, stride, gain=RESIDUAL_GAIN) if stride != 1 or cin != cout else x
            x, cin = g.relu(g.op("Add", [y, shortcut])), cout
    return g.image_model("resnext50", image, g.classifier(x, cin, classes), [1, classes])


def regnet_y_400mf(image: int = 224, classes: int = 1000, depths: tuple[int, ...] = (1, 3, 6, 6),
                   widths: tuple[int, ...] = (48, 104, 208, 440), group_width: int = 8) -> onnx.ModelProto:
    """RegNetY-400MF: 3x3 convs in groups of 8 channels (6, 13, 26, 55 groups) and squeeze-excite."""
    g = ZooBuilder()
    x, cin = g.relu(g.conv2d("input", 3, 32, 3, stride=2)), 32
    for depth, cout in zip(depths, widths):
        for i in range(depth):
            stride = 2 if i == 0 else 1
            y = g.relu(g.conv2d(x, cin, cout, 1))
            y = g.relu(g.conv2d(y, cout, cout, 3, stride, groups=cout // group_width))
            y = g.squeeze_excite(y, cout, round(0.25 * cin))  # a quarter of the block's input: 440 -> 110
            y = g.conv2d(y, cout, cout, 1, gain=RESIDUAL_GAIN)
            shortcut = g.conv2d(x, cin, cout, 1, stride, gain=RESIDUAL_GAIN) if stride != 1 or cin != cout else x
            x, cin = g.relu(g.op("Add", [y, shortcut])), cout
    return g.image_model("regnet_y_400mf", image, g.classifier(x, cin, classes), [1, classes])


def deeplabv3(image: int = 224, classes: int = 21, widths: tuple[int, ...] = (64, 128, 256, 512),
              rates: tuple[int, ...] = (6, 12, 18), aspp: int = 256, low_level: int = 48) -> onnx.ModelProto:
    """ResNet-18-like backbone at output stride 8 (dilation 2 and 4), ASPP, a v3+ decoder on the stride-4 features."""
    g = ZooBuilder()
    x, cin = _stem(g, widths[0]), widths[0]
    low = None
    for cout, stride, dilation in zip(widths, (1, 2, 1, 1), (1, 1, 2, 4)):
        for i in range(2):
            s = stride if i == 0 else 1
            y = g.relu(g.conv2d(x, cin, cout, 3, s, dilation=dilation))
            y = g.conv2d(y, cout, cout, 3, dilation=dilation, gain=RESIDUAL_GAIN)
            shortcut = g.conv2d(x, cin, cout, 1, s, gain=RESIDUAL_GAIN) if s != 1 or cin != cout else x
            x, cin = g.relu(g.op("Add", [y, shortcut])), cout
        low = low or x  # stride 4
    feature = image // 8
    branches = [g.relu(g.conv2d(x, cin, aspp, 1))]
    branches += [g.relu(g.conv2d(x, cin, aspp, 3, dilation=rate)) for rate in rates]
    pooled = g.relu(g.conv2d(g.op("GlobalAveragePool", [x]), cin, aspp, 1))
    size = g.concat_shape([g.dims(pooled, 0, 2), g.dims(x, 2, 4)])  # F.interpolate(size=x.shape[-2:])
    branches.append(g.resize(pooled, sizes=size, transform="pytorch_half_pixel"))
    y = g.relu(g.conv2d(g.op("Concat", branches, axis=1), aspp * len(branches), aspp, 1))
    y = g.resize(y, sizes=[1, aspp, 2 * feature, 2 * feature])  # to the stride-4 features
    y = g.op("Concat", [y, g.relu(g.conv2d(low, widths[0], low_level, 1))], axis=1)
    y = g.relu(g.conv2d(y, aspp + low_level, aspp, 3))
    y = g.resize(g.conv2d(y, aspp, classes, 1), scales=[1, 1, 4, 4])
    return g.image_model("deeplabv3", image, y, [1, classes, image, image])


# 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (GoogLeNet); "M": 3x3/2 max pool; "M2": 2x2/2
GOOGLENET = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "M", (192, 96, 208, 16, 48, 64),
             (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
             (256, 160, 320, 32, 128, 128), "M2", (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]


def inception(image: int = 224, classes: int = 1000, blocks: list = GOOGLENET) -> onnx.ModelProto:
    """GoogLeNet without the auxiliary heads. torchvision's stride-1 branch pools say ceil_mode=True,
    which changes nothing at stride 1; they say 0 here because onnx 1.23's ReferenceEvaluator
    (the tests' reference) makes such a padded pool 2 pixels too large."""
    g = ZooBuilder()
    x = g.maxpool(g.relu(g.conv2d("input", 3, 64, 7, stride=2)), 3, 2, ceil=True)
    x = g.relu(g.conv2d(g.relu(g.conv2d(x, 64, 64, 1)), 64, 192, 3))
    x, cin = g.maxpool(x, 3, 2, ceil=True), 192
    for block in blocks:
        if isinstance(block, str):
            x = g.maxpool(x, 3, 2, ceil=True) if block == "M" else g.maxpool(x, 2, 2, ceil=True)
            continue
        c1, c3r, c3, c5r, c5, proj = block
        branches = [g.relu(g.conv2d(x, cin, c1, 1)),
                    g.relu(g.conv2d(g.relu(g.conv2d(x, cin, c3r, 1)), c3r, c3, 3)),
                    g.relu(g.conv2d(g.relu(g.conv2d(x, cin, c5r, 1)), c5r, c5, 5)),
                    g.relu(g.conv2d(g.maxpool(x, 3, 1, pad=1), cin, proj, 1))]  # ceil: see below
        x, cin = g.op("Concat", branches, axis=1), c1 + c3 + c5 + proj
    return g.image_model("inception", image, g.classifier(x, cin, classes), [1, classes])


# squeeze, expand 1x1, expand 3x3 (SqueezeNet 1.1); "M": 3x3/2 max pool, ceil mode
SQUEEZENET_1_1 = [(16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
                  (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]


def squeezenet(image: int = 224, classes: int = 1000, fires: list = SQUEEZENET_1_1) -> onnx.ModelProto:
    """SqueezeNet 1.1: fire modules, ceil-mode pools, a conv classifier and x.view(n, -1) as exported."""
    g = ZooBuilder()
    x = g.maxpool(g.relu(g.conv2d("input", 3, 64, 3, stride=2, pad=0)), 3, 2, ceil=True)
    cin = 64
    for fire in fires:
        if fire == "M":
            x = g.maxpool(x, 3, 2, ceil=True)
            continue
        squeeze, e1, e3 = fire
        s = g.relu(g.conv2d(x, cin, squeeze, 1))
        expanded = [g.relu(g.conv2d(s, squeeze, e1, 1)), g.relu(g.conv2d(s, squeeze, e3, 3))]
        x, cin = g.op("Concat", expanded, axis=1), e1 + e3
    x = g.op("GlobalAveragePool", [g.relu(g.conv2d(x, cin, classes, 1))])
    return g.image_model("squeezenet", image, g.flatten_computed(x), [1, classes])


ZOO: dict[str, tuple[Callable[..., onnx.ModelProto], Callable[[], onnx.ModelProto]]] = {
    "mobilenetv3_small": (mobilenetv3_small, lambda: mobilenetv3_small(
        64, 10, [MOBILENETV3_SMALL[i] for i in (0, 1, 2, 3, 4, 6, 8)] + [(96, 5, 576, 96, True, True, 1)])),
    "efficientnet_b0": (efficientnet_b0, lambda: efficientnet_b0(
        32, 10, [s[:5] + (1,) for s in EFFICIENTNET_B0[:4]] + [EFFICIENTNET_B0[4][:5] + (2,)])),
    "shufflenet_v2": (shufflenet_v2, lambda: shufflenet_v2(32, 10, (1, 2, 1))),
    "resnext50": (resnext50, lambda: resnext50(32, 10, (1, 1, 1, 1))),
    "regnet_y_400mf": (regnet_y_400mf, lambda: regnet_y_400mf(32, 10, (1, 2, 1, 1))),
    "deeplabv3": (deeplabv3, lambda: deeplabv3(32, 5, (8, 16, 24, 32), (1, 2, 3), aspp=16, low_level=12)),
    "convnext_tiny": (convnext_tiny, lambda: convnext_tiny(32, 10, (1, 1, 2, 1))),
    "inception": (inception, lambda: inception(48, 10, GOOGLENET[:4] + ["M2", GOOGLENET[-1]])),
    "squeezenet": (squeezenet, lambda: squeezenet(32, 10, SQUEEZENET_1_1[:4] + ["M", SQUEEZENET_1_1[-1]])),
    "vit": (vit, lambda: vit(64, 10, layers=1, hidden=48, heads=3, mlp=96)),
}
