"""Tuning the OpenCL templates over real TVM RPC on `remote.cl(0)`: a tracker and RPC servers on loopback that
load TVM's OpenCL runtime and run the kernels on PoCL (a CPU OpenCL), with the GPU preset's host code for this
machine. A server killed mid-run and restarted loses nothing, for the GEMM and the conv template alike. Launches
past the preset's limits are refused by the builder, before the device; a repeat queues at most the spec's
launches. (The commands themselves, over the same kind of cluster: `test_rpc_opencl_cli.py`.)"""
import dataclasses
import json
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
from targets.opencl_runtime import find_opencl_runtime

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
