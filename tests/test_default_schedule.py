"""Default schedules (schedules/default/cpu.py): parallel, vectorized where the data allows, and still right."""
import importlib.util
import os

import numpy as np
import pytest
import tvm
import tvm_ffi
from tvm import relax, s_tir, te, tirx

from autotune.model import load_onnx
from schedules.default import cpu as default
from schedules.default import default_rules, schedule_default, schedule_leftover_blocks
from targets import get_device

_spec = importlib.util.spec_from_file_location(
    "make_models", os.path.join(os.path.dirname(__file__), "..", "scripts", "make_models.py"))
make_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_models)

SMALL = {
    "resnet18": lambda: make_models.resnet18(image=32, classes=10, width=8),
    "mobilenetv2": lambda: make_models.mobilenetv2(image=32, classes=10),
    "bert": lambda: make_models.bert(layers=1, hidden=32, heads=2, seq=8, vocab=50),
}
TEMPLATE_OPS = ("conv2d", "matmul")


@pytest.fixture(scope="module")
def device():
    return get_device("host")


@pytest.fixture
def small_tasks(monkeypatch):
    """Split even tiny outputs into several parallel tasks, so the numeric checks cover task splits."""
    monkeypatch.setattr(default, "MIN_TASK_ELEMENTS", 16)


def loop_kinds(func: tirx.PrimFunc) -> list[tuple[tirx.ForKind, int | None]]:
    """(kind, extent or None if symbolic) of every loop in the function."""
    loops = []

    def visit(loop: tirx.For) -> None:
        extent = int(loop.extent) if isinstance(loop.extent, tirx.IntImm) else None
        loops.append((loop.kind, extent))

    tvm_ffi.structural_walk(func.body, (tirx.For, visit))
    return loops


def parallel_extents(func: tirx.PrimFunc) -> list[int]:
    return [e for k, e in loop_kinds(func) if k == tirx.ForKind.PARALLEL]


def vector_extents(func: tirx.PrimFunc) -> list[int]:
    return [e for k, e in loop_kinds(func) if k == tirx.ForKind.VECTORIZED]


def output_buffer(func: tirx.PrimFunc):
    return func.params[-1]  # legalized Relax PrimFuncs write their result through the last parameter


def model_inputs(model, rng) -> list[np.ndarray]:
    arrays = []
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == 7:  # int64: token ids and masks
            data = rng.integers(0, 40, shape).astype(np.int64)
            if value.name == "attention_mask":
                data = np.ones(shape, np.int64)
                data[..., -2:] = 0
            arrays.append(data)
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def run_module(mod: tvm.IRModule, device, inputs: list[np.ndarray]) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, target=device.tvm_target), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(x) for x in inputs]).numpy()


def schedule_module(mod: tvm.IRModule, device) -> tuple[tvm.IRModule, dict[str, tirx.PrimFunc]]:
    """The module with every non-template PrimFunc default-scheduled, and those functions by name."""
    scheduled = {}
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tirx.PrimFunc) and not any(op in gv.name_hint for op in TEMPLATE_OPS):
            result = schedule_default(func, device.tvm_target)
            assert result is not None, f"no default schedule for {gv.name_hint}"
            assert result.attrs["tirx.is_scheduled"]
            scheduled[gv.name_hint] = result
            mod.update_func(gv, result)
    return mod, scheduled


@pytest.mark.parametrize("name", SMALL)
def test_small_models_keep_their_outputs_and_every_leftover_func_runs_parallel(name, device, small_tasks):
    model = SMALL[name]()
    inputs = model_inputs(model, np.random.default_rng(0))
    mod = load_onnx(model)
    expected = run_module(mod, device, inputs)  # before update_func changes the module in place
    scheduled_mod, scheduled = schedule_module(mod, device)
    assert scheduled, "the model has functions no template covers"
    np.testing.assert_allclose(run_module(scheduled_mod, device, inputs), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected).max() > 1e-3
    for func_name, func in scheduled.items():
        out = output_buffer(func)
        elements = int(np.prod([int(d) for d in out.shape]))
        assert max(parallel_extents(func), default=0) >= (2 if elements >= 256 else 1), f"{func_name}:\n{func}"
        lanes = device.vector_lanes(str(out.dtype) if str(out.dtype) != "bool" else "int8")
        if out.shape and int(out.shape[-1]) >= lanes:
            assert vector_extents(func), f"{func_name} has no vectorized loop:\n{func}"


# --- single operators, odd shapes: legalized from Relax as a model would be --------------

def relax_op(build, *shapes_dtypes) -> tvm.IRModule:
    """A Relax module computing `build(*params)`, legalized and fused like a model."""
    bb = relax.BlockBuilder()
    params = [relax.Var(f"x{i}", relax.TensorType(shape, dtype)) for i, (shape, dtype) in enumerate(shapes_dtypes)]
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(build(*params))
        bb.emit_func_output(out)
    return relax.get_pipeline("zero")(bb.get())


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _max_pool(x):  # 3x3, stride 2, pad 1
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2, w + 2), -np.inf, np.float32)
    padded[:, :, 1:-1, 1:-1] = x
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return np.stack([padded[:, :, r:r + 2 * oh:2, s:s + 2 * ow:2] for r in range(3) for s in range(3)]).max(0)


def _from_blocked(x):  # NCHW16c -> NCHW
    n, cb, h, w, c = x.shape
    return x.transpose(0, 1, 4, 2, 3).reshape(n, cb * c, h, w)


def _layer_norm(x, g, b):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * g + b


CASES = {
    "softmax_127": (lambda x: relax.op.nn.softmax(x), [((3, 127), "float32")], _softmax),
    "softmax_rows": (lambda x: relax.op.nn.softmax(x), [((2, 3, 40, 48), "float32")], _softmax),
    "transpose_3x5x7": (lambda x: relax.op.permute_dims(x, [2, 0, 1]), [((3, 5, 7), "float32")],
                        lambda x: x.transpose(2, 0, 1)),
    "transpose_tiled": (lambda x: relax.op.permute_dims(x, [0, 2, 1]), [((2, 48, 80), "float32")],
                        lambda x: x.transpose(0, 2, 1)),
    "max_pool_3x3_s2": (lambda x: relax.op.nn.max_pool2d(x, 3, 2, 1), [((1, 16, 15, 15), "float32")], _max_pool),
    "max_pool_nchw16c": (lambda x: relax.op.nn.max_pool2d(x, 3, 2, 1, layout="NCHW16c"), [((1, 2, 15, 15, 16), "float32")],
                         lambda x: _max_pool(_from_blocked(x)).reshape(1, 2, 16, 8, 8).transpose(0, 1, 3, 4, 2)),
    # 93 (channel, depth) rows: parallel tasks must not cut across rows, or the division
    # computed per task reads sums another task has not finished (ONNX's averagepool_3d_default)
    "avg_pool3d_2x2x2": (lambda x: relax.op.nn.avg_pool3d(x, 2, 1), [((1, 3, 32, 32, 32), "float32")],
                         lambda x: np.lib.stride_tricks.sliding_window_view(x, (2, 2, 2), (2, 3, 4)).mean((-3, -2, -1))),
    "mean_hw": (lambda x: relax.op.mean(x, [2, 3], keepdims=True), [((1, 13, 7, 9), "float32")],
                lambda x: x.mean((2, 3), keepdims=True)),
    "mean_1x1": (lambda x: relax.op.mean(x, [2, 3], keepdims=True), [((1, 40, 1, 1), "float32")],
                 lambda x: x.mean((2, 3), keepdims=True)),
    "layer_norm_33": (lambda x, g, b: relax.op.nn.layer_norm(x, g, b, [-1]),
                      [((5, 33), "float32"), ((33,), "float32"), ((33,), "float32")], _layer_norm),
    "layer_norm_192": (lambda x, g, b: relax.op.nn.layer_norm(x, g, b, [-1]),
                       [((197, 192), "float32"), ((192,), "float32"), ((192,), "float32")], _layer_norm),
    "softmax_197_tokens": (lambda x: relax.op.nn.softmax(x), [((1, 3, 197, 197), "float32")], _softmax),
    "softmax_rows_64": (lambda x: relax.op.nn.softmax(x), [((3, 7, 64), "float32")], _softmax),
    "broadcast_add_tail": (lambda x, y: relax.op.add(x, y), [((37, 1001), "float32"), ((1001,), "float32")],
                           lambda x, y: x + y),
    "elementwise_large": (lambda x, y: relax.op.multiply(relax.op.add(x, y), y),
                          [((256, 1000), "float32"), ((256, 1000), "float32")], lambda x, y: (x + y) * y),
    "take_rows": (lambda table, ids: relax.op.take(table, ids, axis=0),
                  [((50, 33), "float32"), ((2, 9), "int64")], lambda table, ids: table[ids]),
    "cast_where": (lambda x, y: relax.op.where(relax.op.less(x, relax.const(0.0)), relax.op.astype(y, "float32"), x),
                   [((3, 37), "float32"), ((3, 37), "int64")], lambda x, y: np.where(x < 0, y.astype(np.float32), x)),
    "reshape_transpose": (lambda x: relax.op.permute_dims(relax.op.reshape(x, (1, 9, 4, 12)), [0, 2, 1, 3]),
                          [((1, 9, 48), "float32")], lambda x: x.reshape(1, 9, 4, 12).transpose(0, 2, 1, 3)),
    "to_nchw16c": (lambda x: relax.op.layout_transform(x, index_map=lambda n, c, h, w: (n, c // 16, h, w, c % 16)),
                   [((1, 48, 7, 7), "float32")], lambda x: x.reshape(1, 3, 16, 7, 7).transpose(0, 1, 3, 4, 2)),
    "from_nchw16c": (lambda x: relax.op.layout_transform(x, index_map=lambda n, c, h, w, b: (n, c * 16 + b, h, w)),
                     [((1, 2, 14, 16, 16), "float32")], lambda x: x.transpose(0, 1, 4, 2, 3).reshape(1, 32, 14, 16)),
}


def _data(shape, dtype, rng, bound: int) -> np.ndarray:
    if dtype == "int64":
        return rng.integers(0, bound, shape).astype(np.int64)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", CASES)
def test_single_operators_on_odd_shapes_match_numpy(case, device, small_tasks):
    build, signature, reference = CASES[case]
    rng = np.random.default_rng(1)
    inputs = [_data(shape, dtype, rng, bound=50) for shape, dtype in signature]
    mod, scheduled = schedule_module(relax_op(build, *signature), device)
    for func_name, func in scheduled.items():
        assert parallel_extents(func), f"{func_name} has no parallel loop:\n{func}"
    np.testing.assert_allclose(run_module(mod, device, inputs), reference(*inputs), rtol=1e-5, atol=1e-5)


def test_large_outputs_get_several_parallel_tasks_and_small_ones_one(device):
    _, scheduled = schedule_module(relax_op(CASES["elementwise_large"][0], *CASES["elementwise_large"][1]), device)
    (func,) = scheduled.values()
    assert max(parallel_extents(func)) >= 2  # 256k elements
    assert device.vector_lanes("float32") in vector_extents(func)
    _, scheduled = schedule_module(relax_op(CASES["cast_where"][0], *CASES["cast_where"][1]), device)
    (func,) = scheduled.values()
    assert parallel_extents(func) == [1]  # 111 elements: waking the thread pool would cost more than the work


def test_transposes_are_tiled_so_stores_stay_vectors(device):
    _, scheduled = schedule_module(relax_op(CASES["transpose_tiled"][0], *CASES["transpose_tiled"][1]), device)
    (func,) = scheduled.values()
    lanes = device.vector_lanes("float32")
    kinds = loop_kinds(func)
    assert (tirx.ForKind.VECTORIZED, lanes) in kinds, func  # whole-vector stores along the output row
    assert (tirx.ForKind.SERIAL, lanes) in kinds, func  # inside a lanes x lanes tile of the input


def test_blocked_pooling_is_vectorized_along_the_channel_block(device):
    """The pad's bounds check depends on H and W only: the same for all 16 lanes of a channel block."""
    _, scheduled = schedule_module(relax_op(CASES["max_pool_nchw16c"][0], *CASES["max_pool_nchw16c"][1]), device)
    (func,) = scheduled.values()
    assert vector_extents(func).count(16) >= 3, func  # the pad, the pool's init and its update


def test_reductions_along_rows_sum_in_vector_lanes(device):
    """Layer norm over 192 contiguous channels: each sum accumulates 16 lanes at a time (rfactor), not one scalar chain."""
    _, scheduled = schedule_module(relax_op(CASES["layer_norm_192"][0], *CASES["layer_norm_192"][1]), device)
    (func,) = scheduled.values()
    assert vector_extents(func).count(16) >= 5, func  # mean and variance: init and update each, and the output


def test_full_reduction_to_a_scalar_gets_no_default_schedule(device):
    x = te.placeholder((1000,), "float32", name="x")
    k = te.reduce_axis((0, 1000), "k")
    total = te.compute((1,), lambda i: te.sum(x[k], axis=k), name="total")
    func = te.create_prim_func([x, total])
    assert schedule_default(func, device.tvm_target) is None  # nothing to split without rfactor


def test_symbolic_shapes_are_parallel_and_correct(device):
    n = tirx.Var("n", "int64")
    a = te.placeholder((n, 17), "float32", name="a")
    b = te.compute((n, 17), lambda i, j: a[i, j] * 2.0 + 1.0, name="b")
    func = schedule_default(te.create_prim_func([a, b]), device.tvm_target)
    assert func is not None
    assert any(kind == tirx.ForKind.PARALLEL for kind, _ in loop_kinds(func)), func
    x = np.random.default_rng(0).standard_normal((37, 17)).astype(np.float32)
    out = tvm.runtime.tensor(np.zeros_like(x))
    tvm.compile(tvm.IRModule({"main": func}), target=device.tvm_target)["main"](tvm.runtime.tensor(x), out)
    np.testing.assert_allclose(out.numpy(), x * 2 + 1, rtol=1e-6)


def test_dlight_reduction_is_the_last_resort():
    rules = default_rules()
    assert type(rules[-1]).__name__ == "Reduction" and type(rules[-1]).__module__.startswith("tvm.s_tir.dlight")


# --- schedule_leftover_blocks: a template's epilogue ---------------------------------------

def matmul_bias(m: int, n: int, k: int) -> tirx.PrimFunc:
    a = te.placeholder((m, k), "float32", name="A")
    b = te.placeholder((k, n), "float32", name="B")
    bias = te.placeholder((n,), "float32", name="bias")
    r = te.reduce_axis((0, k), "k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="matmul")
    d = te.compute((m, n), lambda i, j: c[i, j] + bias[j], name="bias_add")
    return te.create_prim_func([a, b, bias, d])


@pytest.mark.parametrize("shape", [(64, 48, 32), (13, 37, 5)])
def test_leftover_epilogue_block_becomes_parallel_and_stays_correct(shape, device):
    m, n, k = shape
    sch = s_tir.Schedule(matmul_bias(m, n, k))
    matmul = sch.get_sblock("matmul")
    sch.parallel(sch.get_loops(matmul)[0])  # the "template" part
    lanes = device.vector_lanes("float32")
    schedule_leftover_blocks(sch, [sch.get_sblock("bias_add")], lanes)
    schedule_leftover_blocks(sch, [matmul, sch.get_sblock("bias_add")], lanes)  # again, and a reduction: no-ops
    func = sch.mod["main"]
    bias_loops = []
    tvm_ffi.structural_walk(func.body, (tirx.For, lambda f: bias_loops.append(f)))
    kinds = [f.kind for f in bias_loops]
    assert kinds.count(tirx.ForKind.PARALLEL) == 2, func  # the matmul's and the bias add's
    if n >= lanes:
        assert tirx.ForKind.VECTORIZED in kinds, func
    rng = np.random.default_rng(2)
    a, b, bias = (rng.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n), (n,)))
    out = tvm.runtime.tensor(np.zeros((m, n), np.float32))
    lib = tvm.compile(tvm.IRModule({"main": func}), target=device.tvm_target)
    lib["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), tvm.runtime.tensor(bias), out)
    np.testing.assert_allclose(out.numpy(), a @ b + bias, rtol=1e-4, atol=1e-4)


def test_leftover_blocks_that_cannot_be_vectorized_are_parallel_only(device):
    """A gather through an index buffer: no vector loop, but still parallel, still right."""
    table = te.placeholder((100, 40), "float32", name="table")
    ids = te.placeholder((40,), "int64", name="ids")
    out = te.compute((64, 40), lambda i, j: table[ids[j], i % 40] + 1.0, name="gather")
    sch = s_tir.Schedule(te.create_prim_func([table, ids, out]))
    schedule_leftover_blocks(sch, [sch.get_sblock("gather")], device.vector_lanes("float32"))
    func = sch.mod["main"]
    assert parallel_extents(func) and not vector_extents(func), func
    rng = np.random.default_rng(3)
    t, i = rng.standard_normal((100, 40)).astype(np.float32), rng.integers(0, 100, 40)
    result = tvm.runtime.tensor(np.zeros((64, 40), np.float32))
    tvm.compile(tvm.IRModule({"main": func}), target=device.tvm_target)["main"](
        tvm.runtime.tensor(t), tvm.runtime.tensor(i), result)
    rows = np.arange(64)[:, None] % 40
    np.testing.assert_allclose(result.numpy(), t[i[None, :], rows] + 1.0, rtol=1e-6)
