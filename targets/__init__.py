"""Device presets: TVM target, threads, template family and toolchain per device."""
from targets.device import Device
from targets.presets import PRESETS, get_device, physical_cores

__all__ = ["Device", "PRESETS", "get_device", "physical_cores"]
