"""Tuning logs as a product: merge, distill, summary, validate, upgrade and atomic writes."""
import json
import os
import random
from collections import Counter
from dataclasses import replace

import pytest

from autotune.log.jsonl import load_records, write_log
from autotune.log.merge import distill, merge
from autotune.log.record import Record
from autotune.log.store import MemoryStore
from autotune.log.summary import summarize, summary_lines
from autotune.log.upgrade import upgrade
from autotune.log.validate import validate
from autotune.measure.result import ErrorKind
from autotune.task import Task
from schedules import ConfigSpace, Template, Workload, default_registry

MS = 1e-3


def record(task, config, costs=(1 * MS,), error=ErrorKind.NONE, **changes) -> Record:
    """A log record of `task` measured with `config` (a Config of its space, or a config JSON dict)."""
    made = Record(
        workload=task.workload,
        device=task.device.name,
        target=task.device.target,
        template=task.template.name,
        template_version=task.template.version,
        config=config if isinstance(config, dict) else task.space.to_json(config),
        costs=tuple(costs) if error is ErrorKind.NONE else (),
        error=error,
        message="" if error is ErrorKind.NONE else f"{error.value} happened",
        timestamp=1000.0,
        versions={"tvm": "0.27.0", "autotune": "0.1.0"},
    )
    return replace(made, **changes)


def as_json(records):
    return [r.to_json() for r in records]


@pytest.fixture(scope="module")
def tasks(host):
    return Task.create("matmul", (64, 64, 64), device=host), Task.create("matmul", (32, 64, 16), device=host)


@pytest.fixture(scope="module")
def configs(tasks):
    return [task.space.sample(random.Random(7), 6) for task in tasks]


# -- merge -----------------------------------------------------------------------------------------
def test_merge_keeps_one_line_per_config_the_fastest_correct_in_first_seen_order(tasks, configs, tmp_path):
    (t1, t2), (c1, c2) = tasks, configs
    log_a = [
        record(t1, c1[0], [3 * MS]),
        record(t1, c1[1], error=ErrorKind.COMPILE_ERROR),
        record(t1, c1[2], [2 * MS]),
        record(t2, c2[0], [1 * MS]),  # same knobs as nothing else: another workload
    ]
    moved_index = {**t1.space.to_json(c1[0]), "index": 0 if c1[0].index else 1}  # the index is only a hint
    log_b = [
        record(t1, moved_index, [5 * MS, 1 * MS, 1.5 * MS]),  # median 1.5 ms beats 3 ms
        record(t1, c1[1], [5 * MS]),  # a correct line beats an error line
        record(t1, c1[2], [4 * MS]),  # slower: log_a's line stays
        record(t1, c1[3], error=ErrorKind.TIMEOUT),
        record(t1, c1[3], error=ErrorKind.RUNTIME_ERROR),  # errors only: the first stays
        record(t1, c1[2], [0.5 * MS], template_version=1),  # another template version: its own line
        record(t1, c1[2], [0.5 * MS], device="cortex-a72"),  # another device: its own line
    ]
    path = tmp_path / "a.jsonl"
    assert write_log(path, log_a) == 4
    merged = merge([path, log_b])
    assert as_json(merged) == as_json([log_b[0], log_b[1], log_a[2], log_a[3], log_b[3], log_b[5], log_b[6]])
    assert merge([merged]) == merged  # idempotent


def test_a_config_measured_three_times_keeps_its_median_line(tasks, configs):
    """A fast outlier (a kernel whose data another tenant's cache traffic left in place) does not stand
    for the config."""
    (t1, _), (c1, _) = tasks, configs
    lines = [record(t1, c1[0], [1.1 * MS]), record(t1, c1[0], [1.45 * MS]), record(t1, c1[1], [1.2 * MS]),
             record(t1, c1[0], [1.5 * MS])]
    store = MemoryStore(lines[:2])
    assert store.best(t1.key).cost == 1.1 * MS  # of two, the faster
    store.extend(lines[2:])
    assert [r.cost for r in store.ranked(t1.key)] == [1.2 * MS, 1.45 * MS]
    assert [r.cost for r in store.lines(lines[0])] == [1.1 * MS, 1.45 * MS, 1.5 * MS]
    assert as_json(merge([lines])) == as_json([lines[1], lines[2]])


def test_merge_refuses_a_missing_log(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tuning log"):
        merge([tmp_path / "typo.jsonl"])


# -- distill -----------------------------------------------------------------------------------------
def test_distill_keeps_the_top_n_correct_configs_per_workload(tasks, configs):
    (t1, t2), (c1, c2) = tasks, configs
    log = [
        record(t1, c1[0], [5 * MS]),
        record(t1, c1[1], [3 * MS]),
        record(t2, c2[0], [2 * MS]),
        record(t1, c1[2], [4 * MS]),
        record(t1, c1[3], [1 * MS]),
        record(t1, c1[5], error=ErrorKind.WRONG_ANSWER),
        record(t1, c1[4], [2 * MS]),
        record(t1, c1[3], [9 * MS]),  # c1[3] again, slower: counts once, with its best time
        record(t2, c2[1], error=ErrorKind.COMPILE_ERROR),
    ]
    best = lambda records: [(r.workload, r.config["index"], r.cost) for r in records]  # noqa: E731
    w1, w2 = t1.workload, t2.workload
    assert best(distill(log)) == [(w1, c1[3].index, 1 * MS), (w2, c2[0].index, 2 * MS)]
    assert best(distill(log, top=2)) == [(w1, c1[3].index, 1 * MS), (w1, c1[4].index, 2 * MS), (w2, c2[0].index, 2 * MS)]
    assert best(distill(log, top=3))[:3] == [(w1, c1[3].index, 1 * MS), (w1, c1[4].index, 2 * MS), (w1, c1[1].index, 3 * MS)]
    assert len(distill(log, top=100)) == 6  # five distinct correct configs of w1, one of w2
    with pytest.raises(ValueError):
        distill(log, top=0)


# -- summary -----------------------------------------------------------------------------------------
def test_summary_counts_trials_errors_and_the_best_config(tasks, configs):
    (t1, t2), (c1, c2) = tasks, configs
    log = [
        record(t1, c1[0], [3 * MS, 1 * MS, 2 * MS]),  # median 2 ms
        record(t1, c1[1], error=ErrorKind.COMPILE_ERROR),
        record(t2, c2[0], error=ErrorKind.TIMEOUT),
        record(t1, c1[2], [2.5 * MS]),
        record(t1, c1[3], error=ErrorKind.COMPILE_ERROR),
        record(t1, c1[4], error=ErrorKind.RUNTIME_ERROR),
        record(t1, c1[5], [0.1 * MS], template_version=1),  # an old version is its own group
    ]
    first, second, old = summarize(log)
    assert (first.key, first.device, first.template, first.template_version) == (t1.workload.key, "host", "matmul.cpu", 2)
    assert first.trials == 5
    assert first.errors == {"compile_error": 2, "runtime_error": 1}
    assert first.best_cost == pytest.approx(2 * MS)
    assert first.best_knobs == t1.space.to_json(c1[0])["knobs"]
    assert (second.trials, second.errors, second.best_cost, second.best_knobs) == (1, {"timeout": 1}, None, None)
    assert (old.template_version, old.trials, old.best_cost) == (1, 1, pytest.approx(0.1 * MS))
    table = summary_lines([first, second, old])
    assert len(table) == 5 and table[0].startswith("workload") and set(table[1]) <= {"-", " "}
    assert "compile_error 2, runtime_error 1" in table[2] and " 2 " in table[2] and "matmul.cpu v2" in table[2]


# -- validate ----------------------------------------------------------------------------------------
def line(rec: Record, **changes) -> str:
    data = json.loads(json.dumps(rec.to_json()))  # to_json shares the record's own dicts
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = data
        for name in parents:
            target = target[name]
        target[leaf] = value
    return json.dumps(data)


@pytest.fixture(scope="module")
def mixed_log(tasks, configs, tmp_path_factory):
    """A log mixing valid lines with every kind of bad one; returns (path, lines by number)."""
    (t1, t2), (c1, c2) = tasks, configs
    arm = Task.create("matmul", (64, 64, 64), device="cortex-a72")
    arm_config = arm.space.sample(random.Random(3), 1)[0]
    good = record(t1, c1[0])
    off_space = t1.space.to_json(c1[1])
    off_space["knobs"]["tile_i"] = [1, 3, 64]  # no candidate of the knob
    invalid = next(t1.space.get(i) for i in range(len(t1.space)) if not t1.space.is_valid(t1.space.get(i)))
    lines = [
        line(good),  # 1 valid
        "hello world",  # 2 garbage
        line(good)[:70],  # 3 truncated JSON
        "",  # 4 blank: skipped, not counted
        line(good, result__costs="fast"),  # 5 wrong type
        line(good, config__index="3"),  # 6 wrong type
        line(good, result__costs="12"),  # 7 wrong type that float() would read as (1.0, 2.0)
        line(record(t1, c1[2], template_version=1)),  # 8 stale template version
        line(record(arm, arm_config)),  # 9 another device
        line(record(t1, off_space)),  # 10 config not in the space
        line(good, v=2),  # 11 another schema version
        line(record(t1, c1[3], template="winograd.cpu")),  # 12 unknown template
        line(record(t2, c2[0], [2 * MS])),  # 13 valid
        "[1, 2]",  # 14 JSON, not an object
        line(record(t1, c1[4], device="my-board")),  # 15 a device that is no preset
        line(good, template__version="two"),  # 16 wrong type
        line(record(t1, invalid)),  # 17 a point of the product that breaks the space's constraints
    ]
    path = tmp_path_factory.mktemp("logs") / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, dict(enumerate(lines, 1))


def test_validate_counts_each_kind_of_line_with_its_line_numbers(mixed_log, host):
    path, lines = mixed_log
    report = validate(path, device=host)
    assert report.total == 16
    assert report.corrupt == [2, 3, 5, 6, 7, 14, 16]
    assert report.other_schema == [11]
    assert report.unknown_template == [12]
    assert report.stale == [8]
    assert report.other_device == [9, 15]
    assert report.not_in_space == [10, 17]
    assert report.valid == [1, 13]
    assert report.unchecked == []
    assert not report.ok
    assert as_json(report.usable()) == [json.loads(lines[1]), json.loads(lines[13])]
    assert report.counts() == {
        "valid": 2, "corrupt": 7, "other_schema": 1, "unknown_template": 1, "stale": 1, "other_device": 2, "not_in_space": 2,
    }
    text = str(report)
    assert "16 lines, 2 valid" in text
    assert "2-3, 5-7, 14, 16" in text
    assert "line 9: other device: device 'cortex-a72'" in text
    assert "line 8: stale template version: matmul.cpu v1 (older than the current v2)" in text
    assert "line 7: corrupt: result.costs is not a list of numbers" in text
    assert "line 17: config not in space: config is not a point of matmul.cpu v2's space (violates" in text


def test_validate_without_a_device_checks_each_line_on_its_own_device(mixed_log):
    path, _ = mixed_log
    report = validate(path)
    assert report.valid == [1, 9, 13, 15]  # cortex-a72's config is a point of cortex-a72's space
    assert report.unchecked == [15]  # my-board is no preset: its config cannot be checked
    assert (report.other_device, report.not_in_space, report.stale) == ([], [10, 17], [8])
    assert "not checked" in str(report)


def test_validate_tells_a_target_that_differs_under_the_same_device_name(tasks, configs, tmp_path, host):
    (t1, _), (c1, _) = tasks, configs
    other_cpu = {**host.target, "mcpu": "cortex-a72" if host.target.get("mcpu") != "cortex-a72" else "cortex-a53"}
    path = tmp_path / "two_hosts.jsonl"
    write_log(path, [record(t1, c1[0]), record(t1, c1[1], target=other_cpu)])
    report = validate(path, device=host)
    assert (report.valid, report.other_device) == ([1], [2])
    assert validate(tmp_path / "two_hosts.jsonl", device="host").other_device == [2]


def test_a_clean_log_is_ok(tasks, configs, tmp_path, host):
    (t1, t2), (c1, c2) = tasks, configs
    path = tmp_path / "clean.jsonl"
    write_log(path, [record(t1, c) for c in c1] + [record(t2, c) for c in c2])
    report = validate(path, device=host)
    assert report.ok and report.total == 12 and len(report.usable()) == 12


# -- upgrade -------------------------------------------------------------------------------------------
class TinyTemplate(Template):
    """Version 2 renamed the knob `tiling` of version 1 to `tile`; version 0 configs cannot be converted."""

    name = "tiny.cpu"
    op = "tiny"
    version = 2

    def workload(self, shape, dtype="float32"):
        return Workload.make(self.op, N=int(shape[0]), dtype=dtype)

    def define_space(self, wl, device):
        space = ConfigSpace()
        space.define_split("tile", wl["N"], 2, policy="factors")
        space.define_knob("order", ["a", "b"])
        return space

    def default_values(self, wl, device, space):
        return {"tile": (wl["N"], 1), "order": "a"}

    def upgrade_config(self, from_version, knobs):
        if from_version != 1:
            return None
        return {"tile": knobs["tiling"], "order": knobs["order"]}

    def match(self, sch):
        return None

    def compute(self, wl):
        raise NotImplementedError

    def apply(self, sch, wl, cfg, device):
        raise NotImplementedError

    def flops(self, wl):
        return wl["N"]

    def make_inputs(self, wl, rng):
        raise NotImplementedError

    def reference(self, wl, inputs):
        raise NotImplementedError


def test_upgrade_converts_with_a_converter_and_drops_without(tasks, configs, host):
    (t1, _), (c1, _) = tasks, configs
    registry = default_registry()
    registry.register(TinyTemplate())
    tiny = Task(TinyTemplate(), TinyTemplate().workload((64,)), host)
    old = lambda knobs, **changes: record(tiny, {"index": 0, "knobs": knobs}, template_version=1, **changes)  # noqa: E731
    records = [
        record(t1, c1[0]),  # current: kept
        old({"tiling": [4, 16], "order": "b"}, costs=(2 * MS,)),  # converted
        record(t1, c1[1], template_version=1),  # matmul has no converter: dropped
        old({"tiling": [3, 7], "order": "a"}),  # 3 x 7 is no split of 64: dropped
        record(t1, c1[2], template="winograd.cpu"),  # unknown template: kept
        old({"tile": [4, 16], "order": "a"}),  # not a version 1 config: the converter fails, dropped
        old({"tiling": [8, 8], "order": "a"}, device="my-board"),  # no space to re-index in: dropped
        record(tiny, {"index": 0, "knobs": {"tiling": [8, 8], "order": "a"}}, template_version=0),  # no converter
        record(t1, c1[3], template_version=1),
    ]
    upgraded, report = upgrade(records, registry)
    expected_config = tiny.space.to_json(tiny.space.config({"tile": (4, 16), "order": "b"}))
    assert expected_config["index"] != 0
    assert as_json(upgraded) == as_json([
        records[0], replace(records[1], template_version=2, config=expected_config), records[4],
    ])
    assert (report.current, report.unknown, report.newer) == (1, 1, 0)
    assert report.converted == Counter({("tiny.cpu", 1): 1})
    assert report.dropped == {
        ("matmul.cpu", 1): Counter({"no converter": 2}),
        ("tiny.cpu", 1): Counter({
            "converted config not in the current space": 1,
            "converter failed: KeyError: 'tiling'": 1,
            "device 'my-board' is no preset": 1,
        }),
        ("tiny.cpu", 0): Counter({"no converter": 1}),
    }
    text = str(report)
    assert "kept: 1 current, 1 of unknown templates, 0 of newer versions" in text
    assert any(row.startswith("matmul.cpu v1") and " 0 " in row and "no converter (2)" in row for row in report.lines())
    assert any(row.startswith("tiny.cpu v1") and " 1 " in row and " 3 " in row for row in report.lines())


# -- atomic write ----------------------------------------------------------------------------------------
def test_write_log_round_trips_and_an_interrupted_write_leaves_the_old_log(tasks, configs, tmp_path):
    (t1, _), (c1, _) = tasks, configs
    path = tmp_path / "best.jsonl"
    records = [record(t1, c, [(i + 1) * MS]) for i, c in enumerate(c1)]
    assert write_log(path, records) == len(records)
    assert as_json(load_records(path)) == as_json(records)
    before = path.read_bytes()

    def interrupted():
        yield records[0]
        yield records[1]
        raise KeyboardInterrupt  # Ctrl-C midway through a distill

    with pytest.raises(KeyboardInterrupt):
        write_log(path, interrupted())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.jsonl"]  # no temp file left behind
    with pytest.raises(RuntimeError):
        write_log(tmp_path / "new.jsonl", (records[0] if i == 0 else _raise() for i in range(3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.jsonl"]


def _raise():
    raise RuntimeError("disk on fire")


# -- the schema as data ----------------------------------------------------------------------------
def test_the_schema_folder_of_the_written_version_knows_every_error_kind():
    from autotune.log import schema
    from autotune.log.record import SCHEMA_VERSION

    assert os.path.isfile(os.path.join(schema.SCHEMA_DIR, str(SCHEMA_VERSION), "record.schema.json"))
    kinds = schema.validator(SCHEMA_VERSION).schema["properties"]["result"]["properties"]["error"]["enum"]
    assert kinds == [kind.value for kind in ErrorKind]


def test_nan_costs_and_correct_lines_without_costs_are_corrupt(tasks, configs, tmp_path):
    (t1, _), (c1, _) = tasks, configs
    good = record(t1, c1[0])
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join([line(good), line(good).replace('"costs": [0.001]', '"costs": [NaN]'),
                               line(good, result__costs=[]), line(good, result__costs=[-1.0])]) + "\n")
    report = validate(path)
    assert (report.valid, report.corrupt) == ([1], [2, 3, 4])
    assert report.reasons[2] == "corrupt: not JSON (NaN is not a JSON value)"
    assert report.reasons[3] == "corrupt: result.costs is not a non-empty list for a correct result"
    assert report.reasons[4] == "corrupt: result.costs is not a non-negative cost in seconds"
