"""Device presets: TVM target, threads, template family and toolchain per device."""
from targets.cpu_kind import CpuKind, cpu_kind
from targets.device import Device
from targets.gpu_spec import GpuSpec
from targets.presets import PRESETS, get_device, physical_cores

__all__ = ["CpuKind", "Device", "GpuSpec", "PRESETS", "cpu_kind", "get_device", "physical_cores"]
