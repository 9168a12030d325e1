"""One test per entry of `targets.tvm_compat`: each fails here, by name, when TVM changes the internal."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import tvm
from tvm import rpc, te
from tvm.s_tir import meta_schedule as ms
from tvm.support.popen_pool import PopenPoolExecutor

from targets import tvm_compat


def matmul_schedule(n: int = 16) -> tvm.s_tir.Schedule:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.s_tir.Schedule(te.create_prim_func([a, b, c]))


def test_host_cpu_name_is_a_real_llvm_cpu():
    name = tvm_compat.host_cpu_name()
    assert name and name not in ("generic", "native")
    assert tvm.target.Target({"kind": "llvm", "mcpu": name}).attrs["mcpu"] == name


def test_config_threadpool_sets_the_thread_count_here():
    num_threads = tvm.get_global_func("runtime.NumThreads")
    before = num_threads()
    try:
        tvm_compat.config_threadpool()(0, 1)
        assert num_threads() == 1
    finally:
        tvm_compat.config_threadpool()(0, before)


def test_config_threadpool_and_ping_reach_an_rpc_session():
    session = rpc.LocalSession()
    tvm_compat.ping(session)
    assert callable(tvm_compat.config_threadpool(session))


def test_missing_global_function_fails_by_name():
    with pytest.raises(tvm_compat.TVMCompatError, match="no global function 'no.such.function'"):
        tvm_compat._global_func("no.such.function")


def test_sblock_realize_binds_the_block_iterators_to_loops():
    sch = matmul_schedule()
    block = sch.get_sblock("C")
    realize = tvm_compat.sblock_realize(sch, block)
    assert isinstance(realize, tvm.s_tir.SBlockRealize)
    assert len(realize.iter_values) == len(sch.get(block).iter_vars) == 3
    assert {str(v) for v in realize.iter_values} == {str(sch.get(loop).loop_var) for loop in sch.get_loops(block)}


def test_bare_tune_context_serves_the_feature_extractor():
    target = tvm.target.Target({"kind": "llvm", "num-cores": 2})
    context = tvm_compat.bare_tune_context(target)
    assert isinstance(context, ms.TuneContext) and str(context.target.kind) == "llvm"
    func = matmul_schedule().mod["main"]
    features = ms.feature_extractor.PerStoreFeature().extract_from(context, [ms.MeasureCandidate(tvm.s_tir.Schedule(func), [])])
    assert features[0].numpy().shape == (1, 164)


def test_shutdown_pool_stops_the_workers_and_the_lock_it_may_release_exists():
    pool = PopenPoolExecutor(max_workers=1, timeout=30)
    assert isinstance(pool._lock, type(threading.Lock()))  # what the race workaround releases
    assert pool.submit(np.add, 1, 2).result() == 3
    (worker,) = pool._worker_map.values()
    tvm_compat.shutdown_pool(pool)
    deadline = time.time() + 10
    while worker.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert not worker.is_alive()


def test_kernel_launches_are_calls_in_the_module_after_the_named_pass():
    from targets import get_device

    a = te.placeholder((64,), name="A")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, te.compute((64,), lambda i: a[i] + 1.0, name="B")]))
    bx, tx = sch.split(sch.get_loops(sch.get_sblock("B"))[0], [None, 16])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    seen = []

    @tvm.instrument.pass_instrument
    class Instrument:
        def run_after_pass(self, module, info):
            if info.name == tvm_compat.LOWERED_HOST_DEVICE_PASS:
                seen.append(module)

    with tvm.transform.PassContext(instruments=[Instrument()]):
        tvm.compile(sch.mod, target=get_device("mali-valhall").tvm_target)
    calls = []
    import tvm_ffi

    tvm_ffi.structural_walk(seen[-1]["main"].body, [(tvm.ir.Call, lambda c: calls.append(c) if tvm_compat.is_kernel_launch(c) else None)])
    assert len(calls) == 1 and [str(t) for t in calls[0].attrs.launch_params] == ["blockIdx.x", "threadIdx.x"]
    assert [int(x) for x in calls[0].args[-2:]] == [4, 16]


SCRIPT = textwrap.dedent("""
    import json
    import os
    import numpy as np
    import tvm
    from tvm import te
    from targets.tvm_compat import apart_from_workers, worker_cores

    a = te.placeholder((64, 64), name="A")
    b = te.compute((64, 64), lambda i, j: a[i, j] * 2, name="B")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b]))
    sch.parallel(sch.get_loops(sch.get_sblock("B"))[0])
    lib = tvm.compile(sch.mod, target="llvm")
    x = tvm.runtime.tensor(np.ones((64, 64), "float32"))
    y = tvm.runtime.empty((64, 64), "float32")
    before = os.sched_getaffinity(0)
    seen = {"before": sorted(before)}
    with apart_from_workers():  # no pool yet: nothing to keep apart from
        seen["idle"] = sorted(os.sched_getaffinity(0))
    lib["main"](x, y)
    seen["ready"] = sorted(os.sched_getaffinity(0))  # TVM sets the caller's cores when its pool starts
    with apart_from_workers():
        lib["main"](x, y)
        seen["inside"] = sorted(os.sched_getaffinity(0))
    seen["workers"] = sorted(worker_cores())
    seen["after"] = sorted(os.sched_getaffinity(0))
    seen["value"] = float(y.numpy()[5, 5])
    print(json.dumps(seen))
""")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs two cores and Linux affinity")
def test_apart_from_workers_moves_the_calling_thread_leaves_the_workers_cores_and_gets_its_own_back():
    env = dict(os.environ, TVM_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("TVM_BIND_THREADS", None)
    seen = json.loads(subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    assert seen["idle"] == seen["before"]
    assert seen["workers"] and seen["inside"] and not set(seen["inside"]) & set(seen["workers"])
    assert seen["after"] == seen["ready"] and seen["value"] == 2.0
