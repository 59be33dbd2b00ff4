"""Speed against PyTorch on the same machine, in the same run.

1. The ceiling: float32 GEMM GFLOP/s of numpy (our BLAS) and of PyTorch.
2. conv2d forward + backward at every distinct conv shape of VGG-A at
   224x224, batch 8: time, GFLOP/s, fraction of the GEMM ceiling, ratio.
3. A whole VGG-A training step (forward, backward, SGD update) at 32x32,
   batch 64, 10 classes, the paper's FC width 4096; optionally at 224x224,
   batch 8 (--include-224).

Ratios are ours / PyTorch (below 1: we are faster).

    python benchmarks/bench_train.py [--repeats 3] [--include-224] [--write-md docs/benchmarks.md]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (best_time, command_line, interleaved_best, machine, today,  # noqa: E402
                    write_section)

import minivgg  # noqa: E402
from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.testing import torch_vgg  # noqa: E402

# (C, K, H) of VGG-A's convolutions at 224x224; the first needs no input gradient.
VGG_A_CONVS = [(3, 64, 224), (64, 128, 112), (128, 256, 56), (256, 256, 56), (256, 512, 28),
               (512, 512, 28), (512, 512, 14)]


def gemm_gflops(torch, n=2048, repeats=3):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2 * n ** 3
    ours = flops / best_time(lambda: a @ b, repeats) / 1e9
    ta, tb = torch.tensor(a), torch.tensor(b)
    theirs = flops / best_time(lambda: ta @ tb, repeats) / 1e9
    return ours, theirs


def conv_case(torch, c, k, h, batch, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((k, c, 3, 3), dtype=np.float32) * 0.05)
    b = np.zeros(k, np.float32)
    gy = rng.standard_normal((batch, k, h, h), dtype=np.float32)
    need_dx = c != 3

    def ours():
        xt = Tensor(x, requires_grad=need_dx)
        wt, bt = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        F.conv2d(xt, wt, bt, 1, 1).backward(gy)

    tx = torch.tensor(x, requires_grad=need_dx)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    tgy = torch.tensor(gy)

    def theirs():
        tw.grad = tb.grad = tx.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, 1, 1).backward(tgy)

    # forward, dW and (except for the first layer) dX: one GEMM-sized product each
    flops = 2 * batch * k * c * 9 * h * h * (3 if need_dx else 2)
    return (flops,) + tuple(interleaved_best([ours, theirs], repeats))


def train_step_case(torch, size, batch, repeats, fc_width=4096):
    model = vgg("A", num_classes=10, input_size=size, fc_width=fc_width, init="kaiming", seed=0)
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

    return tuple(interleaved_best([ours, theirs], repeats))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (best is kept)")
    p.add_argument("--batch-224", type=int, default=8, help="batch of the 224x224 conv cases")
    p.add_argument("--include-224", action="store_true",
                   help="also time a whole VGG-A step at 224x224, batch 8")
    p.add_argument("--only-steps", action="store_true",
                   help="skip GEMM and per-layer conv timings (quick check of the step ratio)")
    p.add_argument("--write-md", metavar="PATH", help="write the results into PATH's section")
    a = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("this benchmark compares against PyTorch: pip install torch==2.13.0")
    torch.set_num_threads(os.cpu_count())
    minivgg.manual_seed(0)
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    if a.only_steps:
        for size, batch in [(32, 64)] + ([(224, 8)] if a.include_224 else []):
            t_ours, t_torch = train_step_case(torch, size, batch, a.repeats)
            print(f"VGG-A step {size}x{size} batch {batch}: minivgg {t_ours:.3f} s, PyTorch "
                  f"{t_torch:.3f} s, ratio {t_ours / t_torch:.2f}")
        return
    g_ours, g_torch = gemm_gflops(torch)
    out(f"float32 GEMM 2048^3: numpy {g_ours:.1f} GFLOP/s, PyTorch {g_torch:.1f} GFLOP/s")
    out()
    out(f"conv2d 3x3 pad 1, forward + backward, batch {a.batch_224} (VGG-A layers at 224x224):")
    out()
    out("| C -> K | H=W | minivgg ms | PyTorch ms | ratio | minivgg GFLOP/s | % of numpy GEMM |")
    out("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    tot_ours = tot_torch = 0.0
    for c, k, h in VGG_A_CONVS:
        flops, t_ours, t_torch = conv_case(torch, c, k, h, a.batch_224, a.repeats)
        tot_ours, tot_torch = tot_ours + t_ours, tot_torch + t_torch
        gf = flops / t_ours / 1e9
        out(f"| {c} -> {k} | {h} | {1e3 * t_ours:.0f} | {1e3 * t_torch:.0f} | "
            f"{t_ours / t_torch:.2f} | {gf:.1f} | {100 * gf / g_ours:.0f}% |")
    out(f"| all seven | | {1e3 * tot_ours:.0f} | {1e3 * tot_torch:.0f} | "
        f"{tot_ours / tot_torch:.2f} | | |")
    out()
    cases = [(32, 64)] + ([(224, 8)] if a.include_224 else [])
    out("Whole VGG-A training step (forward, backward, SGD with momentum and weight decay; "
        "FC width 4096, 10 classes):")
    out()
    out("| input | batch | minivgg s/step | PyTorch s/step | ratio | minivgg img/s | "
        "PyTorch img/s |")
    out("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, batch in cases:
        t_ours, t_torch = train_step_case(torch, size, batch, a.repeats)
        out(f"| {size}x{size} | {batch} | {t_ours:.3f} | {t_torch:.3f} | {t_ours / t_torch:.2f} | "
            f"{batch / t_ours:.1f} | {batch / t_torch:.1f} |")
    if a.write_md:
        text = (f"Measured by `benchmarks/bench_train.py` on {today()}; machine: {machine()}.\n\n"
                f"Command: `{command_line()}`\n\nRatios are minivgg time / PyTorch time in "
                f"the same run (below 1: minivgg is faster). Best of {a.repeats} runs after "
                f"a warm-up, the two frameworks' runs interleaved.\n\n" + "\n".join(lines))
        write_section(a.write_md, "Training speed against PyTorch (CPU)", text)
        print(f"wrote {a.write_md}")


if __name__ == "__main__":
    main()
