"""Grouped conv2d: the computation every device family shares (`compute.py`) and its schedule per family (`cpu.py`)."""
from schedules.group_conv2d.compute import (DIMS, GROUPS_ATTR, MAX_WASTE, GroupConv2dCompute, first_block,
                                            group_conv2d_nchwc, group_kernel, group_layout, pack_group_kernel)
from schedules.group_conv2d.cpu import GroupConv2dCPU

__all__ = [
    "DIMS", "GROUPS_ATTR", "MAX_WASTE", "GroupConv2dCPU", "GroupConv2dCompute", "first_block", "group_conv2d_nchwc",
    "group_kernel", "group_layout", "pack_group_kernel",
]
