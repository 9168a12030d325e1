"""`autotune.measure.steady`: the probe tells a pool whose threads cannot all run at once, and the
steady timer then waits and retries instead of recording a one-thread time."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json
    import os
    import sys
    import time
    from autotune.measure.steady import SteadyTimer, _probe
    from targets.tvm_compat import pool_threads

    probe = _probe(pool_threads())  # starts the pool
    if sys.argv[1] == "one core":  # the pool's threads all on one core, as when the other one is away
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), {min(os.sched_getaffinity(0))})
    calls = []
    timer = SteadyTimer(patience=0.05, pause=0.01)
    results, disturbances = [], []
    for _ in range(5):
        results.append(timer(lambda: calls.append(1) or len(calls)))
        disturbances.append(timer.disturbances)
    calm, deadline = 0, time.time() + 30  # a calm spell of 5 probes in a row, on a machine whose spells come and go
    while sys.argv[1] == "two cores" and calm < 5 and time.time() < deadline:
        calm = 0 if probe.disturbed() else calm + 1
        time.sleep(0.05)
    print(json.dumps({"threads": pool_threads(), "calls": len(calls), "results": results,
                      "disturbances": disturbances, "waiting": timer.waiting, "one_tile": probe.one_tile,
                      "disturbed": [probe.disturbed() for _ in range(10)], "calm": calm}))
""")


def probe_run(where: str) -> dict:
    env = dict(os.environ, TVM_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("TVM_BIND_THREADS", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, where], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                                reason="needs two cores and Linux affinity")


def test_a_pool_short_of_a_core_is_disturbed_waited_out_once_then_measured_as_it_is():
    seen = probe_run("one core")
    assert seen["threads"] == 2 and 5e-6 < seen["one_tile"] < 5e-3
    assert all(seen["disturbed"])
    assert seen["calls"] == 5 and seen["results"] == [1, 2, 3, 4, 5]  # each measured once, in the end
    # the first measurement waits for its patience (several probes); disturbed all along, the machine
    # is busy, not in a spell, and the next ones measure after one probe
    first, *rest = seen["disturbances"]
    assert first >= 2 and [b - a for a, b in zip(seen["disturbances"], rest)] == [1, 1, 1, 1]
    assert seen["waiting"] is False


def test_a_pool_with_its_cores_is_found_calm():
    seen = probe_run("two cores")
    # a shared machine's core is away, or its pool slow to join, in spells of a second or two:
    # within half a minute the probe finds the pool whole five times in a row
    assert seen["calm"] == 5
    assert len(seen["results"]) == 5 and seen["results"] == sorted(seen["results"]) and seen["calls"] >= 5
