"""Which template serves which operator: an explicit registry object, no import-time globals."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from schedules.template import Template

if TYPE_CHECKING:
    from tvm import tirx

    from targets import Device

#: A device family's default schedule: the function scheduled and the rule that did it, or None.
DefaultSchedule = Callable[["tirx.PrimFunc"], "tuple[tirx.PrimFunc, str] | None"]


class TemplateRegistry:
    def __init__(self, templates: Iterable[Template] = ()):
        self._templates: dict[tuple[str, str], Template] = {}
        for template in templates:
            self.register(template)

    def register(self, template: Template) -> None:
        self._templates[(template.op, template.family)] = template

    def ops(self, family: str = "cpu") -> list[str]:
        return sorted(op for op, fam in self._templates if fam == family)

    def templates(self, family: str = "cpu") -> list[Template]:
        """The family's templates, alternative algorithms first: their matchers are the more specific
        (batch_matmul's would also claim the GEMM inside a Winograd convolution)."""
        return sorted((t for (_, fam), t in self._templates.items() if fam == family),
                      key=lambda t: (t.alternative_to is None, t.op))

    def by_name(self, name: str) -> Template:
        """The template called `name` (as logs record it); ValueError when there is none."""
        for template in self._templates.values():
            if template.name == name:
                return template
        raise ValueError(f"unknown template {name!r}")

    def get(self, op: str, family: str = "cpu") -> Template:
        """The template for `op` on `family`; ValueError lists the known operators."""
        try:
            return self._templates[(op, family)]
        except KeyError:
            known = ", ".join(self.ops(family)) or "none"
            raise ValueError(f"unknown operator {op!r} for {family}; known operators: {known}") from None


def default_registry() -> TemplateRegistry:
    """The templates this package ships."""
    from schedules.conv2d.cpu import Conv2dCPU
    from schedules.conv2d.opencl import Conv2dOpenCL
    from schedules.dense.cpu import BatchMatmulCPU, DenseCPU, MatmulCPU
    from schedules.dense.opencl import BatchMatmulOpenCL, DenseOpenCL, MatmulOpenCL
    from schedules.depthwise.cpu import DepthwiseConv2dCPU
    from schedules.depthwise.opencl import DepthwiseConv2dOpenCL
    from schedules.group_conv2d.cpu import GroupConv2dCPU
    from schedules.winograd.cpu import Conv2dWinogradCPU

    return TemplateRegistry([MatmulCPU(), DenseCPU(), BatchMatmulCPU(), Conv2dCPU(), Conv2dWinogradCPU(), DepthwiseConv2dCPU(),
                             GroupConv2dCPU(), MatmulOpenCL(), DenseOpenCL(), BatchMatmulOpenCL(), Conv2dOpenCL(),
                             DepthwiseConv2dOpenCL()])


def default_schedule(device: Device) -> DefaultSchedule:
    """The default schedule of the device's family, for the functions no template owns: CPUs get
    `schedules.default.cpu` (a function it cannot schedule stays a serial loop nest, which is
    correct), OpenCL devices `schedules.default.gpu` (None there means the function would run
    as host code: the caller must not compile it)."""
    target = device.tvm_target
    if device.family == "opencl":
        from schedules.default.gpu import schedule_gpu_default

        return lambda func: schedule_gpu_default(func, target, device.gpu)
    from schedules.default.cpu import schedule_default

    def cpu_default(func: tirx.PrimFunc) -> tuple[tirx.PrimFunc, str] | None:
        scheduled = schedule_default(func, target)
        return None if scheduled is None else (scheduled, "default")

    return cpu_default
