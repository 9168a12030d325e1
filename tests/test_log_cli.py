"""Logs as a product, through the CLI: validate a mixed log, compile from its valid lines only,
distill without changing what compiles, and packs looked up after the user's logs."""
import json
import os
import random
import subprocess
import sys

import onnx
import pytest
import tvm

from autotune.log import packs
from autotune.log.merge import distill, merge
from autotune.compile import extract_tasks, schedule_model
from autotune.engine import make_record
from autotune.measure import MeasureResult
from autotune.model import load_onnx
from targets import get_device

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402


def autotune_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    model = make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50)
    path = tmp_path_factory.mktemp("model") / "bert.onnx"
    onnx.save(model, path)
    return path, load_onnx(model)


def full_log(tasks, per_task: int = 6, seed: int = 0) -> list:
    """Several configs per task with distinct made-up costs (only which config is best matters)."""
    rng = random.Random(seed)
    records = []
    for t in tasks:
        for n, config in enumerate([t.task.default_config, *t.task.space.sample(rng, per_task - 1)]):
            records.append(make_record(t.task, config, MeasureResult(((n + 1) * 1e-4,))))
    return records


def write(path, records, extra_lines=()):
    with open(path, "w") as stream:
        for record in records:
            stream.write(json.dumps(record.to_json()) + "\n")
        for line in extra_lines:
            stream.write(line + "\n")


def test_validate_reports_each_kind_and_compile_uses_only_valid_lines(bert, host, tmp_path):
    path, module = bert
    tasks = extract_tasks(module, host)
    good = full_log(tasks, per_task=2)
    stale = json.loads(json.dumps(good[0].to_json()))
    stale["template"]["version"] = 0
    other = json.loads(json.dumps(good[1].to_json()))
    other["device"], other["target"] = "cortex-a72", {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72"}
    log = tmp_path / "mixed.jsonl"
    write(log, good, ["{not json", '{"v": 1, "key": 3}', json.dumps(stale), json.dumps(other)])

    report = autotune_cli("log", "validate", log, "--device", "host")
    assert report.returncode == 1, report.stderr
    counts = {line.split()[0]: line.split() for line in report.stdout.splitlines() if line.strip()}
    assert counts["valid"][1] == str(len(good))
    assert counts["corrupt"][1] == "2"
    assert counts["stale"][3] == "1" and counts["other"][2] == "1"

    done = autotune_cli("compile", path, "--log", log, "-o", tmp_path / "m.so", "--strict")
    assert done.returncode == 0, done.stderr
    assert f"{len(good)} of {len(good) + 4} lines used" in done.stderr
    assert f"{len(tasks)}/{len(tasks)} tasks tuned" in done.stdout


def test_distilled_log_compiles_to_the_same_module(bert, host, tmp_path):
    _, module = bert
    tasks = extract_tasks(module, host)
    records = full_log(tasks)
    write(tmp_path / "a.jsonl", records[::2])
    write(tmp_path / "b.jsonl", records[1::2])
    merged = autotune_cli("log", "merge", tmp_path / "a.jsonl", tmp_path / "b.jsonl", "-o", tmp_path / "m.jsonl")
    distilled = autotune_cli("log", "distill", tmp_path / "m.jsonl", "-o", tmp_path / "d.jsonl")
    assert merged.returncode == 0 and distilled.returncode == 0, merged.stderr + distilled.stderr
    small = merge([tmp_path / "d.jsonl"])
    assert len(small) == len(tasks)
    full_module, _ = schedule_model(module, host, records)
    small_module, _ = schedule_model(module, host, small)
    tvm.ir.assert_structural_equal(full_module, small_module)


def test_packs_come_after_the_users_logs_and_before_defaults(bert, host, tmp_path):
    _, module = bert
    tasks = extract_tasks(module, host)
    records = full_log(tasks)
    folder = tmp_path / "packs"
    packs.build_pack("host-test", distill(records), folder)
    assert [p.name for p in packs.list_packs(folder)] == ["host-test"]
    from_pack = packs.pack_records(host, folder)
    assert [(p.pack.name, p.nearest) for p in from_pack] == [("host-test", False)]
    assert len(list(from_pack[0].store)) == len(tasks)
    _, coverage = schedule_model(module, host, records[:1], packs=from_pack)
    assert len(coverage.tuned) == len(tasks)
    assert coverage.from_packs == {"the pack host-test": [str(t.task.workload) for t in tasks[1:]]}
    assert packs.pack_records(get_device("cortex-a72"), folder) == []
    with pytest.raises(ValueError, match="pack name"):
        packs.build_pack("../evil", records, folder)
