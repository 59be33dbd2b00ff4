"""The GPU benchmark: a VGG-D training step at 224x224 on one GPU, minivgg
(CuPy + minivgg's kernels + cuBLAS) against PyTorch + cuDNN, in the same run.

For batch 32 and 64, in float32 (TF32 off in both) and in TF32 (on in both):
images/s of each, their ratio (ours / PyTorch, above 1: we are faster),
achieved TFLOP/s against a cuBLAS sgemm measured in the same run, and peak
GPU memory of each (allocated bytes, not the allocator's reserve). Then a
profile of one minivgg step: where the time goes, per op and per kernel.

A step is: forward, softmax cross-entropy, backward, SGD update (momentum
0.9, weight decay 5e-4), dropout on, 1000 classes, the paper's widths.
FLOPs per image: 3x the forward multiply-adds x 2 (forward, and the two
backward GEMMs per layer), the usual count (~93 GFLOP for VGG-D).

    python benchmarks/bench_gpu.py [--batches 32,64] [--steps 5] [--out FILE.md]

``--device emu --smoke`` runs the same code on the CPU emulator at a tiny
size (no PyTorch comparison): it is how the script itself is tested
without a GPU.
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, today  # noqa: E402

import minivgg  # noqa: E402
from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.backend import device as get_device, set_tf32  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.profiler import Profiler  # noqa: E402


# ---------------------------------------------------------------------------
# What we run on
# ---------------------------------------------------------------------------

def versions(dev):
    """Lines describing the GPU, driver, CUDA, CuPy, NCCL and PyTorch."""
    lines = [f"date {today()}", f"host {platform.node()}, Python {platform.python_version()}, "
                                f"numpy {np.__version__}"]
    if dev.kind != "cuda":
        return lines + [f"device {dev} (no GPU)"]
    cp = dev.xp
    rt = cp.cuda.runtime
    props = rt.getDeviceProperties(dev.index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def v(n):
        return f"{n // 1000}.{(n % 1000) // 10}"
    lines.append(f"GPU {name}, {props['multiProcessorCount']} SMs, "
                 f"{props['totalGlobalMem'] / 2**30:.1f} GiB, compute capability "
                 f"{props['major']}.{props['minor']}")
    lines.append(f"CUDA driver {v(rt.driverGetVersion())}, runtime {v(rt.runtimeGetVersion())}, "
                 f"CuPy {cp.__version__}")
    try:
        from cupy.cuda import nccl
        lines.append(f"NCCL {nccl.get_version()}" if nccl.available else "NCCL not available")
    except Exception as e:  # noqa: BLE001 - report whatever is missing
        lines.append(f"NCCL not available ({type(e).__name__})")
    try:
        import torch
        lines.append(f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()}")
    except ImportError:
        lines.append("PyTorch not installed")
    return lines


def vgg_train_flops(model, size):
    """FLOPs of one training step per image: 3 x 2 x forward multiply-adds."""
    macs, s = 0, size
    for layer in model.features:
        if hasattr(layer, "kernel_size") and hasattr(layer, "weight"):
            kh, kw = layer.kernel_size
            macs += layer.in_channels * layer.out_channels * kh * kw * s * s
        elif type(layer).__name__ == "MaxPool2d":
            s //= 2
    for idx in (0, 3, 6):
        macs += model.classifier[idx].weight.size
    return 6 * macs


# ---------------------------------------------------------------------------
# Timers and memory
# ---------------------------------------------------------------------------

class Timer:
    """Milliseconds of a block: CUDA events on a GPU, the clock elsewhere."""

    def __init__(self, dev):
        self.dev = dev

    def time(self, fn, steps, warmup):
        for _ in range(warmup):
            fn()
        self.dev.synchronize()
        if self.dev.kind == "cuda":
            cp = self.dev.xp
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / steps
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        return 1e3 * (time.perf_counter() - t0) / steps


def cupy_peak_bytes(dev, fn):
    """Peak bytes in use in CuPy's pool while ``fn`` runs (0 off the GPU)."""
    if dev.kind != "cuda":
        fn()
        return 0
    cp = dev.xp
    pool = cp.get_default_memory_pool()

    class Peak(cp.cuda.MemoryHook):
        name = "minivgg-peak"

        def __init__(self):
            self.peak = pool.used_bytes()

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, pool.used_bytes())

    hook = Peak()
    with hook:
        fn()
        dev.synchronize()
    return hook.peak


def sgemm_tflops(dev, n, tf32, steps=10):
    cp = dev.xp
    set_tf32(dev, tf32)
    a = cp.random.standard_normal((n, n), dtype=cp.float32)
    b = cp.random.standard_normal((n, n), dtype=cp.float32)
    ms = Timer(dev).time(lambda: cp.matmul(a, b), steps, 2)
    return 2 * n ** 3 / (ms / 1e3) / 1e12


# ---------------------------------------------------------------------------
# The two contestants
# ---------------------------------------------------------------------------

def minivgg_step(dev, cfg, batch, size, classes, width, fc):
    model = vgg(cfg, num_classes=classes, input_size=size, fc_width=fc, width_mult=width,
                init="kaiming", seed=0).to(dev)
    opt = SGD(model.parameters(), 0.01, 0.9, 5e-4)
    rng = np.random.default_rng(0)
    x = Tensor(dev.asarray(rng.standard_normal((batch, 3, size, size), dtype=np.float32)),
               device=dev)
    y = dev.asarray(rng.integers(0, classes, batch))

    def step():
        opt.zero_grad()
        F.softmax_cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt, step


def torch_step(model, batch, size, classes, tf32):
    import torch
    from minivgg.testing import torch_vgg
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    net = torch_vgg(model).cuda()
    for m in net.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = True  # as torchvision builds VGG
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size, device="cuda")
    y = torch.randint(0, classes, (batch,), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net, step


def time_torch(step, steps, warmup):
    import torch
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / steps


def torch_peak_bytes(step):
    import torch
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def free_gpu_memory(dev):
    if dev.kind != "cuda":
        return
    dev.xp.get_default_memory_pool().free_all_blocks()
    try:
        import torch
        torch.cuda.empty_cache()
    except ImportError:
        pass


# ---------------------------------------------------------------------------

def run(args):
    dev = get_device(args.device)
    smoke = args.smoke
    cfg, size, classes, width, fc = ("D", 224, 1000, 1.0, 4096) if not smoke else \
        ("D", 32, 10, 1 / 16, 32)
    batches = [int(b) for b in args.batches.split(",")]
    precisions = [False, True] if dev.kind == "cuda" else [False]
    out = ["# GPU benchmark: VGG-D training step", ""]
    out += [f"- {line}" for line in versions(dev)]
    out += [f"- command: `{command_line()}`", ""]
    peaks = {}
    if dev.kind == "cuda":
        for tf32 in precisions:
            peaks[tf32] = sgemm_tflops(dev, 8192, tf32)
        out.append(f"cuBLAS sgemm 8192^3: {peaks[False]:.1f} TFLOP/s float32, "
                   f"{peaks[True]:.1f} TFLOP/s TF32")
        out.append("")
    have_torch = dev.kind == "cuda" and not args.no_torch
    out += ["| batch | precision | minivgg img/s | PyTorch img/s | ratio | minivgg TFLOP/s "
            "(of sgemm) | minivgg peak GiB | PyTorch peak GiB | memory ratio |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    profiled = None
    for batch in batches:
        for tf32 in precisions:
            set_tf32(dev, tf32)
            minivgg.manual_seed(0)
            model, opt, step = minivgg_step(dev, cfg, batch, size, classes, width, fc)
            flops = vgg_train_flops(model, size) * batch
            ms = Timer(dev).time(step, args.steps, args.warmup)
            peak = cupy_peak_bytes(dev, step)
            ours = batch / (ms / 1e3)
            tflops = flops / (ms / 1e3) / 1e12
            frac = f" ({100 * tflops / peaks[tf32]:.0f}%)" if peaks else ""
            theirs, tpeak = None, None
            if have_torch:
                net, tstep = torch_step(model, batch, size, classes, tf32)
                tms = time_torch(tstep, args.steps, args.warmup)
                tpeak = torch_peak_bytes(tstep)
                theirs = batch / (tms / 1e3)
                del net, tstep
            if profiled is None and not tf32 and (batch == max(batches)):
                with Profiler(dev) as prof:
                    step()
                profiled = (batch, ms, prof.table("markdown"))
            del model, opt, step
            free_gpu_memory(dev)
            gib = 2 ** 30
            out.append(
                f"| {batch} | {'TF32' if tf32 else 'float32'} | {ours:.1f} | "
                f"{'-' if theirs is None else f'{theirs:.1f}'} | "
                f"{'-' if theirs is None else f'{ours / theirs:.2f}'} | {tflops:.1f}{frac} | "
                f"{f'{peak / gib:.2f}' if peak else '-'} | "
                f"{'-' if tpeak is None else f'{tpeak / gib:.2f}'} | "
                f"{'-' if tpeak is None else f'{peak / tpeak:.2f}'} |")
            print(out[-1], flush=True)
    out += ["", "ratio: minivgg images/s / PyTorch images/s (>= 1: minivgg is faster); memory "
                "ratio: minivgg peak / PyTorch peak.", ""]
    if profiled is not None:
        out += [f"## Where the time goes: one minivgg step, batch {profiled[0]}, float32", "",
                f"A step takes {profiled[1]:.1f} ms unprofiled. Op times include the kernels "
                f"and GEMMs they launch; kernel times are a subset of them.", "", profiled[2]]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="32,64")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny VGG-D at 32x32 (for testing the script, e.g. on --device emu)")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    args = p.parse_args(argv)
    text = run(args)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
