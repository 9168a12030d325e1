"""The GPU commands as a user runs them, over real TVM RPC on PoCL: `tune-op conv2d --device mali-valhall --rpc`
and `tune model.onnx --device adreno-7xx --rpc` against a tracker and an RPC server with TVM's OpenCL runtime
(`--this-host`: the server is this machine standing in for the board), then `compile --log` of the tuned model
checked against ONNX Runtime; a wrong answer on the remote device is logged as one; and the set-up mistakes
(no server under the key, no OpenCL on it, a server of another architecture) end the command in one line."""
import json
import re
import subprocess
import sys

import onnx
import pytest
from faulty_templates import WrongConv2dOpenCL
from gpu_models import conv_matmul, errors, feeds, onnxruntime_output
from opencl_check import TOLERANCE
from rpc_cluster import Cluster

from autotune.measure import ErrorKind, LocalBuilder, TimingOptions
from autotune.measure.rpc_runner import DeviceMismatchError, RPCRunner, Tracker
from autotune.task import Task
from targets import get_device
from targets.opencl_runtime import find_opencl_runtime, opencl_unavailable_reason

pytestmark = pytest.mark.skipif(opencl_unavailable_reason() is not None,
                                reason="TVM's OpenCL runtime or an OpenCL driver (PoCL) is missing here")


@pytest.fixture(scope="module")
def cluster():
    """A tracker with an OpenCL server under "gpu" and a server without OpenCL under "cpu-only"."""
    with Cluster("gpu") as cluster:
        cluster.add_server(load_library=str(find_opencl_runtime()))
        cluster.add_server(key="cpu-only")
        yield cluster


def autotune_cli(*args: str, cluster: Cluster | None, key: str = "gpu") -> subprocess.CompletedProcess:
    """The command, over RPC to the cluster's devices under `key` when there is a cluster."""
    rpc = ["--rpc", "--tracker", f"127.0.0.1:{cluster.port}", "--rpc-key", key] if cluster else []
    return subprocess.run([sys.executable, "-m", "autotune.cli", *args, *rpc], capture_output=True, text=True, timeout=600)


def records(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def measured_on_remote_opencl(lines: list[dict], device: str) -> None:
    """Every line a checked measurement of the OpenCL kernel: its repeats timed (a single time would be the
    OpenCL program's build, which the first call pays: 0.3 s and more on PoCL), no error."""
    assert [(r["result"]["error"], r["result"]["message"]) for r in lines if r["result"]["error"] != "none"] == []
    preset = get_device(device)
    assert preset.runtime_kind == "opencl" and all(r["device"] == device and r["target"] == preset.target for r in lines)
    assert all(len(r["result"]["costs"]) == 3 and max(r["result"]["costs"]) < 0.05 for r in lines)


def test_tune_op_conv2d_on_mali_valhall_over_rpc(cluster, tmp_path):
    log = tmp_path / "conv.jsonl"
    tune = ["tune-op", "conv2d", "--shape", "1,16,16,16,16,3,3,1,1", "--device", "mali-valhall", "--trials", "6",
            "--batch-size", "3", "--tuner", "random", "--log", str(log)]
    result = autotune_cli(*tune, "--this-host", cluster=cluster)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "measured 6 new configs (0 errors)" in result.stdout and "GFLOPS on gpu" in result.stdout
    lines = records(log)
    assert len({r["config"]["index"] for r in lines}) == len(lines) == 6
    assert {r["template"]["name"] for r in lines} == {"conv2d_nchwc.opencl"}
    measured_on_remote_opencl(lines, "mali-valhall")

    board = autotune_cli(*tune, cluster=cluster)  # the board's aarch64 host code cannot load on this machine
    error = board.stderr.splitlines()[-1]
    assert board.returncode == 2 and "Traceback" not in board.stderr, board.stderr[-2000:]
    assert error.startswith(f"autotune: error: the RPC server under key 'gpu' at 127.0.0.1:{cluster.port} cannot load "
                            "a library built for aarch64-linux-gnu") and error.endswith("needs --this-host"), error
    assert len(records(log)) == 6


def test_tune_model_on_adreno_7xx_over_rpc_then_compile_matches_onnxruntime(cluster, tmp_path):
    model, log, library = tmp_path / "conv_matmul.onnx", tmp_path / "model.jsonl", tmp_path / "model.so"
    onnx.save(conv_matmul(), model)
    tune = autotune_cli("tune", str(model), "--device", "adreno-7xx", "--this-host", "--trials", "24",
                        "--tuner", "random", "--log", str(log), cluster=cluster)
    assert tune.returncode == 0, tune.stderr[-2000:]
    assert "measured 24 new configs" in tune.stdout and "not measured" not in tune.stdout
    lines = records(log)
    # the two convs and the classifier, 8 trials each, then each one's best measured until settled
    again = int(re.search(r"and (\d+) re-measurements of the tasks' best configs", tune.stdout).group(1))
    assert again >= 3 and len(lines) == 24 + again and len({r["key"] for r in lines}) == 3
    measured_on_remote_opencl(lines, "adreno-7xx")

    compiled = autotune_cli("compile", str(model), "--device", "adreno-7xx", "--this-host", "--log", str(log),
                            "-o", str(library), cluster=None)
    assert compiled.returncode == 0, compiled.stderr[-2000:]
    assert "3 tasks on templates (3 tuned, 0 on default configs)" in compiled.stdout
    import tvm

    from autotune.compile import load_model

    inputs = feeds(conv_matmul())
    vm = load_model(str(library))
    actual = vm["main"](tvm.runtime.tensor(inputs["input"], get_device("adreno-7xx").runtime_device())).numpy()
    assert errors(actual, onnxruntime_output(conv_matmul(), inputs))[1] <= TOLERANCE


def test_wrong_answer_on_the_remote_device_is_logged_as_one(cluster):
    template = WrongConv2dOpenCL()
    task = Task(template, template.workload((1, 16, 8, 8, 16, 3, 3, 1, 1), "float32"),
                get_device("mali-valhall").driven_from_this_machine())
    inputs = [task.measure_input(task.default_config)]
    with LocalBuilder(n_workers=1) as builder, RPCRunner(Tracker("127.0.0.1", cluster.port, "gpu"),
                                                         timing=TimingOptions(repeat=2, min_repeat_ms=1)) as runner:
        [result] = runner.run(inputs, builder.build(inputs))
    assert result.error is ErrorKind.WRONG_ANSWER and "max abs error 1" in result.message and len(result.costs) == 2


@pytest.mark.parametrize("key, this_host, message", [
    ("nosuch", True, "no RPC server is registered under key 'nosuch' at 127.0.0.1:{port} (keys there: cpu-only, gpu)"),
    ("cpu-only", True, "the RPC server under key 'cpu-only' at 127.0.0.1:{port} has no opencl device: start it with "
                       "TVM's OpenCL runtime"),
    ("gpu", False, "the RPC server under key 'gpu' at 127.0.0.1:{port} cannot load a library built for aarch64-linux-gnu"),
])
def test_a_device_that_cannot_run_the_preset_is_named_before_tuning(cluster, key, this_host, message):
    device = get_device("mali-valhall")
    device = device.driven_from_this_machine() if this_host else device
    with RPCRunner(Tracker("127.0.0.1", cluster.port, key), device_wait=10) as runner:
        with pytest.raises(DeviceMismatchError) as error:
            runner.check(device)
    assert str(error.value).startswith(message.format(port=cluster.port)) and error.value.wrong_architecture == (not this_host)
