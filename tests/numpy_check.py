"""Build a template's PrimFunc with one config and compare its output with the template's numpy reference."""
import numpy as np
import tvm


def check_template(template, wl, device, config, atol: float = 1e-4, target=None) -> None:
    """`target`: build for another CPU than the device's (an ARM device's schedule, run on this machine)."""
    executable = tvm.compile(template.schedule(wl, config, device), target=target or device.tvm_target)
    inputs = template.make_inputs(wl, np.random.default_rng(1))
    expected = template.reference(wl, inputs)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(x, dev) for x in inputs] + [tvm.runtime.tensor(np.full_like(expected, np.nan), dev)]
    executable["main"](*args)
    np.testing.assert_allclose(args[-1].numpy(), expected, rtol=1e-4, atol=atol, err_msg=f"{wl}: {config}")


def check_against_numpy(task, config) -> None:
    check_template(task.template, task.workload, task.device, config)
