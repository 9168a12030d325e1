"""Real templates that fail in one specific, real way, for testing how failures are classified."""
import os

from schedules.conv2d.opencl import Conv2dOpenCL
from schedules.dense import MatmulCPU


class RaisingMatmul(MatmulCPU):
    """Scheduling raises for configs whose tile_k inner factor is 1: a compile error."""

    name = "raising-matmul.cpu"

    def apply(self, sch, wl, cfg, device):
        if cfg["tile_k"][1] == 1:
            sch.vectorize(sch.get_loops(sch.get_sblock(self.op))[-1])  # reduction loop: TVM refuses
        super().apply(sch, wl, cfg, device)


class CrashingMatmul(MatmulCPU):
    """The build worker dies hard (as a segfaulting compiler would)."""

    name = "crashing-matmul.cpu"

    def apply(self, sch, wl, cfg, device):
        os._exit(139)


class WrongMatmul(MatmulCPU):
    """Computes A @ B but claims the answer is A @ B + 1: every output is a wrong answer."""

    name = "wrong-matmul.cpu"

    def reference(self, wl, inputs):
        return super().reference(wl, inputs) + 1


class UnscheduledMatmul(MatmulCPU):
    """No schedule at all: a naive loop nest, slow enough to hit a short run timeout."""

    name = "unscheduled-matmul.cpu"

    def apply(self, sch, wl, cfg, device):
        pass


class WrongConv2dOpenCL(Conv2dOpenCL):
    """The OpenCL direct conv, checked against conv + 1: every output is a wrong answer."""

    name = "wrong-conv2d.opencl"

    def reference(self, wl, inputs):
        return super().reference(wl, inputs) + 1
