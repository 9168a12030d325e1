"""Winograd conv2d: the computation every device family shares (`compute.py`) and its schedule per family (`cpu.py`)."""
from schedules.winograd.compute import (A_T, B_T, G, Conv2dWinogradCompute, conv2d_winograd_nchwc, winograd_applies,
                                        winograd_kernel, winograd_kernel_numpy)
from schedules.winograd.cpu import Conv2dWinogradCPU

__all__ = [
    "A_T", "B_T", "Conv2dWinogradCPU", "Conv2dWinogradCompute", "G", "conv2d_winograd_nchwc", "winograd_applies",
    "winograd_kernel", "winograd_kernel_numpy",
]
