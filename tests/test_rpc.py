"""Measurement over real TVM RPC (tracker and native servers on loopback), including faults."""
import json
import threading
import time

import pytest
from rpc_cluster import Cluster, stop

import autotune
from autotune.engine import DeviceLostError, tune_task
from autotune.measure import ErrorKind, LocalBuilder, TimingOptions
from autotune.measure.rpc_runner import RPCRunner, Tracker
from autotune.options import TuneOptions

TIMING = TimingOptions(repeat=2, min_repeat_ms=5)


@pytest.fixture
def task():
    return autotune.Task.create("matmul", (96, 128, 64))


@pytest.fixture(scope="module")
def builder():
    with LocalBuilder() as b:
        yield b


def lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_measures_on_every_free_device_and_checks_outputs(task, builder, tmp_path):
    with Cluster() as cluster:
        cluster.add_server()
        cluster.add_server()
        with RPCRunner(Tracker("127.0.0.1", cluster.port, cluster.key), timing=TIMING) as runner:
            assert runner.n_parallel == 2
            result = tune_task(task, tmp_path / "rpc.jsonl", TuneOptions(12, "random", batch_size=6), builder=builder, runner=runner)
    assert result.measured == 12 and result.errors == 0
    assert all(len(r.costs) == 2 and r.cost < 0.1 for r in result.records)


def test_server_killed_mid_run_and_restarted_loses_nothing(task, builder, tmp_path):
    log = tmp_path / "rpc.jsonl"
    with Cluster() as cluster:
        server = cluster.add_server()

        def kill_and_restart():
            while len(lines(log)) < 8:
                time.sleep(0.05)
            stop(server)
            time.sleep(1.0)
            cluster.add_server()

        fault = threading.Thread(target=kill_and_restart)
        fault.start()
        runner = RPCRunner(Tracker("127.0.0.1", cluster.port, cluster.key), timing=TIMING, device_wait=60)
        with runner:
            result = tune_task(task, log, TuneOptions(32, "random", batch_size=4), builder=builder, runner=runner)
        fault.join()
    records = lines(log)
    assert result.measured == 32 and len(records) == 32
    assert len({r["config"]["index"] for r in records}) == 32
    assert [(r["result"]["error"], r["result"]["message"]) for r in records if r["result"]["error"] != "none"] == []


def test_device_that_stays_away_stops_the_run_with_a_resumable_log(task, builder, tmp_path):
    log = tmp_path / "rpc.jsonl"
    with Cluster() as cluster:
        server = cluster.add_server()
        tracker = Tracker("127.0.0.1", cluster.port, cluster.key)
        with RPCRunner(tracker, timing=TIMING, device_wait=2) as runner:
            tune_task(task, log, TuneOptions(4, "random", batch_size=4), builder=builder, runner=runner)
            stop(server)
            with pytest.raises(DeviceLostError, match="run again to resume"):
                tune_task(task, log, TuneOptions(8, "random", batch_size=4), builder=builder, runner=runner)
        assert len(lines(log)) == 4
        assert all(r["result"]["error"] != ErrorKind.DEVICE_LOST.value for r in lines(log))
        cluster.add_server()
        with RPCRunner(tracker, timing=TIMING) as runner:
            resumed = tune_task(task, log, TuneOptions(4, "random", batch_size=4), builder=builder, runner=runner)
    assert resumed.resumed == 4 and len({r["config"]["index"] for r in lines(log)}) == 8
