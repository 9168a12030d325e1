"""conv2d: the computation every device family shares (`compute.py`) and its schedule per family (`cpu.py`)."""
from schedules.conv2d.compute import (Conv2dCompute, blocked_conv, channel_block, channel_blocks, conv2d_nchwc,
                                      conv_windows, dilation_arg, dilation_of, out_size, pad_nchwc,
                                      window_coefficients)
from schedules.conv2d.cpu import Conv2dCPU

__all__ = [
    "Conv2dCPU", "Conv2dCompute", "blocked_conv", "channel_block", "channel_blocks", "conv2d_nchwc", "conv_windows",
    "dilation_arg", "dilation_of", "out_size", "pad_nchwc", "window_coefficients",
]
