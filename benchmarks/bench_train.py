"""Speed against PyTorch on the same machine, in the same run.

1. The ceiling: float32 GEMM GFLOP/s of numpy (our BLAS) and of PyTorch.
2. conv2d + ReLU forward + backward at every distinct 3x3 conv shape of
   VGG-D (a superset of VGG-A's) at 224x224, batch 8, and of the model
   examples/train_vgg.py trains by default at 32x32, batch 64: time, the algorithm
   the CPU path chose, GFLOP/s counted as a direct convolution would
   (2*K*C*9 per output pixel; Winograd does fewer multiplications, so this
   is its effective rate), fraction of numpy's GEMM rate for minivgg and
   for PyTorch, ratio; for each table's first layer (the image's: no dX)
   its two GEMMs and one read of its output gradient timed alone, the
   lowest time im2col + GEMM as NumPy calls could reach there; and
   max_pool2d 2x2 forward + backward at VGG's five pooling shapes.
3. Whole training steps (forward, backward, SGD update; 10 classes, the
   paper's FC width 4096): VGG-A at 32x32, batch 64, and the model
   examples/train_vgg.py trains by default (VGG-A, widths x0.25, FC 128,
   32x32, batch 64); with --include-224 also VGG-A at 224x224, batch 8,
   and VGG-D at 224x224, batch 4.

Ratios are ours / PyTorch (below 1: we are faster). ``--threads`` sets the
BLAS threads (and minivgg's) and PyTorch's threads to the same number.

    python benchmarks/bench_train.py [--repeats 3] [--include-224] [--threads N] [--write-md docs/benchmarks.md]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (add_freed_memory_flag, command_line, interleaved_best_cpu,  # noqa: E402
                    load_average, machine, thread_counts_arg, threads_label, today,
                    use_threads, write_section)

import minivgg  # noqa: E402
from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.fast import select  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.testing import torch_vgg  # noqa: E402

# (C, K, H) of VGG-D's distinct convolutions at 224x224 (VGG-A's are among them,
# all but 64 -> 64 and 128 -> 128); the first needs no input gradient.
VGG_D_CONVS = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56),
               (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 14)]
# (C, K, H) of the distinct convolutions of the model examples/train_vgg.py
# trains by default (VGG-A with widths x0.25) at 32x32; the last runs twice.
SMALL_CONVS = [(3, 16, 32), (16, 32, 16), (32, 64, 8), (64, 64, 8), (64, 128, 4), (128, 128, 4),
               (128, 128, 2)]


def gemm_gflops(torch, n=2048, repeats=3):
    """GFLOP/s of numpy's and PyTorch's float32 GEMM: ((wall, wall), (cpu, cpu))."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2 * n ** 3
    ta, tb = torch.tensor(a), torch.tensor(b)
    wall, cpu = interleaved_best_cpu([lambda: a @ b, lambda: ta @ tb], repeats)
    return [flops / t / 1e9 for t in wall], [flops / t / 1e9 for t in cpu]


def laid_out(rng, n, ch, h, last):
    """Random float32 (N, CH, H, H) data laid out channels-last (``last``)
    or channel-major, as minivgg's CPU layers leave their outputs."""
    if last:
        return rng.standard_normal((n, h, h, ch), dtype=np.float32).transpose(0, 3, 1, 2)
    return rng.standard_normal((ch, n, h, h), dtype=np.float32).transpose(1, 0, 2, 3)


def conv_case(torch, c, k, h, batch, repeats):
    """conv2d + ReLU forward + backward, x and gy laid out as each
    framework's layers around it leave them: NCHW for PyTorch; for minivgg,
    the image's layer gets the image NCHW, every other layer its input
    channels-last (what minivgg's CPU convolutions other than F(2x2, 3x3),
    and its poolings after them, return), and gy in the layout of the
    layer's own output (channel-major for F(2x2, 3x3), channels-last
    otherwise: the pooling or convolution after it hands its gradient back
    in that layout)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((batch, c, h, h), dtype=np.float32) if c == 3 else
         laid_out(rng, batch, c, h, True))
    w = (rng.standard_normal((k, c, 3, 3), dtype=np.float32) * 0.05)
    b = np.zeros(k, np.float32)
    gy = laid_out(rng, batch, k, h, "F(2x2" not in conv_algorithm(c, k, h, batch))
    need_dx = c != 3

    def ours():
        xt = Tensor(x, requires_grad=need_dx)
        wt, bt = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        select.conv2d(xt, wt, bt, 1, 1, relu=True).backward(gy)

    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=need_dx)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    tgy = torch.tensor(np.ascontiguousarray(gy))

    def theirs():
        tw.grad = tb.grad = tx.grad = None
        torch.relu(torch.nn.functional.conv2d(tx, tw, tb, 1, 1)).backward(tgy)

    # forward, dW and (except for the first layer) dX: one GEMM-sized product each
    flops = 2 * batch * k * c * 9 * h * h * (3 if need_dx else 2)
    return (flops,) + interleaved_best_cpu([ours, theirs], repeats)


def products_alone(c, k, h, batch, repeats):
    """What a layer without dX (the image's) cannot go below as im2col + GEMM
    in NumPy calls: its two GEMMs timed alone over the bands minivgg cuts the
    layer into (each band's operands already in cache, the layer's bias row
    left out), forward (pixels x 9C) @ (9C x K) and dW (9C x pixels) @ (pixels x K),
    each in the faster of its two orientations; and one read of its output
    gradient (N*K*H*W numbers, which backward must read from memory to mask
    it with the ReLU). Seconds, (forward, dW, read), of wall time and of
    CPU time."""
    from minivgg.fast.blocks import cpu_blocks as _cpu_blocks
    rng = np.random.default_rng(0)
    ckk = 9 * c
    bands = [(i1 - i0) * (r1 - r0) * h for i0, i1, r0, r1 in _cpu_blocks(batch, h, h, ckk, k)]
    p = max(bands)
    cols = rng.standard_normal((p, ckk), dtype=np.float32)
    cols_t = np.ascontiguousarray(cols.T)
    w = rng.standard_normal((k, ckk), dtype=np.float32)
    w_t = np.ascontiguousarray(w.T)
    g = rng.standard_normal((p, k), dtype=np.float32)
    g_t = np.ascontiguousarray(g.T)
    gy = rng.standard_normal(batch * k * h * h, dtype=np.float32)

    def over_bands(product):
        def run():
            for n in bands:
                product(n)
        return run
    times = interleaved_best_cpu([
        over_bands(lambda n: cols[:n] @ w_t), over_bands(lambda n: w @ cols_t[:, :n]),
        over_bands(lambda n: cols_t[:, :n] @ g[:n]), over_bands(lambda n: g_t[:, :n] @ cols[:n]),
        lambda: gy.max()], repeats)
    return [(min(t[0], t[1]), min(t[2], t[3]), t[4]) for t in times]


# (C, H) of the inputs of VGG's five 2x2 max-poolings at 224x224.
VGG_POOLS = [(64, 224), (128, 112), (256, 56), (512, 28), (512, 14)]


def pool_case(torch, c, h, batch, repeats):
    """max_pool2d 2x2 forward + backward on a ReLU-like input (a quarter of
    it zeros, so windows tie) laid out as each framework's convolution
    leaves it: channels-last for minivgg (its gradient too: the convolution
    after the pooling hands it back so), NCHW for PyTorch."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((batch, h, h, c), dtype=np.float32) + 0.7, 0)
    gy = rng.standard_normal((batch, h // 2, h // 2, c), dtype=np.float32)
    x, gy = x.transpose(0, 3, 1, 2), gy.transpose(0, 3, 1, 2)

    def ours():
        xt = Tensor(x, requires_grad=True)
        select.max_pool2d(xt, 2).backward(gy)

    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    tgy = torch.tensor(np.ascontiguousarray(gy))

    def theirs():
        tx.grad = None
        torch.nn.functional.max_pool2d(tx, 2).backward(tgy)

    return interleaved_best_cpu([ours, theirs], repeats)


def conv_algorithm(c, k, h, batch):
    """The algorithm minivgg's CPU path uses for this layer."""
    from minivgg.backend import device
    return select.algorithm_name(device("cpu"), (batch, c, h, h), (k, c, 3, 3))


def train_step_case(torch, size, batch, repeats, fc_width=4096, cfg="A", width_mult=1.0):
    model = vgg(cfg, num_classes=10, input_size=size, fc_width=fc_width, width_mult=width_mult,
                init="kaiming", seed=0)
    tmodel = torch_vgg(model)
    # A small rate keeps repeated steps on random data finite (no overflow).
    opt = SGD(model.parameters(), 1e-4, 0.9, 5e-4)
    topt = torch.optim.SGD(tmodel.parameters(), 1e-4, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def ours():
        loss = F.softmax_cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def theirs():
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()

    return interleaved_best_cpu([ours, theirs], repeats)


def _allocator_note():
    from minivgg import memory
    return ("Freed memory kept in the process (minivgg.memory, as minivgg's Trainer runs), "
            "for both frameworks." if memory.keeping() else
            "glibc's allocator as it is (freed memory handed back).")


def model_label(cfg, width, fc):
    """"VGG-A", or "VGG-A x0.25, FC 128" for a narrowed model, "VGG-A, FC 512"."""
    return (f"VGG-{cfg}" + (f" x{width:g}" if width != 1.0 else "") +
            (f", FC {fc}" if fc != 4096 else ""))


def _with(fn, **settings):
    """fn run with the selector's settings (minivgg/fast/select.py) set to
    ``settings`` (CONV="im2col", WINOGRAD_SIZES=(), ...), restored after."""

    def run():
        old = {name: getattr(select, name) for name in settings}
        for name, value in settings.items():
            setattr(select, name, value)
        try:
            fn()
        finally:
            for name, value in old.items():
                setattr(select, name, value)
    return run


#: The algorithms of the ablation, as selector settings.
CHANNEL_MAJOR = {"CONV": "im2col"}
CHANNELS_LAST = {"CONV": "im2col-channels-last"}
F2 = {"CONV": "winograd2"}
F4 = {"CONV": "winograd4"}
WHOLE_MAP = {"CONV": "whole-map"}
NO_WINOGRAD = {"WINOGRAD_SIZES": ()}


def winograd_ablation(a, out, lines):
    """The ablation below at each thread count of --threads, the default first."""
    load_before = load_average()
    for n in a.threads:
        import torch
        use_threads(n, torch)
        out(f"With {threads_label(n)} (for BLAS and minivgg):")
        out()
        ablation_tables(a, n, out)
    if a.write_md:
        text = (f"Measured by `benchmarks/bench_train.py --winograd-ablation` on {today()}; "
                f"machine: {machine(load=False)}; threads: "
                f"{', then '.join(threads_label(n) for n in a.threads)}; load "
                f"average before the run {load_before}, after {load_average()}. "
                f"{_allocator_note()}\n\n"
                f"Command: `{command_line()}`\n\nconv2d 3x3 pad 1 + ReLU forward + backward, "
                f"and whole VGG-A training steps, with the CPU path's convolutions as the "
                f"channel-major im2col + GEMM (select.CONV = \"im2col\"), the channels-last "
                f"one (\"im2col-channels-last\"), Winograd F(2x2, 3x3) (\"winograd2\") and "
                f"F(4x4, 3x3) (\"winograd4\"), the whole-map GEMM where every output sees "
                f"every input (\"whole-map\"), and as chosen by default (\"auto\": the last "
                f"column; the table "
                f"select.WINOGRAD_SIZES = {select.WINOGRAD_SIZES} of (channels at least, F(4x4) "
                f"from output size and from output pixels in the batch, F(2x2) from output size), "
                f"else im2col, channels last "
                f"where it applies), best of {a.repeats} interleaved runs by wall time (by the "
                f"CPU time of the process with one thread); the "
                f"speed-ups are against the channel-major im2col. Each layer gets its input "
                f"channels-last, as minivgg's CPU convolutions and poolings leave it, and "
                f"its gradient in the layout of its own output (channel-major for F(2x2), "
                f"channels-last otherwise).\n\n"
                + "\n".join(lines))
        write_section(a.write_md, "Winograd against im2col (CPU)", text)


def ablation_tables(a, n_threads, out):
    """Each algorithm's payoff: the same layers with the channel-major
    im2col + GEMM, the channels-last one, F(2x2, 3x3) and F(4x4, 3x3), and
    whole steps with im2col + GEMM alone (channel-major; then channels last
    where the default would put it) and the default choice, interleaved in
    one run. Each layer gets its input channels-last, as the CPU's
    convolutions and poolings leave it, and its gradient in the layout of
    its own output: channel-major for F(2x2), channels-last otherwise."""
    from minivgg.fast import small_maps
    rng = np.random.default_rng(0)
    layers = [(c, k, h, a.batch_224) for c, k, h in VGG_D_CONVS[1:]] + \
        [(64, 128, 16, 64), (128, 256, 8, 64), (256, 256, 8, 64), (512, 512, 4, 64),
         (512, 512, 2, 64)] + [(c, k, h, 64) for c, k, h in SMALL_CONVS[1:]]
    out("| layer (C -> K, H=W, batch) | im2col ms | channels last ms | F(2x2) ms | F(4x4) ms "
        "| whole map ms | channels last speed-up | F(2x2) speed-up | F(4x4) speed-up "
        "| whole map speed-up | default |")
    out("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for c, k, h, n in layers:
        w = rng.standard_normal((k, c, 3, 3), dtype=np.float32) * 0.05
        b = np.zeros(k, np.float32)

        def layer(gy_last=True):
            x, gy = laid_out(rng, n, c, h, True), laid_out(rng, n, k, h, gy_last)

            def run():
                ts = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True),
                      Tensor(b, requires_grad=True)]
                select.conv2d(*ts, 1, 1, relu=True).backward(gy)
            return run
        f4 = h >= 4
        whole = small_maps.applies((n, c, h, h), (k, c, 3, 3), (1, 1), (1, 1))
        runs = [_with(layer(), **CHANNEL_MAJOR), _with(layer(), **CHANNELS_LAST),
                _with(layer(False), **F2)] + [_with(layer(), **F4)] * f4 + \
            [_with(layer(), **WHOLE_MAP)] * whole
        wall, cpu = interleaved_best_cpu(runs, a.repeats)
        t = list(cpu if n_threads == 1 else wall)
        t4 = t[3] if f4 else None
        tw = t[-1] if whole else None

        def ms(v):
            return "-" if v is None else f"{1e3 * v:.1f}"

        def up(v):
            return "-" if v is None else f"{t[0] / v:.2f}"
        out(f"| {c} -> {k}, {h}, {n} | {ms(t[0])} | {ms(t[1])} | {ms(t[2])} | {ms(t4)} | "
            f"{ms(tw)} | {up(t[1])} | {up(t[2])} | {up(t4)} | {up(tw)} | "
            f"{conv_algorithm(c, k, h, n)} |")
    out()
    out("| VGG-A step | im2col s | no Winograd (the rule otherwise) s | default s "
        "| no-Winograd speed-up | default speed-up |")
    out("| --- | ---: | ---: | ---: | ---: | ---: |")
    for size, batch, width, fc in ((32, 64, 1.0, 4096), (32, 64, 0.25, 128), (224, 8, 1.0, 4096)):
        model = vgg("A", num_classes=10, input_size=size, fc_width=fc, width_mult=width,
                    init="kaiming", seed=0)
        opt = SGD(model.parameters(), 1e-4, 0.9, 5e-4)
        x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        y = rng.integers(0, 10, batch)

        def step():
            loss = F.softmax_cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        wall, cpu = interleaved_best_cpu([_with(step, **CHANNEL_MAJOR),
                                          _with(step, **NO_WINOGRAD), step], a.repeats)
        t = cpu if n_threads == 1 else wall
        out(f"| {model_label('A', width, fc)}, {size}x{size}, batch {batch} | {t[0]:.3f} | "
            f"{t[1]:.3f} | {t[2]:.3f} | {t[0] / t[1]:.2f} | {t[0] / t[2]:.2f} |")
    out()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (best is kept)")
    p.add_argument("--batch-224", type=int, default=8, help="batch of the 224x224 conv cases")
    p.add_argument("--include-224", action="store_true",
                   help="also time whole steps at 224x224: VGG-A batch 8, VGG-D batch 4")
    p.add_argument("--threads", type=thread_counts_arg, default=thread_counts_arg("0,1"),
                   help="thread counts for BLAS, minivgg and PyTorch alike, each case at "
                        "each, comma-separated (0: one per core; default: 0,1, the machine's "
                        "default first, then one thread)")
    p.add_argument("--only-steps", action="store_true",
                   help="skip GEMM and per-layer conv timings (quick check of the step ratio)")
    add_freed_memory_flag(p)
    p.add_argument("--winograd-ablation", action="store_true",
                   help="instead: im2col + GEMM (channel-major, channels last) against "
                        "Winograd, per layer and per step")
    p.add_argument("--write-md", metavar="PATH", help="write the results into PATH's section")
    p.add_argument("--section", default="Training speed against PyTorch (CPU)",
                   help="the section of --write-md to write")
    a = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("this benchmark compares against PyTorch: pip install torch==2.13.0")
    from minivgg import memory
    if not a.release_freed_memory:
        memory.keep_freed_memory()      # as minivgg's Trainer runs; PyTorch here shares it
    use_threads(a.threads[0], torch)
    minivgg.manual_seed(0)
    load_before = load_average()
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    if a.winograd_ablation:
        return winograd_ablation(a, out, lines)
    # (configuration, input side, batch, width multiplier, FC width): VGG-A at
    # 32x32 with the paper's FC width and with FC 512, and the model
    # examples/train_vgg.py trains by default.
    cases = [("A", 32, 64, 1.0, 4096), ("A", 32, 64, 1.0, 512), ("A", 32, 64, 0.25, 128)] + \
        ([("A", 224, 8, 1.0, 4096), ("D", 224, 4, 1.0, 4096)] if a.include_224 else [])
    counts = a.threads
    labels = [threads_label(n) for n in counts]
    if a.only_steps:
        for cfg, size, batch, width, fc in cases:
            for n in counts:
                use_threads(n, torch)
                wall, _ = train_step_case(torch, size, batch, a.repeats, fc, cfg, width)
                print(f"{model_label(cfg, width, fc)} step {size}x{size} batch {batch}, "
                      f"{threads_label(n)}: minivgg {wall[0]:.3f} s, PyTorch {wall[1]:.3f} s, "
                      f"ratio {wall[0] / wall[1]:.2f}", flush=True)
        return
    gemm = {}
    for n in counts:
        use_threads(n, torch)
        gemm[n] = gemm_gflops(torch)[0]
    out("float32 GEMM 2048^3, GFLOP/s (wall time): " + "; ".join(
        f"{threads_label(n)}: numpy {gemm[n][0]:.1f}, PyTorch {gemm[n][1]:.1f}" for n in counts))
    out()

    def per_count(title):
        return " | ".join(f"minivgg ms, {t} | PyTorch ms, {t} | ratio, {t}" for t in labels)

    speedups = (" | minivgg speed-up | PyTorch speed-up" if len(counts) > 1 else "")
    n0 = counts[0]
    for layers, batch, what, last in (
            (VGG_D_CONVS, a.batch_224, "VGG-D's layers at 224x224", "all nine"),
            (SMALL_CONVS, 64, "the layers of examples/train_vgg.py's default model, VGG-A with "
             "widths x0.25, at 32x32; its step runs the last twice", "all seven")):
        out(f"conv2d 3x3 pad 1 + ReLU, forward + backward, batch {batch} ({what}; GFLOP/s "
            f"counted as a direct convolution, with {threads_label(n0)}, against numpy's GEMM "
            f"with as many; the input and its gradient laid out as each framework's own "
            f"layers leave them: NCHW for PyTorch; for minivgg the image NCHW, other inputs "
            f"channels-last, gy channel-major after F(2x2, 3x3) and channels-last "
            f"elsewhere):")
        out()
        out(f"| C -> K | H=W | algorithm | {per_count(labels)}{speedups} | minivgg GFLOP/s, "
            f"{labels[0]} | % of numpy GEMM | PyTorch % of numpy GEMM |")
        out("| --- | ---: | --- |" + " ---: | ---: | ---: |" * len(counts) +
            " ---: | ---: |" * (len(counts) > 1) + " ---: | ---: | ---: |")
        tot = {n: np.zeros(2) for n in counts}
        for c, k, h in layers:
            cells, times = [], {}
            for n in counts:
                use_threads(n, torch)
                flops, wall, _ = conv_case(torch, c, k, h, batch, a.repeats)
                times[n] = wall
                tot[n] += wall
                cells.append(f"{1e3 * wall[0]:.1f} | {1e3 * wall[1]:.1f} | "
                             f"{wall[0] / wall[1]:.2f}")
            up = (f" | {times[counts[-1]][0] / times[n0][0]:.2f} | "
                  f"{times[counts[-1]][1] / times[n0][1]:.2f}" if len(counts) > 1 else "")
            gf, gf_torch = flops / times[n0][0] / 1e9, flops / times[n0][1] / 1e9
            out(f"| {c} -> {k} | {h} | {conv_algorithm(c, k, h, batch)} | {' | '.join(cells)}"
                f"{up} | {gf:.1f} | {100 * gf / gemm[n0][0]:.0f}% | "
                f"{100 * gf_torch / gemm[n0][0]:.0f}% |")
        cells = " | ".join(f"{1e3 * tot[n][0]:.1f} | {1e3 * tot[n][1]:.1f} | "
                           f"{tot[n][0] / tot[n][1]:.2f}" for n in counts)
        up = (f" | {tot[counts[-1]][0] / tot[n0][0]:.2f} | {tot[counts[-1]][1] / tot[n0][1]:.2f}"
              if len(counts) > 1 else "")
        out(f"| {last} | | | {cells}{up} | | | |")
        out()
        if 1 in counts:
            use_threads(1, torch)
            c, k, h = layers[0]
            fwd, dw, read = products_alone(c, k, h, batch, a.repeats)[1]
            flops = 2 * batch * k * c * 9 * h * h * 2
            floor = fwd + dw + read
            ref = gemm_gflops(torch)[1][0]
            out(f"The {c} -> {k} layer's two GEMMs alone, one thread, each in its faster "
                f"orientation (CPU time): forward {1e3 * fwd:.1f} ms, dW {1e3 * dw:.1f} ms; one "
                f"read of its output gradient {1e3 * read:.1f} ms. Together {1e3 * floor:.1f} ms, "
                f"{100 * flops / floor / 1e9 / ref:.0f}% of numpy's one-thread GEMM: the most "
                f"im2col + GEMM as NumPy and BLAS calls could reach on this layer with every "
                f"other pass free (90% would be {1e3 * flops / (0.9 * ref * 1e9):.1f} ms).")
            out()
    out(f"max_pool2d 2x2, forward + backward, batch {a.batch_224} (the inputs of VGG's five "
        f"poolings at 224x224):")
    out()
    out(f"| C | H=W | {per_count(labels)}{speedups} |")
    out("| ---: | ---: |" + " ---: | ---: | ---: |" * len(counts) +
        " ---: | ---: |" * (len(counts) > 1))
    tot = {n: np.zeros(2) for n in counts}
    for c, h in VGG_POOLS:
        times = {}
        for n in counts:
            use_threads(n, torch)
            times[n] = pool_case(torch, c, h, a.batch_224, a.repeats)[0]
            tot[n] += times[n]
        cells = " | ".join(f"{1e3 * times[n][0]:.1f} | {1e3 * times[n][1]:.1f} | "
                           f"{times[n][0] / times[n][1]:.2f}" for n in counts)
        up = (f" | {times[counts[-1]][0] / times[n0][0]:.2f} | "
              f"{times[counts[-1]][1] / times[n0][1]:.2f}" if len(counts) > 1 else "")
        out(f"| {c} | {h} | {cells}{up} |")
    cells = " | ".join(f"{1e3 * tot[n][0]:.1f} | {1e3 * tot[n][1]:.1f} | "
                       f"{tot[n][0] / tot[n][1]:.2f}" for n in counts)
    up = (f" | {tot[counts[-1]][0] / tot[n0][0]:.2f} | {tot[counts[-1]][1] / tot[n0][1]:.2f}"
          if len(counts) > 1 else "")
    out(f"| all five | | {cells}{up} |")
    out()
    out("Whole training steps (forward, backward, SGD with momentum and weight decay; "
        "FC width 4096 unless stated, 10 classes), seconds per step and images per second:")
    out()
    out("| model | input | batch | " + " | ".join(
        f"minivgg s/step, {t} | PyTorch s/step, {t} | ratio, {t} | minivgg img/s, {t} | "
        f"PyTorch img/s, {t}" for t in labels) + f"{speedups} |")
    out("| --- | --- | ---: |" + " ---: | ---: | ---: | ---: | ---: |" * len(counts) +
        " ---: | ---: |" * (len(counts) > 1))
    for cfg, size, batch, width, fc in cases:
        times = {}
        for n in counts:
            use_threads(n, torch)
            times[n] = train_step_case(torch, size, batch, a.repeats, fc, cfg, width)[0]
        cells = " | ".join(f"{times[n][0]:.3f} | {times[n][1]:.3f} | "
                           f"{times[n][0] / times[n][1]:.2f} | {batch / times[n][0]:.1f} | "
                           f"{batch / times[n][1]:.1f}" for n in counts)
        up = (f" | {times[counts[-1]][0] / times[n0][0]:.2f} | "
              f"{times[counts[-1]][1] / times[n0][1]:.2f}" if len(counts) > 1 else "")
        out(f"| {model_label(cfg, width, fc)} | {size}x{size} | {batch} | {cells}{up} |")
    if a.write_md:
        text = (f"Measured by `benchmarks/bench_train.py` on {today()}; machine: "
                f"{machine(load=False)}; threads: {', then '.join(labels)} for BLAS, "
                f"minivgg and PyTorch alike (the first is the machine's default: one per "
                f"core); load average before the run {load_before}, after "
                f"{load_average()}.\n\n"
                f"Command: `{command_line()}`\n\nRatios are minivgg time / PyTorch time in "
                f"the same run at the same thread count (below 1: minivgg is faster); the "
                f"speed-ups are each framework's one-thread time over its time with "
                f"{threads_label(n0)}. Best of {a.repeats} runs after a warm-up, by wall time, "
                f"the two frameworks' runs interleaved, the thread counts one after the other "
                f"for each case. " + _allocator_note() + "\n\n" + "\n".join(lines))
        write_section(a.write_md, a.section, text)
        print(f"wrote {a.write_md}")


if __name__ == "__main__":
    main()
