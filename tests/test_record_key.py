"""One record identity (RecordKey): logs of one preset measured on two CPUs keep both machines' results."""
import dataclasses
import random
import subprocess
import sys

import pytest

from autotune.apply import best_config
from autotune.engine import make_record, transfer_samples
from autotune.log.jsonl import load_records, write_log
from autotune.log.replay import ReplayRunner
from autotune.log.store import MemoryStore
from autotune.measure import MeasureResult
from autotune.task import Task

MS = 1e-3
SHAPES = [(64, 64, 64), (32, 64, 16)]


def on_cpu(device, mcpu):
    """The same preset on another CPU: what a "host" log from another machine says."""
    return dataclasses.replace(device, target={**device.target, "mcpu": mcpu})


@pytest.fixture(scope="module")
def machines(host):
    """Two machines under the preset name "host", and per machine one task per shape."""
    devices = {"znver4": on_cpu(host, "znver4"), "znver5": on_cpu(host, "znver5")}
    return {cpu: [Task.create("matmul", shape, device=device) for shape in SHAPES] for cpu, device in devices.items()}


@pytest.fixture(scope="module")
def configs(machines):
    """The same four configs per shape on both machines (the spaces are the same)."""
    return [task.space.sample(random.Random(5), 4) for task in machines["znver4"]]


def machine_log(tasks, configs, fastest):
    """Every config of every task measured; config number `fastest` is this machine's best."""
    return [make_record(task, config, MeasureResult(((1 if n == fastest else 2 + n) * MS,)))
            for task, task_configs in zip(tasks, configs) for n, config in enumerate(task_configs)]


def autotune_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *map(str, args)], capture_output=True, text=True)


def test_merge_and_distill_keep_both_machines_and_each_finds_its_own_configs(machines, configs, tmp_path):
    write_log(tmp_path / "zen4.jsonl", machine_log(machines["znver4"], configs, fastest=0))
    write_log(tmp_path / "zen5.jsonl", machine_log(machines["znver5"], configs, fastest=3))
    merged = autotune_cli("log", "merge", tmp_path / "zen4.jsonl", tmp_path / "zen5.jsonl", "-o", tmp_path / "all.jsonl")
    distilled = autotune_cli("log", "distill", tmp_path / "all.jsonl", "-o", tmp_path / "best.jsonl")
    assert merged.returncode == 0 and distilled.returncode == 0, merged.stderr + distilled.stderr
    assert "wrote 16 records" in merged.stdout  # 2 machines x 2 workloads x 4 configs: nothing dropped
    best = load_records(tmp_path / "best.jsonl")
    assert sorted((r.target["mcpu"], r.workload.key) for r in best) == sorted(
        (cpu, task.workload.key) for cpu, tasks in machines.items() for task in tasks)
    for cpu, fastest in (("znver4", 0), ("znver5", 3)):
        for task, task_configs in zip(machines[cpu], configs):
            config, tuned = best_config(tmp_path / "best.jsonl", task)
            assert tuned and config == task_configs[fastest]


def test_summary_shows_each_machine_as_its_own_row(machines, configs, tmp_path):
    both = machine_log(machines["znver4"], configs, 0) + machine_log(machines["znver5"], configs, 3)
    write_log(tmp_path / "both.jsonl", both)
    summary = autotune_cli("log", "summary", tmp_path / "both.jsonl")
    rows = summary.stdout.splitlines()[2:]
    assert len(rows) == 4 and sum("znver4" in row for row in rows) == 2


def test_the_replay_runner_answers_only_for_the_cpu_that_measured(machines, configs):
    zen4, zen5 = machines["znver4"][0], machines["znver5"][0]
    replay = ReplayRunner(MemoryStore(machine_log([zen5], configs[:1], fastest=3)))
    inputs = [zen5.measure_input(config) for config in configs[0]]
    results = replay.run(inputs, [None] * len(inputs))  # replayed: nothing is built
    assert [r.cost for r in results] == [2 * MS, 3 * MS, 4 * MS, 1 * MS]
    with pytest.raises(ValueError, match="not in the replayed records"):
        replay.run([zen4.measure_input(configs[0][0])], [None])


def test_transfer_learns_only_from_the_same_cpu(machines, configs):
    records = machine_log(machines["znver4"], configs, 0) + machine_log(machines["znver5"], configs, 3)
    samples = transfer_samples(machines["znver4"][0], records)
    assert [(other.workload, len(found)) for other, found, _ in samples] == [(machines["znver4"][1].workload, 4)]
    assert samples[0][0].key == machines["znver4"][1].key


def test_a_task_and_its_records_share_one_key(machines, configs):
    task = machines["znver4"][0]
    record = make_record(task, configs[0][0], MeasureResult((MS,)))
    assert record.key == task.key and task.matches(record)
    assert record.key != machines["znver5"][0].key
