"""conv2d on CPU in a blocked channel layout (NCHW[x]c), as ONNX Runtime's MLAS does.

Data is [N, C/cb, H, W, cb], the kernel [K/kb, C/cb, R, S, cb, kb] and the output
[N, K/kb, OH, OW, kb], with kb = 16 (one AVX-512 vector of float32, four NEON ones): the
innermost axis of every access is a contiguous channel block, so the inner kernel is a
vector FMA per (output pixel, input channel). Input channels too few to block (a stem's
3) form one block of their own. The schedule keeps an (ohr x owr x kor) tile of output
vectors in a local accumulator, reduces over (input block, r, s, unrolled channels),
pads in a stage of its own and runs (n, oh, ko) in parallel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tvm import s_tir, te, tirx

from schedules.space import Config, ConfigSpace
from schedules.template import Template, Workload
from targets import Device

#: Output channel blocks the accumulator tile may hold (28 measured to spill on AVX-512).
MAX_ACCUMULATORS = 16
BLOCK = 16


def _blocks(wl: Workload) -> tuple[int, int]:
    """(cb, kb): input and output channel block sizes."""
    return (BLOCK if wl["C"] % BLOCK == 0 else wl["C"]), BLOCK


class Conv2dCPU(Template):
    name = "conv2d_nchwc.cpu"
    op = "conv2d"
    version = 1

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        if len(shape) != 9 or any(int(d) < 0 for d in shape) or any(int(d) < 1 for d in shape[:8]):
            raise ValueError("conv2d needs a shape N,C,H,W,K,R,S,stride,pad of non-negative integers "
                             f"(positive but for pad), got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"conv2d: dtype {dtype!r} is not supported yet (float32 only)")
        n, c, h, w, k, r, s, stride, pad = (int(d) for d in shape)
        if h + 2 * pad < r or w + 2 * pad < s:
            raise ValueError("conv2d: the kernel is larger than the padded input")
        if k % BLOCK or (c % BLOCK and c > BLOCK):
            raise ValueError(f"conv2d: channels must be multiples of {BLOCK} (input channels may also be fewer)")
        return Workload.make(self.op, N=n, C=c, H=h, W=w, K=k, R=r, S=s, stride=stride, pad=pad, dtype=dtype)

    @staticmethod
    def out_size(wl: Workload) -> tuple[int, int]:
        return ((wl["H"] + 2 * wl["pad"] - wl["R"]) // wl["stride"] + 1,
                (wl["W"] + 2 * wl["pad"] - wl["S"]) // wl["stride"] + 1)

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        cb, kb = _blocks(wl)
        n, c, h, w, k, r, s, stride, pad = (wl[x] for x in ("N", "C", "H", "W", "K", "R", "S", "stride", "pad"))
        oh, ow = self.out_size(wl)
        data = te.placeholder((n, c // cb, h, w, cb), wl["dtype"], name="data")
        kernel = te.placeholder((k // kb, c // cb, r, s, cb, kb), wl["dtype"], name="kernel")
        padded = te.compute(
            (n, c // cb, h + 2 * pad, w + 2 * pad, cb),
            lambda b, co, y, x, ci: tirx.if_then_else(
                tirx.all(y >= pad, y < h + pad, x >= pad, x < w + pad),
                data[b, co, y - pad, x - pad, ci], tirx.const(0, wl["dtype"])),
            name="pad",
        )
        co, rr, ss, ci = (te.reduce_axis((0, e), name=nm) for e, nm in ((c // cb, "co"), (r, "r"), (s, "s"), (cb, "ci")))
        out = te.compute(
            (n, k // kb, oh, ow, kb),
            lambda b, ko, y, x, ki: te.sum(
                padded[b, co, y * stride + rr, x * stride + ss, ci] * kernel[ko, co, rr, ss, ci, ki], axis=[co, rr, ss, ci]),
            name=self.op,
        )
        return te.create_prim_func([data, kernel, out])

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        cb, kb = _blocks(wl)
        oh, ow = self.out_size(wl)
        space = ConfigSpace()
        space.define_split("tile_ow", ow, 2, policy="factors", max_factor=16)
        space.define_split("tile_oh", oh, 2, policy="factors", max_factor=2)
        space.define_split("tile_ko", wl["K"] // kb, 2, policy="factors", max_factor=4)
        space.define_split("tile_ci", cb, 2, policy="factors", max_factor=16)
        space.define_knob("order", ["hk", "kh"])
        space.add_constraint(
            f"accumulator tile of at most {MAX_ACCUMULATORS} vectors",
            lambda c: c["tile_ow"][1] * c["tile_oh"][1] * c["tile_ko"][1] <= MAX_ACCUMULATORS,
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """A 4-8 wide row of pixels times 2 output blocks, 4 input channels unrolled (measured near the best)."""
        cb, kb = _blocks(wl)
        oh, ow = self.out_size(wl)
        owr = next(d for d in (8, 7, 4, 14, 16, 2, 1) if ow % d == 0)
        kor = 2 if (wl["K"] // kb) % 2 == 0 else 1
        cu = next(d for d in (4, 3, 2, 1) if cb % d == 0)
        return {"tile_ow": (ow // owr, owr), "tile_oh": (oh, 1), "tile_ko": (wl["K"] // kb // kor, kor),
                "tile_ci": (cb // cu, cu), "order": "hk"}

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        block = sch.get_sblock(self.op)
        n, ko, oh, ow, ki, co, r, s, ci = sch.get_loops(block)
        ko0, ko1 = sch.split(ko, list(cfg["tile_ko"]))
        oh0, oh1 = sch.split(oh, list(cfg["tile_oh"]))
        ow0, ow1 = sch.split(ow, list(cfg["tile_ow"]))
        ci0, ci1 = sch.split(ci, list(cfg["tile_ci"]))
        outer = [n, oh0, ko0] if cfg["order"] == "hk" else [n, ko0, oh0]
        sch.reorder(*outer, ow0, co, r, s, ci0, ci1, oh1, ow1, ko1, ki)
        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, ow0)
        parallel = sch.fuse(*outer)
        sch.parallel(parallel)
        for loop in (ci1, oh1, ow1, ko1):
            sch.unroll(loop)
        sch.vectorize(ki)
        pad_loops = sch.get_loops(sch.get_sblock("pad"))
        sch.parallel(sch.fuse(*pad_loops[:3]))
        sch.vectorize(pad_loops[-1])
        init = sch.decompose_reduction(block, co)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(write_back)[-1])

    def flops(self, wl: Workload) -> int:
        oh, ow = self.out_size(wl)
        return 2 * wl["N"] * wl["K"] * oh * ow * wl["C"] * wl["R"] * wl["S"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        cb, kb = _blocks(wl)
        n, c, h, w, k, r, s = (wl[x] for x in ("N", "C", "H", "W", "K", "R", "S"))
        data = rng.uniform(-1, 1, (n, c // cb, h, w, cb)).astype(wl["dtype"])
        kernel = rng.uniform(-1, 1, (k // kb, c // cb, r, s, cb, kb)).astype(wl["dtype"])
        return [data, kernel]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        data, kernel = inputs
        n, cblocks, h, w, cb = data.shape
        kblocks, _, r, s, _, kb = kernel.shape
        nchw = data.transpose(0, 1, 4, 2, 3).reshape(n, cblocks * cb, h, w)
        oihw = kernel.transpose(0, 5, 1, 4, 2, 3).reshape(kblocks * kb, cblocks * cb, r, s)
        pad, stride = wl["pad"], wl["stride"]
        padded = np.pad(nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        windows = sliding_window_view(padded, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]
        out = np.einsum("nchwrs,kcrs->nkhw", windows, oihw, optimize=True)
        oh, ow = out.shape[2:]
        return out.reshape(n, kblocks, kb, oh, ow).transpose(0, 1, 3, 4, 2).astype(data.dtype)
