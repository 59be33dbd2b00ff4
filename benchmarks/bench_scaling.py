"""How a training step scales with threads: a profile of one step at one
thread and at N (the machine's cores, by default), per op, each op's time
split into the part that ran on all cores and the part that ran on one,
and from that split an Amdahl model of the step at 4, 8, 16 and 64 cores,
beside PyTorch's measured speed-up on the same machine.

The workloads: VGG-A at 224x224, batch 8, FC 4096; VGG-A at 32x32, batch
64, FC 512; and the model examples/train_vgg.py trains by default, VGG-A
with every width x0.25, FC 128, at 32x32, batch 64 (10 classes; SGD with
momentum and weight decay).

The split. An op that takes t1 on one thread and tN on N threads is taken
to be a part p that runs on all cores (p/N on N of them) and a part s
that runs on one: t1 = s + p, tN = s + p/N, so p = (t1 - tN) N / (N - 1)
and s = t1 - p (for N = 2: p = 2 (t1 - t2)); an op slower on N threads
than on one counts as all serial (p = 0), one more than N times faster as
all parallel. The step's time outside the ops (the autograd's Python, the
loss) is one more row, "between ops". The model of the step on n cores is
then sum(s) + sum(p) / n: Amdahl's law with each op's own serial part, an
upper bound on the speed-up (memory bandwidth and the threads' hand-offs
do not shrink with more cores), measured on N cores only.

    python benchmarks/bench_scaling.py [--repeats 5] [--threads N] [--detail]
        [--write-md docs/benchmarks.md]

Run it on an otherwise idle machine: a core taken by another program
makes the N-thread figures meaningless.
"""
import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (add_freed_memory_flag, command_line, load_average, machine,  # noqa: E402
                    today, write_section)

import minivgg  # noqa: E402
from minivgg import Tensor, profiler  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.backend import device  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.testing import torch_vgg  # noqa: E402
from minivgg.threads import cores, set_threads  # noqa: E402

HEADING = "Threads: where a training step's time goes"

#: (label, input side, batch, width multiplier, FC width)
WORKLOADS = [("VGG-A, 224x224, batch 8, FC 4096", 224, 8, 1.0, 4096),
             ("VGG-A, 32x32, batch 64, FC 512", 32, 64, 1.0, 512),
             ("default example's model: VGG-A x0.25, FC 128, 32x32, batch 64", 32, 64, 0.25, 128)]
CORES = (4, 8, 16, 64)

#: The algorithm names of the fast tier's convolutions, as the profile shows them.
ALGORITHMS = {"im2col": "im2col", "im2col-channels-last": "im2col, channels last",
              "whole-map": "whole-map GEMM", "winograd2": "F(2x2)", "winograd4": "F(4x4)"}


def split_time(t1, tn, n):
    """(parallel, serial) parts of an op taking t1 on one thread and tn on
    n: t1 = s + p, tn = s + p / n, p clamped to [0, t1]."""
    p = (t1 - tn) * n / (n - 1)
    p = min(max(p, 0.0), t1)
    return p, t1 - p


def amdahl(parts, cores):
    """Step time on ``cores`` cores: sum of the serial parts plus the
    parallel parts over the cores. parts: [(parallel, serial)]."""
    return sum(s for _, s in parts) + sum(p for p, _ in parts) / cores


def group_of(name, detail):
    """The profile row an op's span belongs to: the op and direction, with
    the convolution's algorithm (and, with ``detail``, its layer)."""
    if "[" not in name:
        return name
    op, rest = name.split(" [", 1)
    algorithm, layer = rest.rstrip("]").split(", ", 1)
    label = f"{op}, {ALGORITHMS.get(algorithm, algorithm)}"
    return f"{label}, {layer}" if detail else label


class Workload:
    """One model, its optimizer and a fixed batch, in minivgg and in PyTorch."""

    def __init__(self, torch, size, batch, width, fc):
        minivgg.manual_seed(0)
        self.model = vgg("A", num_classes=10, input_size=size, fc_width=fc, width_mult=width,
                         init="kaiming", seed=0)
        self.tmodel = torch_vgg(self.model)
        # A small rate keeps repeated steps on random data finite.
        self.opt = SGD(self.model.parameters(), 1e-4, 0.9, 5e-4)
        self.topt = torch.optim.SGD(self.tmodel.parameters(), 1e-4, momentum=0.9,
                                    weight_decay=5e-4)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        self.y = rng.integers(0, 10, batch)
        self.tx, self.ty = torch.tensor(self.x), torch.tensor(self.y)
        self.torch = torch

    def step(self):
        loss = F.softmax_cross_entropy(self.model(Tensor(self.x)), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def torch_step(self):
        loss = self.torch.nn.functional.cross_entropy(self.tmodel(self.tx), self.ty)
        self.topt.zero_grad()
        loss.backward()
        self.topt.step()

    def profiled_step(self, detail):
        """({row: ms}, step ms): one step under the Profiler, the time
        between ops as the row "between ops"."""
        t0 = time.perf_counter()
        with profiler.Profiler(device("cpu"), detail=True) as prof:
            self.step()
        total = 1e3 * (time.perf_counter() - t0)
        rows = collections.defaultdict(float)
        for name, _, ms in prof.totals():
            rows[group_of(name, detail)] += ms
        rows["between ops (autograd, loss, Python)"] = total - sum(rows.values())
        return rows, total


def use_threads(torch, n):
    set_threads(n)
    torch.set_num_threads(n)


def measure(torch, wl, n, repeats, detail):
    """Profiles and step times at one thread and at n, interleaved: per row
    the median over ``repeats`` steps of each, and the best step times of
    minivgg (unprofiled) and PyTorch at both counts."""
    counts = (n, 1)
    for t in counts:                  # warm-up: scratch buffers, allocator, PyTorch's pools
        use_threads(torch, t)
        wl.step()
        wl.step()
        wl.torch_step()
    profiles = {t: collections.defaultdict(list) for t in counts}
    best = {(who, t): float("inf") for who in ("minivgg", "PyTorch") for t in counts}
    for _ in range(repeats):
        for t in counts:
            use_threads(torch, t)
            rows, _ = wl.profiled_step(detail)
            for name, ms in rows.items():
                profiles[t][name].append(ms)
            for who, fn in (("minivgg", wl.step), ("PyTorch", wl.torch_step)):
                t0 = time.perf_counter()
                fn()
                best[who, t] = min(best[who, t], 1e3 * (time.perf_counter() - t0))
    med = {t: {name: statistics.median(v) for name, v in profiles[t].items()} for t in counts}
    return med, best


def report(label, med, best, n, out):
    """The per-op table of one workload; returns its summary row's numbers."""
    names = sorted(med[1], key=lambda k: -med[1][k])
    parts = {}
    out(f"{label}: {n} threads and one, per op (median of the profiled steps, ms):")
    out()
    out(f"| op | {n} threads ms | 1 thread ms | speed-up | on all cores ms | on one core ms |")
    out("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        t1, tn = med[1][name], med[n].get(name, 0.0)
        p, s = parts[name] = split_time(t1, tn, n)
        out(f"| {name} | {tn:.1f} | {t1:.1f} | {t1 / tn if tn > 0 else float('inf'):.2f} | "
            f"{p:.1f} | {s:.1f} |")
    t1, tn = sum(med[1].values()), sum(med[n].get(k, 0.0) for k in names)
    ps = list(parts.values())
    par, ser = sum(p for p, _ in ps), sum(s for _, s in ps)
    out(f"| **step** | {tn:.1f} | {t1:.1f} | {t1 / tn:.2f} | {par:.1f} | {ser:.1f} |")
    out()
    return {"t1": t1, "tn": tn, "parallel": par, "serial": ser,
            "model": [amdahl(ps, c) for c in CORES],
            "minivgg": (best["minivgg", n], best["minivgg", 1]),
            "torch": (best["PyTorch", n], best["PyTorch", 1])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="profiled steps per thread count")
    p.add_argument("--threads", type=int, default=cores(),
                   help="the thread count to compare with one (default: every core)")
    p.add_argument("--detail", action="store_true", help="a row per convolution layer")
    p.add_argument("--only", type=int, nargs="+", choices=range(len(WORKLOADS)),
                   help="run only these workloads (0: 224x224, 1: 32x32 FC 512, 2: the "
                        "default example's model)")
    add_freed_memory_flag(p)
    p.add_argument("--write-md", metavar="PATH", help="write the results into PATH's section")
    a = p.parse_args(argv)
    if a.threads < 2:
        sys.exit("--threads must be 2 or more: the profile compares it with one thread")
    try:
        import torch
    except ImportError:
        sys.exit("this benchmark compares against PyTorch: pip install torch==2.13.0")
    from minivgg import memory
    if not a.release_freed_memory:
        memory.keep_freed_memory()
    n = a.threads
    load_before = load_average()
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    summary = []
    for i, (label, size, batch, width, fc) in enumerate(WORKLOADS):
        if a.only and i not in a.only:
            continue
        wl = Workload(torch, size, batch, width, fc)
        med, best = measure(torch, wl, n, a.repeats, a.detail)
        summary.append((label, batch, report(label, med, best, n, out)))
    head = (f"| workload | minivgg {n} threads ms | minivgg 1 thread ms | minivgg speed-up | "
            f"serial part of the 1-thread step | " +
            " | ".join(f"model, {c} cores: speed-up" for c in CORES) +
            f" | PyTorch {n} threads ms | PyTorch 1 thread ms | PyTorch speed-up |")
    table = [head, "| --- |" + " ---: |" * (7 + len(CORES))]
    for label, batch, r in summary:
        (mn, m1), (tn, t1) = r["minivgg"], r["torch"]
        table.append(f"| {label} | {mn:.1f} | {m1:.1f} | {m1 / mn:.2f} | "
                     f"{100 * r['serial'] / r['t1']:.0f}% | " +
                     " | ".join(f"{r['t1'] / m:.2f}" for m in r["model"]) +
                     f" | {tn:.1f} | {t1:.1f} | {t1 / tn:.2f} |")
    print("\n".join(table))
    if a.write_md:
        text = (f"Measured by `benchmarks/bench_scaling.py` on {today()}; machine: "
                f"{machine(load=False)}; load average before the run {load_before}, after "
                f"{load_average()}.\n\nCommand: `{command_line()}`\n\n"
                f"One training step (forward, backward, SGD with momentum and weight decay; 10 "
                f"classes) at {n} threads and at one, for minivgg (`set_threads`) and PyTorch "
                f"(`torch.set_num_threads`) alike. Step times: the best of {a.repeats} unprofiled "
                f"steps at each count, the two frameworks' steps and the counts interleaved. "
                f"Each op's time (median of {a.repeats} profiled steps) is split into the part "
                f"that ran on all cores, p, and the part that ran on one, s: t1 = s + p, "
                f"t{n} = s + p/{n}. The model of the step on c cores is the sum of the s plus "
                f"the sum of the p over c (Amdahl's law, op by op): an upper bound, from {n} "
                f"cores, since memory bandwidth and the threads' hand-offs do not shrink with "
                f"more cores.\n\n" + "\n".join(table) + "\n\n" + "\n".join(lines))
        write_section(a.write_md, HEADING, text)
        print(f"wrote {a.write_md}")


if __name__ == "__main__":
    main()
