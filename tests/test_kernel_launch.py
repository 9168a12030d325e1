"""Kernel launches read from the compiled module's lowered host code, checked against the GPU's limits."""
import pytest
import tvm
from tvm import s_tir, te

from autotune.compile import UnboundFunctionError, compile_model_with_launches, functions_without_kernels
from targets import get_device
from targets.kernel_launch import (
    KernelLaunch, LaunchLimitError, check_launches, compile_recording_launches, hard_violations,
)


def elementwise(rows: int, cols: int, name: str) -> tvm.tirx.PrimFunc:
    a = te.placeholder((rows, cols), name="A")
    b = te.compute((rows, cols), lambda i, j: a[i, j] * 2.0, name="B")
    return te.create_prim_func([a, b]).with_attr("global_symbol", name)


def bound(func: tvm.tirx.PrimFunc, threads: tuple[int, int], shared: bool = False) -> tvm.tirx.PrimFunc:
    """Rows over work groups, a (y, x) tile of threads per work group; `shared` stages A through local memory."""
    sch = s_tir.Schedule(func)
    block = sch.get_sblock("B")
    i, j = sch.get_loops(block)
    io, ii = sch.split(i, [None, threads[0]])
    jo, ji = sch.split(j, [None, threads[1]])
    sch.reorder(io, jo, ii, ji)
    sch.bind(sch.fuse(io, jo), "blockIdx.x")
    sch.bind(ii, "threadIdx.y")
    sch.bind(ji, "threadIdx.x")
    if shared:
        cache = sch.cache_read(block, 0, "shared")
        sch.compute_at(cache, sch.get_loops(block)[0])
        sch.bind(sch.fuse(*sch.get_loops(cache)[1:]), "threadIdx.x")
    return sch.mod["main"].with_attr("global_symbol", func.attrs["global_symbol"])


def test_launches_are_read_from_the_lowered_host_code():
    device = get_device("mali-valhall")
    module = tvm.IRModule({"small": bound(elementwise(64, 256, "small"), (4, 16)),
                           "staged": bound(elementwise(32, 64, "staged"), (1, 64), shared=True)})
    _, launches = compile_recording_launches(module, device.tvm_target)
    small, staged = launches[0], launches[1]
    assert (small.kernel, small.work_group, small.groups) == ("small_kernel", (16, 4), (256, 1))
    assert small.threads == 64 and small.global_size == (4096, 4) and small.local_memory_bytes == 0
    assert staged.kernel == "staged_kernel" and staged.local_memory_bytes == 64 * 4
    assert check_launches(launches, device.gpu) == []


def test_violations_name_the_kernel_and_the_limit():
    bifrost = get_device("mali-bifrost").gpu
    launches = [KernelLaunch("big_kernel", (4,), (512,)), KernelLaunch("odd_kernel", (64,), (12,)),
                KernelLaunch("tile_kernel", (64,), (64,), local_memory_bytes=64 * 1024, register_array_words=96),
                KernelLaunch("tiny_kernel", (1,), (5,))]
    violations = check_launches(launches, bifrost)
    text = [str(v) for v in violations]
    assert text == ["big_kernel: threads per work group 512 over 256",
                    "odd_kernel: threads per work group 12 not a multiple of 8",
                    "tile_kernel: local memory bytes 65536 over 32768",
                    "tile_kernel: registers per thread (its arrays alone) 96 over 64"]
    assert [v.kernel for v in hard_violations(launches, bifrost)] == ["big_kernel", "tile_kernel", "tile_kernel"]
    adreno = get_device("adreno-6xx").gpu  # no fixed register budget per thread
    assert [str(v) for v in hard_violations(launches[2:3], adreno)] == ["tile_kernel: local memory bytes 65536 over 32768"]


def test_compiling_a_kernel_past_the_limits_fails_by_name():
    module = tvm.IRModule({"wide": bound(elementwise(8, 1024, "wide"), (1, 512)).with_attr("tirx.is_scheduled", True)})
    _, launches = compile_model_with_launches(module, get_device("mali-valhall"))  # 512 threads: Valhall's limit
    assert launches[0].threads == 512
    with pytest.raises(LaunchLimitError, match="wide_kernel: threads per work group 512 over 256"):
        compile_model_with_launches(module, get_device("mali-bifrost"))


def test_a_function_left_as_host_code_is_caught_after_compiling():
    module = tvm.IRModule({"host_loop": elementwise(8, 8, "host_loop").with_attr("tirx.is_scheduled", True),
                           "kernel": bound(elementwise(8, 64, "kernel"), (1, 64)).with_attr("tirx.is_scheduled", True)})
    device = get_device("adreno-7xx")
    _, launches = compile_recording_launches(module, device.tvm_target)
    assert functions_without_kernels(module, launches) == ["host_loop"]  # TVM compiled it without a word
    with pytest.raises(UnboundFunctionError, match="compiled to host code on adreno-7xx, with no OpenCL kernel: host_loop"):
        compile_model_with_launches(module, device)


def test_a_function_fused_again_by_tvm_compile_counts_as_a_kernel():
    """tvm.compile's FuseOps/FuseTIR may fuse a call again (a tuple item with the function that reads it):
    the kernel is then "fused_<function>_kernel", and a prefix of the name is no match."""
    module = tvm.IRModule({"fused_pad11": elementwise(8, 8, "fused_pad11"), "fused_pad1": elementwise(8, 8, "p")})
    launches = [KernelLaunch("fused_fused_pad11_kernel", (1,), (64,)), KernelLaunch("fused_pad1_kernel_1", (1,), (8,))]
    assert functions_without_kernels(module, launches) == []
    assert functions_without_kernels(module, launches[:1]) == ["fused_pad1"]


def test_a_kernel_of_another_function_of_the_model_does_not_cover_a_part_of_its_name():
    """Only a function tvm.compile made (not one of the model's) is read as a fusion of several."""
    module = tvm.IRModule({"add2": elementwise(8, 8, "add2"), "fused_conv2d1_add2": elementwise(8, 8, "c")})
    launches = [KernelLaunch("fused_conv2d1_add2_kernel", (1,), (64,))]
    assert functions_without_kernels(module, launches) == ["add2"]
