"""The command line as a user runs it: bad input, a real run, kill -9 and resume."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import pytest

from autotune.cli.display import quiet_tvm
from autotune.log.jsonl import LogWarning

CLI = [sys.executable, "-m", "autotune.cli"]


def autotune(*args, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune-op", "conv9d", "--shape", "1,2,3"], "known operators: batch_matmul, conv2d, conv2d_winograd, dense, depthwise_conv2d, group_conv2d, matmul"),
        (["tune-op", "conv2d", "--shape", "1,45,8,8,16,3,3,1,1"], "channel counts must be even"),
        (["tune-op", "matmul", "--shape", "1024,x,3"], "malformed shape"),
        (["tune-op", "matmul", "--shape", "1024,1024"], "M,N,K"),
        (["tune-op", "matmul", "--shape", "8,8,8", "--trials", "0"], "--trials must be positive"),
        (["tune-op", "matmul", "--shape", "8,8,8", "--log", "/nonexistent/dir/x.jsonl"], "cannot write log"),
        (["tune-op", "matmul", "--shape", "8,8,8", "--device", "toaster"], "unknown device"),
        (["tune-op", "matmul", "--shape", "8,8,8", "--transfer-log", "/nonexistent.jsonl"], "no such log file"),
        (["tune-op", "matmul", "--shape", "8,8,8", "--tuner", "random", "--transfer-log", __file__], "needs the model-guided tuner"),
        (["model-eval", "/nonexistent.jsonl"], "no such log file"),
        (["model-eval", __file__, "--train-fraction", "1.5"], "train fraction"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = autotune(*args, cwd=tmp_path)  # a default log path lands there, not in the checkout
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_tune_op_prints_best_config_and_numpy_ratio(tmp_path):
    log = tmp_path / "m.jsonl"
    result = autotune("tune-op", "matmul", "--shape", "64,64,64", "--trials", "4", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert "best config: tile_i=" in result.stdout
    assert "numpy:" in result.stdout and "ratio" in result.stdout
    assert len(log.read_text().splitlines()) == 4


def test_model_eval_reports_rank_correlation_of_a_real_log(tmp_path):
    log = tmp_path / "m.jsonl"
    result = autotune("tune-op", "matmul", "--shape", "128,128,128", "--trials", "48", "--tuner", "random",
                      "--batch-size", "16", "--log", str(log))
    assert result.returncode == 0, result.stderr
    report = autotune("model-eval", str(log))
    assert report.returncode == 0, report.stderr
    line = report.stdout.strip()
    assert "trained on 24, tested on 24" in line
    assert -1.0 <= float(line.split("Spearman ")[1].split(",")[0]) <= 1.0


def test_kill_9_mid_run_loses_nothing_and_resume_measures_no_config_twice(tmp_path):
    log = tmp_path / "m.jsonl"
    args = [*CLI, "tune-op", "matmul", "--shape", "96,160,64", "--trials", "40", "--batch-size", "4", "--log", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 10):
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = log.read_text().splitlines()
    assert 10 <= len(killed_at) < 40
    rerun = autotune("tune-op", "matmul", "--shape", "96,160,64", "--trials", "8", "--batch-size", "4", "--log", str(log))
    assert rerun.returncode == 0, rerun.stderr
    assert "corrupt" not in rerun.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    indices = [line["config"]["index"] for line in lines]
    assert len(lines) == len(killed_at) + 8
    assert len(set(indices)) == len(indices)


TVM_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] .*(Warning|BlockBuilder)|transform\.h:\d+", re.M)


@pytest.fixture(scope="module")
def bert_model(tmp_path_factory) -> str:
    """The demo BERT-style encoder, whose Gather makes TVM's ONNX import log a C++ warning line per use."""
    out = tmp_path_factory.mktemp("models")
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "make_models.py")
    subprocess.run([sys.executable, script, "--only", "bert", "--out", str(out)], check=True, capture_output=True)
    return str(out / "bert.onnx")


def test_model_commands_hide_tvm_log_lines_unless_verbose(bert_model, tmp_path):
    quiet = [
        autotune("tasks", bert_model),
        autotune("compile", bert_model, "-o", str(tmp_path / "bert.so")),
        autotune("tune", bert_model, "--trials", "2", "--tuner", "random", "--log", str(tmp_path / "b.jsonl"),
                 "--repeat", "1", "--min-repeat-ms", "1"),
    ]
    for done in quiet:
        assert done.returncode == 0, done.stderr
        assert not TVM_LINE.search(done.stderr), done.stderr
        assert "importing" in done.stderr  # the command's own lines still show
    verbose = autotune("tasks", bert_model, "--verbose")
    assert verbose.returncode == 0 and verbose.stdout == quiet[0].stdout
    assert len(re.findall(r"transform\.h:\d+: Warning: Fast mode segfaults", verbose.stderr)) >= 2


def test_quiet_tvm_hides_native_and_library_output_and_restores_the_process(capfd):
    before = (warnings.showwarning, warnings.formatwarning, list(warnings.filters))
    with quiet_tvm(verbose=False):
        os.write(2, b"[00:00:00] native.cc:1: Warning: written past Python\n")
        warnings.warn_explicit("a library's warning", UserWarning, "tvm/relax/x.py", 1, module="tvm.relax.x")
        warnings.warn("2 corrupt lines", LogWarning)
        print("our own line", file=sys.stderr)
    err = capfd.readouterr().err
    assert err == "warning: 2 corrupt lines\nour own line\n"
    assert (warnings.showwarning, warnings.formatwarning, list(warnings.filters)) == before
    with quiet_tvm(verbose=True):
        os.write(2, b"native line\n")
        warnings.warn_explicit("a library's warning", UserWarning, "tvm/relax/x.py", 1, module="tvm.relax.x")
    err = capfd.readouterr().err
    assert "native line" in err and "tvm/relax/x.py:1: UserWarning: a library's warning" in err
