"""Depthwise conv2d (`schedules.depthwise.compute`) on OpenCL GPUs (Mali, Adreno).

The schedule is conv2d's direct one (`schedules.conv2d.opencl.OpenCLConvSchedule`): a work
item's tile of channel blocks x lanes x rows x columns in registers, the lanes as float4
vectors of the data, the kernel and the output alike (every channel is its own convolution,
so no value is broadcast), the R x S taps unrolled or not (`unroll_taps`), the padding read
in place or copied first (`pad`). The kernel is memory-bound (2 * R * S flops per output
value): tiles of several columns let neighbouring taps' data come from the cache.
The computation supports no channel multiplier (one output channel per input channel), nor
does this template.
"""
from __future__ import annotations

from schedules.conv2d.compute import channel_block, out_size
from schedules.conv2d.opencl import OpenCLConvSchedule
from schedules.depthwise.compute import DepthwiseConv2dCompute
from schedules.template import Workload


class DepthwiseConv2dOpenCL(OpenCLConvSchedule, DepthwiseConv2dCompute):
    name = "depthwise_conv2d_nchwc.opencl"

    def out_channels(self, wl: Workload) -> tuple[int, int]:
        cb = channel_block(wl["C"])
        return wl["C"] // cb, cb

    def pixel_extents(self, wl: Workload) -> list[int]:
        """Columns and rows, 1x1 taps included (a per-channel scale is no GEMM)."""
        oh, ow = out_size(wl)
        return [ow, oh]
