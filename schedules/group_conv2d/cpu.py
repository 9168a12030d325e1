"""Grouped conv2d on CPU: the knobs, default config and schedule of the plain conv2d (`Conv2dCPU`)."""
from __future__ import annotations

from schedules.conv2d.cpu import Conv2dCPU
from schedules.group_conv2d.compute import GroupConv2dCompute


class GroupConv2dCPU(GroupConv2dCompute, Conv2dCPU):
    """Grouped (not depthwise) conv2d; the knobs, default config and schedule of `Conv2dCPU`."""

    name = "group_conv2d_nchwc.cpu"
    family = "cpu"
    version = 2  # 2: Conv2dCPU's (tiny convs on the calling thread)
