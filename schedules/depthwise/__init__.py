"""Depthwise conv2d: the computation every device family shares (`compute.py`) and its schedule per family
(`cpu.py`)."""
from schedules.depthwise.compute import DIMS, DepthwiseConv2dCompute, depthwise_nchwc
from schedules.depthwise.cpu import DepthwiseConv2dCPU

__all__ = ["DIMS", "DepthwiseConv2dCPU", "DepthwiseConv2dCompute", "depthwise_nchwc"]
