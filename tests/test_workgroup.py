"""The rule-based work-group size: a multiple of the lock-step width, within the limits, dividing the
(padded) global size, filling the shader cores, keeping the global size's aspect. `pytest -s` prints
the choice per preset and global size."""
import math

import pytest

from schedules.workgroup import work_group
from targets import PRESETS, get_device

GPUS = {name: get_device(name).gpu for name in PRESETS if get_device(name).gpu is not None}
#: Launch shapes of CNN and transformer kernels: elementwise over feature maps (odd and prime sizes
#: included), per-channel, per-row, 2-d outputs of matmuls, 3-d (channel blocks, width, height).
GLOBAL_SIZES = [(1,), (3,), (10,), (1000,), (1001,), (4096,), (9973,), (200704,), (802816,), (150528,),
                (56, 56), (7, 7), (197, 768), (1000, 1), (1, 1000), (128, 3072), (12, 197), (13, 17),
                (16, 112, 112), (8, 56, 56), (3, 224, 224), (32, 7, 7), (5, 7, 11), (17, 19, 23), (64, 14, 14)]


@pytest.mark.parametrize("preset", GPUS)
def test_choices_are_lockstep_multiples_within_limits_and_tile_the_global_size(preset):
    gpu = GPUS[preset]
    print(f"\n{preset} ({gpu.name}: lock-step {gpu.lockstep_width}, <= {gpu.max_threads_per_work_group} threads, "
          f"{gpu.min_work_groups} work groups fill it)")
    for size in GLOBAL_SIZES:
        choice = work_group(size, gpu)
        print(f"  global {'x'.join(map(str, size)):>12} -> work group {'x'.join(map(str, choice.local)):>9}"
              f"{' over ' + 'x'.join(map(str, choice.global_size)) if choice.padded else '':>18}, {choice.groups} groups")
        assert choice.threads <= gpu.max_threads_per_work_group
        assert all(g % l == 0 for g, l in zip(choice.global_size, choice.local))
        assert all(g >= s for g, s in zip(choice.global_size, size))
        if math.prod(size) <= gpu.lockstep_width:  # less than one warp in all: one work group, no padding
            assert choice.local == size and not choice.padded
            continue
        assert choice.threads % gpu.lockstep_width == 0, (size, choice)
        if choice.padded:  # each dimension by less than one warp, to a size a warp-aligned work group tiles
            assert all(g - s < gpu.lockstep_width for g, s in zip(choice.global_size, size))
            assert math.prod(choice.global_size) % gpu.lockstep_width == 0


@pytest.mark.parametrize("preset", GPUS)
def test_enough_work_groups_for_every_core_when_the_launch_allows(preset):
    gpu = GPUS[preset]
    for size in GLOBAL_SIZES:
        choice = work_group(size, gpu)
        most_groups = math.prod(choice.global_size) // gpu.lockstep_width  # with the smallest aligned groups
        if most_groups >= gpu.min_work_groups:
            assert choice.groups >= gpu.min_work_groups, (size, choice)


def test_large_launches_get_the_vendors_starting_size_and_keep_the_aspect():
    valhall, adreno = GPUS["mali-valhall"], GPUS["adreno-7xx"]
    assert work_group((802816,), valhall).local == (64,)  # Arm's 64 threads
    assert work_group((802816,), adreno).local == (128,)  # two Adreno waves
    for gpu in (valhall, adreno):
        wide, tall = work_group((3072, 128), gpu).local, work_group((128, 3072), gpu).local
        assert wide[0] >= wide[1] and tall[0] <= tall[1] and wide == tall[::-1]
        square = work_group((56, 56), gpu).local
        assert square[0] == square[1]


def test_padding_wastes_the_fewest_threads():
    gpu = GPUS["mali-valhall"]
    choice = work_group((9973,), gpu)  # a prime: to the next multiple of the warp
    assert choice.padded and choice.global_size == (9984,) and choice.threads % 16 == 0
    assert work_group((7, 7), gpu).global_size == (8, 8)  # 64 threads, not 16x7 = 112
    assert work_group((1000, 3), gpu).global_size == (1008, 3)
    with pytest.raises(ValueError, match="1 to 3 positive dimensions"):
        work_group((1, 2, 3, 4), gpu)
