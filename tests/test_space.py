import math
import random

import numpy as np
import pytest

from schedules import ConfigSpace, SplitKnob


def small_space():
    space = ConfigSpace()
    space.define_split("tile", 24, 3, policy="factors")
    space.define_knob("order", ["ijk", "ikj"])
    space.define_unroll("unroll", max_steps=(0, 16))
    space.define_vectorize("vec", [8, 16, 4])
    return space


def test_size_is_product_of_knobs():
    space = small_space()
    sizes = [len(k) for k in space.knobs.values()]
    assert len(space) == math.prod(sizes)
    # 24 = 2^3 * 3: ordered factorizations into 3 parts = C(5,2) * C(3,2) = 30
    assert len(space.knobs["tile"]) == 30
    assert len(space.knobs["unroll"]) == 4 and len(space.knobs["vec"]) == 3


def test_index_round_trip_covers_every_point():
    space = small_space()
    seen = set()
    for index in range(len(space)):
        config = space.get(index)
        assert space.index_of(config.values) == index
        assert space.from_json(space.to_json(config)) == config
        seen.add(tuple(sorted((k, str(v)) for k, v in config.values.items())))
    assert len(seen) == len(space)


def test_split_policies():
    exact = SplitKnob("s", 24, 3, policy="factors")
    assert all(math.prod(c) == 24 for c in exact.candidates)
    for extent in (1, 7, 63, 127, 1000):
        knob = SplitKnob("s", extent, 3, policy="power2", max_factor=64)
        for outer, *inner in knob.candidates:
            assert all(f & (f - 1) == 0 and f <= 64 for f in inner)
            assert outer * math.prod(inner) >= extent > (outer - 1) * math.prod(inner)
    with pytest.raises(ValueError):
        SplitKnob("s", 8, 2, policy="nonsense")


def test_constraints_filter_sampling_and_neighbors():
    space = small_space()
    space.add_constraint("vec fits tile", lambda c: c["vec"] <= c["tile"][2])
    samples = space.sample(random.Random(1), 50)
    assert len({c.index for c in samples}) == 50
    assert all(space.is_valid(c) for c in samples)
    assert not space.is_valid(space.config({"tile": (24, 1, 1), "order": "ijk", "unroll": (0, False), "vec": 8}))
    for config in samples[:5]:
        for other in space.neighbors(config):
            assert space.is_valid(other)
            changed = [k for k in space.knobs if other[k] != config[k]]
            assert len(changed) == 1


def test_sampling_exhausts_small_space_without_repeats():
    space = ConfigSpace()
    space.define_knob("a", [1, 2, 3])
    space.define_knob("b", [True, False])
    taken = set()
    for _ in range(4):
        batch = space.sample(random.Random(0), 2, exclude=taken.__contains__)
        taken.update(c.index for c in batch)
    assert taken == set(range(6))
    assert space.sample(random.Random(0), 2, exclude=taken.__contains__) == []


def test_values_outside_the_space_are_rejected():
    space = small_space()
    with pytest.raises(ValueError):
        space.index_of({"tile": (5, 5, 1), "order": "ijk", "unroll": (0, False), "vec": 8})
    with pytest.raises(ValueError):
        space.index_of({"tile": (24, 1, 1)})
    with pytest.raises(IndexError):
        space.get(len(space))


def test_vectors_match_per_config_vectors_and_positions_invert():
    space = small_space()
    indices = list(range(0, len(space), 7))
    table = space.vectors(indices)
    for row, index in zip(table, indices):
        assert np.array_equal(row, space.vector(space.get(index)))
    assert np.array_equal(space.indices(space.positions(indices)), indices)
    config = space.config({"tile": (2, 3, 4), "order": "ikj", "unroll": (16, True), "vec": 8})
    assert list(space.vector(config)) == pytest.approx([1, np.log2(3), 2, 0, 1, np.log2(17), 1, 3])


def test_big_little_devices_get_threading_knobs_and_others_do_not():
    from autotune.task import Task

    phone = Task.create("matmul", (64, 64, 64), device="phone-a76-a55")
    assert {"threads", "affinity"} <= set(phone.space.knobs)
    assert phone.default_config["threads"] == 4 and phone.default_config["affinity"] == "big"
    assert all(c["threads"] <= 4 or c["affinity"] == "any" for c in phone.space.sample(random.Random(0), 100))
    host = Task.create("matmul", (64, 64, 64), device="host")
    assert "threads" not in host.space.knobs
