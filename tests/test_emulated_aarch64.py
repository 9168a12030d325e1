"""The device path end to end on an emulated aarch64 board (qemu user emulation, TVM RPC).

`scripts/emulated_aarch64.sh prepare` builds the board's root filesystem once (cached
outside the repo; needs root and Debian's package mirror). Kernels run correctly there
but far slower than native: these tests check plumbing and correctness, not speed.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from rpc_cluster import Cluster
from tvm import relax, rpc

from autotune.compile import compile_model
from autotune.model import load_onnx
from targets import get_device

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "emulated_aarch64.sh")
KEY = "emulated-aarch64"


@pytest.fixture(scope="module")
def board():
    subprocess.run(["bash", SCRIPT, "prepare"], check=True, stdout=subprocess.DEVNULL)
    with Cluster(KEY) as cluster:
        started = subprocess.run(
            ["bash", SCRIPT, "start", "--tracker", f"127.0.0.1:{cluster.port}", "--key", KEY],
            capture_output=True, text=True, check=True,
        )
        pid = int(started.stdout.split()[-1])
        try:
            yield cluster
        finally:
            subprocess.run(["bash", SCRIPT, "stop", str(pid)], check=True, stderr=subprocess.DEVNULL)
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)


def tune_on_board(board, log, device: str, shape: str, trials: int, op: str = "matmul") -> list[dict]:
    """`autotune tune-op OP` measured on the board; the log's records."""
    result = subprocess.run(
        [sys.executable, "-m", "autotune.cli", "tune-op", op, "--shape", shape, "--device", device,
         "--rpc", "--tracker", f"127.0.0.1:{board.port}", "--rpc-key", KEY, "--trials", str(trials),
         "--batch-size", "4", "--tuner", "random", "--repeat", "1", "--min-repeat-ms", "1", "--log", str(log)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_tune_matmul_over_rpc_with_outputs_checked_on_the_board(board, tmp_path):
    records = tune_on_board(board, tmp_path / "aarch64.jsonl", "aarch64", "32,48,16", 8)
    assert len(records) == 8
    # "none" means the board's output matched numpy; a wrong kernel would be "wrong_answer".
    assert [r["result"]["error"] for r in records] == ["none"] * 8
    assert all(r["device"] == "aarch64" and r["target"]["mtriple"] == "aarch64-linux-gnu" for r in records)


def tiny_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 8)).astype("float32"), "W")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype("float32"), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["out"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 8])], [weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_model_compiled_for_aarch64_matches_the_host(board, tmp_path):
    module = load_onnx(tiny_model())
    x = np.random.default_rng(1).standard_normal((4, 16)).astype("float32")
    host = relax.VirtualMachine(compile_model(module, get_device("host")), tvm.cpu())
    expected = host["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()

    aarch64 = get_device("aarch64")
    path = str(tmp_path / "model.so")
    aarch64.export_library(compile_model(module, aarch64), path)
    session = rpc.connect_tracker("127.0.0.1", board.port).request(KEY, priority=1)
    session.upload(path)
    dev = session.cpu()
    remote = relax.VirtualMachine(session.load_module("model.so"), dev)
    actual = remote["main"](tvm.runtime.tensor(x, dev)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert (expected > 0).any() and (expected == 0).any()  # relu did something both ways


def test_big_little_threading_knobs_are_tuned_logged_and_applied_on_the_board(board, tmp_path):
    records = tune_on_board(board, tmp_path / "phone.jsonl", "phone-a76-a55", "16,32,16", 6)
    assert [r["result"]["error"] for r in records] == ["none"] * 6
    for record in records:
        knobs = record["config"]["knobs"]
        assert knobs["affinity"] in ("big", "little", "any")
        assert 1 <= knobs["threads"] <= {"big": 4, "little": 4, "any": 8}[knobs["affinity"]]


@pytest.mark.parametrize("op,shape", [("conv2d", "1,32,6,6,32,3,3,1,1"), ("conv2d_winograd", "1,16,4,4,32,3,3,1,1"),
                                      ("depthwise_conv2d", "1,32,6,6,3,3,1,1")])
def test_neon_register_tiles_compute_the_right_numbers_on_the_board(board, tmp_path, op, shape):
    """Sub-block tiles (`tile_ki`: part of a 16-channel block per register tile) and the NEON
    spaces, compiled for the Cortex-A76 and checked against numpy on the (emulated) board."""
    records = tune_on_board(board, tmp_path / f"{op}.jsonl", "cortex-a76", shape, 6, op=op)
    assert [r["result"]["error"] for r in records] == ["none"] * 6
    if op != "depthwise_conv2d":
        assert {r["config"]["knobs"]["tile_ki"][1] for r in records} - {16}, "no sub-block tile was tried"
