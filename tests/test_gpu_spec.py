"""GPU presets: their launch limits as data, in the TVM target; the runtime device they run on; where
TVM's OpenCL runtime is found."""
import pytest
import tvm
from tvm import rpc

from targets import PRESETS, get_device
from targets import opencl_runtime
from targets.gpu_spec import MALI_LOCKSTEP, GpuSpec, adreno, mali

GPU_PRESETS = [name for name in PRESETS if get_device(name).family == "opencl"]


def test_every_gpu_preset_states_its_limits_and_puts_them_in_its_target():
    assert GPU_PRESETS == ["mali-bifrost", "mali-valhall", "adreno-6xx", "adreno-7xx"]
    for name in GPU_PRESETS:
        device = get_device(name)
        gpu = device.gpu
        assert isinstance(gpu, GpuSpec) and gpu.shader_cores > 0 and gpu.local_memory_bytes > 0
        attrs = device.tvm_target.attrs
        assert int(attrs["max_threads_per_block"]) == int(attrs["max_num_threads"]) == gpu.max_threads_per_work_group
        assert int(attrs["max_shared_memory_per_block"]) == gpu.local_memory_bytes
        assert gpu.family in device.tvm_target.keys
        assert device.conv_layout == "NCHWc" and device.runtime_kind == "opencl"
    assert get_device("host").gpu is None and get_device("host").conv_layout == "NCHWc"


def test_lockstep_widths_and_registers_follow_the_architecture():
    assert get_device("mali-bifrost").gpu.lockstep_width == 8  # the preset's G76
    assert get_device("mali-valhall").gpu.lockstep_width == 16
    assert {MALI_LOCKSTEP[m] for m in ("G71", "G72", "G51", "G31")} == {4}
    assert {MALI_LOCKSTEP[m] for m in ("G52", "G76")} == {8}
    assert mali("G72", cores=12, max_threads_per_work_group=384).architecture == "bifrost"
    assert mali("G710", cores=10, max_threads_per_work_group=1024).architecture == "valhall"
    for name in ("mali-bifrost", "mali-valhall"):
        assert get_device(name).gpu.registers_per_thread == 64
    for name in ("adreno-6xx", "adreno-7xx"):
        assert get_device(name).gpu.lockstep_width == 64  # a full-precision wave
        assert get_device(name).gpu.registers_per_thread is None
    with pytest.raises(ValueError, match="unknown Mali model"):
        mali("G99", cores=1, max_threads_per_work_group=256)
    with pytest.raises(ValueError, match="not a multiple of its lock-step width"):
        adreno(640, compute_units=2, wave_size=64, max_threads_per_work_group=200)


def test_the_device_says_which_runtime_device_it_runs_on():
    session = rpc.LocalSession()  # an RPC session in this process: remote devices by type
    assert get_device("host").runtime_device() == tvm.cpu(0)
    assert get_device("host").runtime_device(session) == session.cpu(0)
    assert get_device("mali-valhall").runtime_device(session) == session.cl(0)
    assert get_device("mali-valhall").runtime_device(session) != session.cpu(0)


def test_a_gpu_driven_from_this_machine_keeps_its_kernels_and_limits():
    device = get_device("adreno-7xx")
    here = device.driven_from_this_machine()
    assert here.cross_compiler is None and here.host["kind"] == "llvm" and "mtriple" not in here.host
    assert here.gpu == device.gpu and here.target == device.target
    with pytest.raises(ValueError, match="is a CPU"):
        get_device("host").driven_from_this_machine()


def test_the_opencl_runtime_is_found_by_variable_then_beside_the_checkout(tmp_path, monkeypatch):
    (tmp_path / "aarch64").mkdir()
    library = tmp_path / "aarch64" / opencl_runtime.LIBRARY
    library.write_bytes(b"")
    monkeypatch.setenv(opencl_runtime.ENVIRONMENT_VARIABLE, str(tmp_path))
    assert opencl_runtime.find_opencl_runtime("aarch64") == library  # a folder of per-architecture folders
    monkeypatch.setenv(opencl_runtime.ENVIRONMENT_VARIABLE, str(library))
    assert opencl_runtime.find_opencl_runtime("riscv64") == library  # the library itself
    monkeypatch.delenv(opencl_runtime.ENVIRONMENT_VARIABLE)
    folders = opencl_runtime.candidate_folders()
    assert folders[0].parts[-2:] == ("shared", "tvm-opencl-runtime") and folders[-1] == opencl_runtime.SHARED_FALLBACK
    monkeypatch.setattr(opencl_runtime, "SHARED_FALLBACK", tmp_path / "nowhere")
    monkeypatch.setattr(opencl_runtime, "__file__", str(tmp_path / "repo" / "targets" / "opencl_runtime.py"))
    assert opencl_runtime.find_opencl_runtime() is None
