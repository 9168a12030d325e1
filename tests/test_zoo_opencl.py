"""The zoo's distinctive layers on the GPU presets: small zoo models compiled as `autotune compile` does,
every PrimFunc an OpenCL kernel within the preset's limits, the model run on PoCL matching ONNX Runtime.

Each preset gets the models whose layers the demo models lack, spread so that the four presets share
about a minute and a half of PoCL time; `scripts/gpu_check.py --small --presets all` runs every small zoo
model on every preset, and without `--small` the full-size ones (issue 15's acceptance check).
"""
import os
import sys

import pytest

from gpu_models import assert_every_function_is_a_kernel_within_limits, compile_and_run, errors
from opencl_check import TOLERANCE, needs_opencl, opencl  # noqa: F401 (opencl: a module fixture)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from zoo import ZOO  # noqa: E402

pytestmark = needs_opencl


@pytest.mark.parametrize("name, preset", [
    ("shufflenet_v2", "mali-bifrost"),  # Split, shuffles reshaped by computed shapes, 58 channels padded to 64
    ("regnet_y_400mf", "adreno-6xx"),  # 3x3 convs in groups of 8 channels, squeeze-excite
    ("deeplabv3", "adreno-7xx"),  # dilated convs, bilinear Resize to sizes computed in the graph
    ("efficientnet_b0", "mali-valhall"),  # 5x5 depthwise, SiLU as x * Sigmoid(x), squeeze-excite to 20 channels
    ("vit", "mali-bifrost"),  # layer norm, GELU through Erf, attention over 17 tokens
    ("squeezenet", "adreno-6xx"),  # ceil-mode max pools, x.view(n, -1) by computed shapes
])
def test_small_zoo_model_matches_onnxruntime_on_pocl(name, preset):
    device, scheduled, coverage, launches, actual, expected = compile_and_run(ZOO[name][1](), preset)
    assert not coverage.failed and not coverage.unscheduled
    assert_every_function_is_a_kernel_within_limits(scheduled, launches, device.gpu)
    assert errors(actual, expected)[1] <= TOLERANCE
