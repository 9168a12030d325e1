"""Matmul, dense and batch_matmul templates against numpy, for the default and random configs, on odd shapes too."""
import random

import pytest
from numpy_check import check_against_numpy

from autotune.task import Task
from schedules import default_registry

SHAPES = [(1024, 1024, 1024), (127, 255, 63), (1, 1000, 512), (128, 256, 1024), (7, 3, 5), (1, 1, 1)]


@pytest.mark.parametrize("op", ["matmul", "dense"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_default_and_random_configs_match_numpy(op, shape, host):
    template = default_registry().get(op)
    wl = template.workload(shape, "float32")
    space = template.space(wl, host)
    configs = [template.default_config(wl, host, space)] + space.sample(random.Random(hash(shape) % 1000), 2)
    for config in configs:
        check_against_numpy(Task(template, wl, host), config)


def test_workload_key_is_plain_and_stable():
    template = default_registry().get("matmul")
    wl = template.workload([1024, 512, 256], "float32")
    assert wl.key == '["matmul",{"K":256,"M":1024,"N":512,"dtype":"float32"}]'
    assert template.workload((1024, 512, 256), "float32") == wl


@pytest.mark.parametrize("shape", [(1, 2), (0, 4, 4), (4, 4, -1)])
def test_malformed_shapes_are_rejected(shape):
    with pytest.raises(ValueError):
        default_registry().get("matmul").workload(shape, "float32")


def test_unknown_operator_lists_known_ones():
    with pytest.raises(ValueError, match="batch_matmul, conv2d, conv2d_winograd, dense, depthwise_conv2d, group_conv2d, matmul"):
        default_registry().get("conv7d")


@pytest.mark.parametrize("shape", [(4, 128, 128, 64), (4, 128, 64, 128), (3, 7, 5, 9), (1, 17, 31, 13), (2, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_batch_matmul_default_and_random_configs_match_numpy(shape, host):
    template = default_registry().get("batch_matmul")
    wl = template.workload(shape, "float32")
    space = template.space(wl, host)
    for config in [template.default_config(wl, host, space)] + space.sample(random.Random(sum(shape)), 2):
        check_against_numpy(Task(template, wl, host), config)
