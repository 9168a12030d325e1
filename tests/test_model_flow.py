"""The model flow: tasks from real lowered models, scheduling with tuned/default/random configs,
the task scheduler, compile/export/load, bench, and the CLI's model commands."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import onnx
import pytest
import tvm
from onnx.reference import ReferenceEvaluator
from tvm import relax

from numpy_check import check_against_numpy

from autotune.bench import random_inputs
from autotune.compile import (compile_model, export_model, extract_tasks, load_model, primfuncs, schedule_model,
                              with_alternatives)
from autotune.engine import SETTLING_ROUNDS, make_record, settled
from autotune.measure import LocalBuilder, LocalRunner, MeasureResult, TimingOptions
from autotune.model import load_onnx, resolve_shapes
from autotune.log.jsonl import load_records
from autotune.log.store import MemoryStore
from autotune.options import TuneOptions
from autotune.scheduler import tune_model
from targets.tvm_compat import config_threadpool

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402

SMALL = {
    "resnet18": lambda: make_models.resnet18(image=32, classes=10, width=8),
    "mobilenetv2": lambda: make_models.mobilenetv2(image=32, classes=10),
    "bert": lambda: make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50),
}
EXPECTED_OPS = {"resnet18": {"conv2d", "matmul"}, "mobilenetv2": {"conv2d", "depthwise_conv2d", "matmul"},
                "bert": {"matmul", "batch_matmul"}}


def reference(model: onnx.ModelProto) -> tuple[dict, np.ndarray]:
    feeds = random_inputs(model, resolve_shapes(model))
    return feeds, ReferenceEvaluator(model).run(None, feeds)[0]


def run(module, host, feeds) -> np.ndarray:
    vm = relax.VirtualMachine(compile_model(module, host), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(x) for x in feeds.values()]).numpy()


@pytest.fixture(scope="module", params=list(SMALL))
def small(request):
    model = SMALL[request.param]()
    return request.param, model, load_onnx(model)


def fake_records(tasks, pick) -> list:
    """A log entry per task for the config `pick(task)` (costs are made up: only the config matters here)."""
    return [make_record(t.task, pick(t.task), MeasureResult((1e-3,))) for t in tasks]


def test_tasks_and_default_configs_match_onnx_reference(small, host):
    name, model, module = small
    tasks = extract_tasks(module, host)
    assert {t.task.workload.op for t in tasks} == EXPECTED_OPS[name]
    assert all(t.calls >= 1 for t in tasks)
    feeds, expected = reference(model)
    scheduled, coverage = schedule_model(module, host, tuned=False)
    assert not coverage.failed and not coverage.unscheduled and not coverage.tuned
    np.testing.assert_allclose(run(scheduled, host, feeds), expected, rtol=1e-4, atol=1e-4)


def test_random_configs_on_the_models_fused_functions_match(small, host):
    name, model, module = small
    tasks = extract_tasks(module, host)
    rng = random.Random(7)
    for attempt in range(2):
        records = fake_records(tasks, lambda task: task.space.sample(rng, 1)[0])
        scheduled, coverage = schedule_model(module, host, records)
        assert len(coverage.tuned) == len(tasks) and not coverage.failed, coverage.failed
        feeds, expected = reference(model)
        np.testing.assert_allclose(run(scheduled, host, feeds), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "bert"])
def test_every_task_of_the_full_size_models_matches_numpy(name, host):
    """The shape suite: every conv / matmul workload of the real models, default and one random config."""
    module = load_onnx(make_models.MODELS[name]())
    rng = random.Random(0)
    for model_task in with_alternatives(extract_tasks(module, host)):
        task = model_task.task
        for config in [task.default_config, *task.space.sample(rng, 1)]:
            check_against_numpy(task, config)


def test_scheduler_splits_the_budget_and_resumes(host, tmp_path):
    module = load_onnx(SMALL["bert"]())
    tasks = extract_tasks(module, host)
    log = tmp_path / "bert.jsonl"
    with LocalBuilder(n_workers=2) as builder, LocalRunner(TimingOptions(repeat=1, min_repeat_ms=2)) as runner:
        options = TuneOptions(30, "random", batch_size=4, first_batch=2, remeasure_best=False)
        first = tune_model(tasks, log, options, builder=builder, runner=runner)
        assert first.measured == 30 and all(s.trials >= 2 for s in first.tasks) and first.remeasured == 0
        second = tune_model(tasks, log, replace(options, trials=10), builder=builder, runner=runner)
    assert second.measured == 10 and sum(s.session.resumed for s in second.tasks) == 30
    records = load_records(log)
    keys = [(r.workload.key, r.config["index"]) for r in records]
    assert len(keys) == 40 == len(set(keys))
    for state in first.tasks:  # each task's default config is measured first
        assert any(r.config["index"] == state.model_task.task.default_config.index for r in records
                   if r.workload == state.model_task.task.workload)


def test_a_run_ends_by_measuring_each_tasks_best_until_its_figure_is_settled(host, tmp_path):
    """Every task's best ends with two lines that agree or three; the run's best is the log's (a median line)."""
    tasks = extract_tasks(load_onnx(SMALL["bert"]()), host)
    log = tmp_path / "bert.jsonl"
    with LocalBuilder(n_workers=2) as builder, LocalRunner(TimingOptions(repeat=1, min_repeat_ms=2)) as runner:
        result = tune_model(tasks, log, TuneOptions(len(tasks) * 2, "random", batch_size=2, first_batch=2),
                            builder=builder, runner=runner)
    records = load_records(log)
    assert len(tasks) <= result.remeasured and len(records) == result.measured + result.remeasured
    store = MemoryStore(records)
    for state in result.tasks:
        task = state.model_task.task
        config, best = task.best(store)
        lines = store.lines(best)
        assert config == state.session.best_config and best.cost == state.session.best_cost
        again = [r for r in records[result.measured:] if task.matches(r)]
        assert len(lines) >= 2 and (settled(lines) or len(again) == SETTLING_ROUNDS)
        costs = sorted(r.cost for r in lines if r.ok)
        assert best.cost == costs[(len(costs) - 1) // 2]


def autotune_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *map(str, args)], capture_output=True, text=True, **kwargs)


def test_compile_strict_export_and_load(host, tmp_path):
    model = SMALL["bert"]()
    path = tmp_path / "bert.onnx"
    onnx.save(model, path)
    strict = autotune_cli("compile", path, "-o", tmp_path / "bert.so", "--strict")
    assert strict.returncode == 1 and strict.stdout.count("untuned: ") == len(extract_tasks(load_onnx(model), host))
    assert not (tmp_path / "bert.so").exists()

    tasks = extract_tasks(load_onnx(model), host)
    log = tmp_path / "bert.jsonl"
    with open(log, "w") as stream:
        for record in fake_records(tasks, lambda task: task.default_config):
            stream.write(json.dumps(record.to_json()) + "\n")
    done = autotune_cli("compile", path, "--log", log, "-o", tmp_path / "bert.so", "--strict")
    assert done.returncode == 0, done.stderr
    assert f"{len(tasks)}/{len(tasks)} tasks tuned" in done.stdout
    manifest = json.loads((tmp_path / "bert.so.json").read_text())
    assert manifest["inputs"]["input_ids"] == [[1, 8], "int64"] and manifest["thread_pool"] is None
    feeds, expected = reference(model)
    vm = load_model(str(tmp_path / "bert.so"))
    actual = vm["main"](*[tvm.runtime.tensor(x) for x in feeds.values()]).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_bench_compares_tuned_untuned_and_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "resnet.onnx"
    onnx.save(SMALL["resnet18"](), path)
    done = autotune_cli("bench", path, "--rounds", "2")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert {"untuned", "onnxruntime"} <= set(rows) and "max abs diff" in rows["untuned"]  # "tuned" too if a pack applies


def test_model_commands_reject_bad_input_in_one_line(tmp_path):
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_text("hello")
    model = tmp_path / "bert.onnx"
    onnx.save(SMALL["bert"](), model)
    cases = [
        (["tasks", not_onnx], "is not an ONNX model"),
        (["tune", tmp_path / "missing.onnx"], "no such file"),
        (["compile", model, "-o", tmp_path / "m.so", "--input-shape", "tokens:1x8"], "unknown input 'tokens'"),
        (["tune", model, "--input-shape", "input_ids=1x8"], "malformed --input-shape"),
        (["tune", model, "--device", "nope"], "unknown device"),
        (["bench", model, "--device", "cortex-a72"], "not it"),
        (["compile", model, "-o", tmp_path / "m.so", "--log", tmp_path / "nolog.jsonl"], "no such log file"),
    ]
    for args, message in cases:
        done = autotune_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("autotune: error")]) == 1


def test_interrupted_tune_resumes_where_it_stopped(tmp_path):
    model = tmp_path / "bert.onnx"
    onnx.save(SMALL["bert"](), model)
    log = tmp_path / "bert.jsonl"
    args = [sys.executable, "-m", "autotune.cli", "tune", str(model), "--trials", "200", "--log", str(log),
            "--tuner", "random", "--batch-size", "4", "--repeat", "1", "--min-repeat-ms", "2"]
    # As a user's Ctrl-C: with SIGINT's default action restored, which a shell's background job would ignore.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 12):
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "run the same command to resume" in err
    before = len(load_records(log))
    assert before >= 12
    done = autotune_cli(*args[3:], "--trials", "8", cwd=tmp_path)  # the last --trials counts
    assert done.returncode == 0, done.stderr
    again = int(re.search(r"and (\d+) re-measurements of the tasks' best configs", done.stdout).group(1))
    records = load_records(log)
    keys = [(r.workload.key, r.config["index"]) for r in records[:len(records) - again]]
    assert len(records) == before + 8 + again and len(set(keys)) == len(keys)


def test_big_little_thread_knobs_reach_the_deployment_manifest(tmp_path):
    """phone-a76-a55: the heaviest task's tuned (threads, affinity) is the model's thread pool at load time."""
    from autotune.compile import thread_pool_for
    from schedules.threading import AFFINITY_MODES
    from targets import get_device

    phone = get_device("phone-a76-a55")
    model = SMALL["bert"]()
    module = load_onnx(model)
    tasks = extract_tasks(module, phone)
    choices = {"threads": 4, "affinity": "big"}
    records = []
    for n, t in enumerate(tasks):  # the first task dominates: its setting must win
        values = {**t.task.default_config.values, **(choices if n == 0 else {"threads": 1, "affinity": "little"})}
        config = t.task.space.config(values)
        records.append(make_record(t.task, config, MeasureResult(((100.0 if n == 0 else 1.0) * 1e-3,))))
    setting = thread_pool_for(tasks, records)
    assert setting == (AFFINITY_MODES["big"], 4)
    scheduled, coverage = schedule_model(module, phone, records)
    assert len(coverage.tuned) == len(tasks)
    path = str(tmp_path / "bert-phone.so")
    export_model(compile_model(scheduled, phone), phone, path, {"input_ids": ([1, 8], "int64")}, setting)
    assert json.loads(open(path + ".json").read())["thread_pool"] == [1, 4]
    assert subprocess.run(["file", path], capture_output=True, text=True).stdout.count("ARM aarch64") == 1


def test_load_model_applies_the_manifest_thread_pool(host, tmp_path):
    model = SMALL["resnet18"]()
    module = load_onnx(model)
    scheduled, _ = schedule_model(module, host, tuned=False)
    path = str(tmp_path / "r.so")
    export_model(compile_model(scheduled, host), host, path, {"input": ([1, 3, 32, 32], "float32")}, (0, 1))
    feeds, expected = reference(model)
    vm = load_model(path)  # one thread, as the manifest says
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(feeds["input"])).numpy(), expected, rtol=1e-4, atol=1e-4)
    config_threadpool()(0, host.num_threads)


@pytest.mark.parametrize("name", ["bert", "resnet18"])  # resnet18's classifier (N=10) packs through pad_einsum's copy
def test_constant_weights_are_packed_once_at_compile_time(name, host):
    """Dense/matmul weights: packed by constant folding; attention's batch_matmul (activations): every call."""
    from autotune.compile import prepack_weights

    module = load_onnx(SMALL[name]())
    scheduled, _ = schedule_model(module, host, tuned=False)
    packed = prepack_weights(scheduled)
    names = set(primfuncs(packed))
    tasks = extract_tasks(module, host)
    weighted = [n for t in tasks if t.task.template.name == "matmul.cpu" for n in t.functions]
    attention = [n for t in tasks if t.task.template.name == "batch_matmul.cpu" for n in t.functions]
    assert weighted and (attention or name != "bert")
    assert all(f"{n}_prepacked" in names and n not in names for n in weighted)
    assert all(n in names and f"{n}_prepacked" not in names for n in attention)
    assert not any(n.endswith("_weight_prepack") for n in names), "the packing must be folded into constants"
    feeds, expected = reference(SMALL[name]())
    np.testing.assert_allclose(run(scheduled, host, feeds), expected, rtol=1e-4, atol=1e-4)
