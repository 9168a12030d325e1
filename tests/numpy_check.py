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


def unwritten_outputs(module, target) -> dict[str, int]:
    """Per scheduled PrimFunc of `module`, output elements it leaves as they were (0s omitted).

    Each function is built alone, given random inputs and an output filled with NaN, then
    with 0: an element that stays NaN, or differs between the two, was never written. A
    model that reads such an element gets whatever the allocator left there, so its output
    is right on most runs and wrong on a few.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    found = {}
    for gvar, func in module.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        name = gvar.name_hint
        executable = tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), target=target)
        *inputs, output = [([int(d) for d in p.shape], str(p.dtype)) for p in func.params]
        args = [rng.standard_normal(shape).astype(dtype) if "float" in dtype else np.zeros(shape, dtype)
                for shape, dtype in inputs]
        results = []
        for fill in (np.nan, 0.0):
            tensors = [tvm.runtime.tensor(x) for x in args] + [tvm.runtime.tensor(np.full(output[0], fill, output[1]))]
            executable[name](*tensors)
            results.append(tensors[-1].numpy())
        unwritten = int((np.isnan(results[0]) | (results[0] != results[1]) & ~np.isnan(results[1])).sum())
        if unwritten:
            found[name] = unwritten
    return found
