"""The GPU default schedule: every function of a model bound to GPU threads (dlight's rules, the
work-group fallback), and loud failure when one is not."""
import pytest
import tvm
from tvm import te

from gpu_models import conv_matmul
from autotune.compile import UnboundFunctionError, primfuncs, schedule_model
from autotune.model import import_onnx, lower
from schedules.default import gpu as gpu_default
from schedules.default.gpu import WorkGroupFallback, schedule_gpu_default, unbound_blocks
from schedules.registry import default_schedule
from schedules.workgroup import work_group
from targets import get_device


@pytest.fixture(scope="module")
def lowered():
    """The conv + matmul model lowered as for a GPU: TVM's NCHW convs, no channel padding."""
    return lower(import_onnx(conv_matmul()), layout="NCHW")


def test_the_gpu_lowering_keeps_tvms_layout(lowered):
    names = list(primfuncs(lowered))
    assert any("conv2d" in name for name in names) and any("matmul" in name for name in names)
    text = lowered.script()
    assert "NCHW16c" not in text and "layout_transform" not in text


@pytest.mark.parametrize("preset", ["mali-bifrost", "mali-valhall", "adreno-6xx", "adreno-7xx"])
def test_every_function_gets_a_bound_gpu_schedule(lowered, preset):
    device = get_device(preset)
    scheduled, coverage = schedule_model(lowered, device)
    assert coverage.gpu and not coverage.unscheduled and len(coverage.default_schedule) == len(primfuncs(lowered)) - 1
    assert coverage.fallback == ["matmul(K=1024, M=1, N=10, dtype=float32)"]  # the classifier: the OpenCL template's
    assert sum(coverage.default_rules.values()) == len(coverage.default_schedule)
    assert "dlight Matmul" in coverage.default_rules  # the convs
    assert "on the GPU default schedule" in coverage.summary()
    for name, func in primfuncs(scheduled).items():
        assert func.attrs["tirx.is_scheduled"] and unbound_blocks(func) == [], name


def test_the_work_group_fallback_takes_the_rules_work_group():
    gpu = get_device("mali-valhall").gpu
    a = te.placeholder((1, 64, 56, 56), name="A")
    b = te.compute(a.shape, lambda *i: te.max(a(*i), 0.0), name="B")
    func = te.create_prim_func([a, b])
    assert unbound_blocks(func) == ["B"]
    scheduled, rule = schedule_gpu_default(func, get_device("mali-valhall").tvm_target, gpu)
    assert rule == "work-group Fallback" and unbound_blocks(scheduled) == []
    threads = [int(loop.extent) for loop in _loops(scheduled) if loop.thread_binding is not None
               and loop.thread_binding.thread_tag == "threadIdx.x"]
    assert threads == list(work_group([64 * 56 * 56], gpu).local) == [64]
    adreno = get_device("adreno-7xx")  # two waves of 64, where dlight's Fallback takes the target's 1024
    sch = WorkGroupFallback(adreno.gpu).apply(func, adreno.tvm_target, False)
    assert [int(loop.extent) for loop in _loops(sch.mod["main"]) if loop.thread_binding is not None
            and loop.thread_binding.thread_tag == "threadIdx.x"] == [128]


def test_a_function_no_rule_binds_fails_loudly(lowered, monkeypatch):
    monkeypatch.setattr(gpu_default, "gpu_rules", lambda gpu: [])
    with pytest.raises(UnboundFunctionError, match=r"would run as host code on mali-valhall, bound to no GPU thread: "
                                                   r".*conv2d.*\(not scheduled\)"):
        schedule_model(lowered, get_device("mali-valhall"))


def test_cpus_keep_their_default_schedule():
    a = te.placeholder((64, 64), name="A")
    func = te.create_prim_func([a, te.compute(a.shape, lambda i, j: a[i, j] + 1.0, name="B")])
    scheduled, rule = default_schedule(get_device("host"))(func)
    assert rule == "default" and unbound_blocks(scheduled) == ["B"]  # CPU loops: parallel, never thread-bound


def _loops(func: tvm.tirx.PrimFunc) -> list:
    import tvm_ffi

    loops = []
    tvm_ffi.structural_walk(func.body, [(tvm.tirx.For, loops.append)], order="pre")
    return loops
