"""Packs serve their own CPU exactly and, as the nearest pack, every CPU of the same kind (never another kind)."""
import dataclasses
import os
import random
import sys

import numpy as np
import pytest
import tvm

from autotune.bench import VMRunner, random_inputs
from autotune.compile import compile_model, extract_tasks, lower_for_logs, schedule_model
from autotune.engine import make_record
from autotune.log import packs
from autotune.log.jsonl import load_records
from autotune.measure import MeasureResult
from autotune.model import load_onnx, resolve_shapes
from autotune.task import Task
from targets import cpu_kind, get_device

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402

#: CPU names to pick "another CPU of this machine's kind" from (any LLVM name would do).
CPUS = ["znver4", "znver5", "skylake-avx512", "sapphirerapids", "haswell", "znver3", "x86-64-v2", "x86-64"]


def on_cpu(device, mcpu):
    return dataclasses.replace(device, target={**device.target, "mcpu": mcpu})


def test_cpu_kind_is_architecture_and_vector_width_from_llvm_features():
    kind = lambda mcpu, **target: cpu_kind({"kind": "llvm", "mcpu": mcpu, **target})  # noqa: E731
    assert kind("znver4") == kind("znver5") == kind("skylake-avx512")
    assert (kind("znver5").arch, kind("znver5").vector_isa, kind("znver5").vector_bits) == ("x86_64", "avx512", 512)
    assert (kind("haswell").vector_isa, kind("haswell").vector_bits) == ("avx2", 256)
    arm = get_device("cortex-a72").target
    assert (cpu_kind(arm).arch, cpu_kind(arm).vector_bits) == ("aarch64", 128)
    assert cpu_kind(arm) == cpu_kind(get_device("cortex-a76").target) != kind("znver5")
    assert cpu_kind(get_device("mali-valhall").target) is None
    assert kind("no-such-cpu") is None


@pytest.fixture(scope="module")
def onnx_bert():
    return make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50)


@pytest.fixture(scope="module")
def bert(onnx_bert):
    return load_onnx(onnx_bert)


@pytest.fixture(scope="module")
def other_cpu(host):
    """Another CPU name of this machine's kind: where the pack pretends to come from."""
    kind = cpu_kind(host.target)
    name = next((c for c in CPUS if c != host.target["mcpu"] and cpu_kind({**host.target, "mcpu": c}) == kind), None)
    if name is None:
        pytest.skip(f"no other CPU of this machine's kind ({cpu_kind(host.target)}) in the list")
    return name


@pytest.fixture(scope="module")
def pack_from_another_cpu(bert, host, other_cpu, tmp_path_factory):
    """(folder, records): a pack of the model's tasks tuned (made-up costs) on `other_cpu`, and the same records here."""
    tasks = extract_tasks(bert, host)
    here = [make_record(t.task, config, MeasureResult(((n + 1) * 1e-4,)))
            for t in tasks for n, config in enumerate(_configs(t.task))]
    folder = tmp_path_factory.mktemp("packs")
    there = [dataclasses.replace(r, target={**r.target, "mcpu": other_cpu}) for r in here]
    packs.build_pack(f"host-{other_cpu}", there, folder)
    return folder, here


def _configs(task):
    """Three configs: two sampled, then the default (the slowest, so the pack's best is no default)."""
    return [*task.space.sample(random.Random(1), 2), task.default_config]


def test_a_pack_of_another_cpu_of_this_kind_compiles_this_model_as_the_nearest_pack(
    onnx_bert, bert, host, other_cpu, pack_from_another_cpu
):
    folder, here = pack_from_another_cpu
    found = packs.pack_records(host, folder)
    assert [(p.pack.name, p.nearest) for p in found] == [(f"host-{other_cpu}", True)]
    module, tasks = lower_for_logs(bert, host, packs=found)
    scheduled, coverage = schedule_model(module, host, packs=found, tasks=tasks)
    n = len(tasks)
    assert f"{n}/{n} tasks tuned ({n} from the nearest pack host-{other_cpu})" in coverage.summary()
    as_if_tuned_here, _ = schedule_model(module, host, here, tasks=tasks)
    tvm.ir.assert_structural_equal(scheduled, as_if_tuned_here)  # the pack's configs, re-keyed, not defaults
    untuned, _ = schedule_model(module, host, tuned=False, tasks=tasks)
    feeds = random_inputs(onnx_bert, resolve_shapes(onnx_bert))
    with_pack, without = (VMRunner(compile_model(mod, host), feeds).output() for mod in (scheduled, untuned))
    np.testing.assert_allclose(with_pack, without, rtol=1e-4, atol=1e-4)


def test_the_exact_pack_comes_before_the_nearest_and_user_logs_before_both(bert, host, pack_from_another_cpu, tmp_path):
    folder, here = pack_from_another_cpu
    packs.build_pack("a-nearest", load_records(packs.list_packs(folder)[0].path), tmp_path / "packs")
    packs.build_pack("z-exact", here, tmp_path / "packs")
    found = packs.pack_records(host, tmp_path / "packs")
    assert [(p.pack.name, p.nearest) for p in found] == [("z-exact", False), ("a-nearest", True)]
    tasks = extract_tasks(bert, host)
    _, coverage = schedule_model(bert, host, here[:1], packs=found, tasks=tasks)
    assert coverage.from_packs == {"the pack z-exact": [str(t.task.workload) for t in tasks[1:]]}


@pytest.mark.parametrize("device", ["haswell", "cortex-a72", "mali-valhall"])
def test_no_pack_serves_another_kind_of_cpu(device, host, pack_from_another_cpu):
    folder, _ = pack_from_another_cpu
    if device == "haswell" and cpu_kind(host.target) == cpu_kind(on_cpu(host, "haswell").target):
        pytest.skip("this machine is of haswell's kind")
    target = on_cpu(host, device) if device == "haswell" else get_device(device)
    assert packs.pack_records(target, folder) == []


def test_an_arm_pack_serves_other_arm_boards_and_not_x86(host, tmp_path):
    a72 = Task.create("matmul", (32, 32, 32), device="cortex-a72")
    records = [make_record(a72, config, MeasureResult(((n + 1) * 1e-4,))) for n, config in enumerate(_configs(a72))]
    packs.build_pack("cortex-a72", records, tmp_path)
    a76 = get_device("cortex-a76")
    found = packs.pack_records(a76, tmp_path)
    assert [(p.pack.name, p.nearest) for p in found] == [("cortex-a72", True)]
    task = Task.create("matmul", (32, 32, 32), device=a76)
    config, record = task.best(found[0].store)
    assert task.space.to_json(config)["knobs"] == records[0].config["knobs"] and record.device == "cortex-a76"
    assert packs.pack_records(host, tmp_path) == []
