"""Tuning the OpenCL GEMM template over real TVM RPC on `remote.cl(0)`: a tracker and RPC servers on loopback
that load TVM's OpenCL runtime and run the kernels on PoCL (a CPU OpenCL), with the GPU preset's host code
for this machine (`--this-host`). Launches past the preset's limits are refused by the builder, before the
device; a repeat queues at most the spec's launches. A server killed mid-run and restarted loses nothing, for the GEMM
and the conv template alike."""
import dataclasses
import json
import subprocess
import sys
import threading
import time

import pytest
from rpc_cluster import Cluster, stop

from autotune.engine import tune_task
from autotune.measure import ErrorKind, LocalBuilder, TimingOptions
from autotune.measure.rpc_runner import RPCRunner, Tracker
from autotune.measure.runner import launch_capped_number
from autotune.options import TuneOptions
from autotune.task import Task
from targets import get_device
from targets.opencl_runtime import find_opencl_runtime, opencl_unavailable_reason

pytestmark = pytest.mark.skipif(find_opencl_runtime() is None,
                                reason="TVM's OpenCL runtime (libtvm_runtime_opencl.so) is not installed: "
                                       "set AUTOTUNE_OPENCL_RUNTIME (see targets/opencl_runtime.py)")
TIMING = TimingOptions(repeat=2, min_repeat_ms=5)


def lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def opencl_task(op: str, shape: tuple[int, ...]) -> Task:
    return Task.create(op, shape, device=get_device("mali-valhall").driven_from_this_machine())


@pytest.fixture
def task():
    return opencl_task("matmul", (64, 128, 96))


def test_tune_op_over_rpc_measures_on_remote_opencl(tmp_path):
    assert opencl_unavailable_reason() is None  # an OpenCL driver (PoCL) is here
    log = tmp_path / "mali.jsonl"
    with Cluster("mali-test") as cluster:
        cluster.add_server(load_library=str(find_opencl_runtime()))
        result = subprocess.run(
            [sys.executable, "-m", "autotune.cli", "tune-op", "matmul", "--shape", "128,256,256", "--device", "mali-valhall",
             "--this-host", "--rpc", "--tracker", f"127.0.0.1:{cluster.port}", "--rpc-key", "mali-test",
             "--trials", "6", "--batch-size", "3", "--tuner", "random", "--min-repeat-ms", "5", "--log", str(log)],
            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "measured 6 new configs (0 errors)" in result.stdout and "on mali-test" in result.stdout
    records = lines(log)
    assert len(records) == 6 and len({r["config"]["index"] for r in records}) == 6
    assert all(r["result"]["error"] == "none" and r["result"]["costs"] for r in records)
    assert {r["template"]["name"] for r in records} == {"matmul.opencl"} and {r["device"] for r in records} == {"mali-valhall"}
    assert all(r["target"]["kind"] == "opencl" for r in records)


def test_config_past_the_limits_is_an_error_before_the_device(task):
    small = dataclasses.replace(task.device, gpu=dataclasses.replace(task.device.gpu, max_threads_per_work_group=16,
                                                                                    preferred_work_group=16))
    config = task.space.config({"tile_i": (2, 8, 4), "tile_j": (4, 8, 4), "tile_k": (24, 4), "vector": 4, "local_b": False})  # 8x8 threads
    with LocalBuilder(n_workers=1) as builder:
        [refused] = builder.build([dataclasses.replace(task.measure_input(config), device=small)])
        [built] = builder.build([task.measure_input(config)])
    assert refused.error is ErrorKind.COMPILE_ERROR and refused.path is None
    assert "threads per work group 64 over 16" in refused.message
    assert built.error is ErrorKind.NONE and built.kernels == 1


def test_launches_per_repeat_are_capped():
    timing = TimingOptions(min_repeat_ms=1000)
    assert launch_capped_number(timing, 1e-5, kernels=3, cap=256) == 85  # 1 s at 10 us would be 100000 calls
    assert launch_capped_number(timing, 0.5, kernels=3, cap=256) == 2
    assert launch_capped_number(timing, 1e-5, kernels=300, cap=256) == 1
    assert launch_capped_number(dataclasses.replace(timing, max_launches=16), 1e-5, kernels=2, cap=256) == 8


@pytest.mark.parametrize("op, shape", [("matmul", (64, 128, 96)), ("conv2d", (1, 16, 16, 16, 16, 3, 3, 1, 1))])
def test_server_killed_mid_run_and_restarted_loses_nothing(op, shape, tmp_path):
    task = opencl_task(op, shape)
    log = tmp_path / "rpc.jsonl"
    library = str(find_opencl_runtime())
    with Cluster() as cluster, LocalBuilder() as builder:
        server = cluster.add_server(load_library=library)

        def kill_and_restart():
            while len(lines(log)) < 6:
                time.sleep(0.05)
            stop(server)
            time.sleep(1.0)
            cluster.add_server(load_library=library)

        fault = threading.Thread(target=kill_and_restart)
        fault.start()
        with RPCRunner(Tracker("127.0.0.1", cluster.port, cluster.key), timing=TIMING, device_wait=60) as runner:
            result = tune_task(task, log, TuneOptions(16, "random", batch_size=4), builder=builder, runner=runner)
        fault.join()
    records = lines(log)
    assert result.measured == 16 and len(records) == 16
    assert len({r["config"]["index"] for r in records}) == 16
    assert [(r["result"]["error"], r["result"]["message"]) for r in records if r["result"]["error"] != "none"] == []
    assert {r["template"]["name"] for r in records} == {task.template.name}
    assert all(len(r["result"]["costs"]) == TIMING.repeat for r in records)
