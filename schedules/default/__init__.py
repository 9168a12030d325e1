"""Default schedules for the functions of a model no template serves, one file per device family:
`cpu.py` (with `cpu_access.py`, what its rules ask of a block's accesses) and `gpu.py` (dlight); `rules.py` applies one
dlight rule for either."""
from schedules.default.cpu import default_rules, schedule_default, schedule_leftover_blocks
from schedules.default.gpu import WorkGroupFallback, gpu_rules, schedule_gpu_default, unbound_blocks

__all__ = [
    "WorkGroupFallback", "default_rules", "gpu_rules", "schedule_default", "schedule_gpu_default",
    "schedule_leftover_blocks", "unbound_blocks",
]
