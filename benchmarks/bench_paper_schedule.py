"""What the paper's training schedule (§3.1, §3.3) would cost on this CPU.

Times full training steps (forward, backward, SGD with momentum and weight
decay) of configurations at the paper's size (224x224 input, paper widths,
FC-4096, 1000 classes) and scales them to the paper's schedule: 370K
iterations of batch 256 (74 epochs) per net.

    python benchmarks/bench_paper_schedule.py [--cfg A,D] [--batch 4] [--write-md docs/benchmarks.md]

A step of ``--batch`` images is timed after one warm-up step; the paper's
batch of 256 is the same work as 256 / batch such steps (gradient
accumulation, ``--micro-batch``), so the cost per image is what scales.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.common import (command_line, load_average, machine, thread_counts_arg,  # noqa: E402
                               threads_label, today, use_threads, write_section)
from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.summary import layer_rows, totals  # noqa: E402

ITERATIONS = 370_000
BATCH = 256


def step_time(cfg, batch, repeats, warmup):
    model = vgg(cfg, num_classes=1000, input_size=224, init="gauss", seed=0)
    opt = SGD(model.parameters(), 0.01, 0.9, 5e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, 224, 224)).astype(np.float32))
    y = rng.integers(0, 1000, batch)

    def step():
        opt.zero_grad()
        F.softmax_cross_entropy(model(x), y).backward()
        opt.step()
    for _ in range(warmup):  # first-touch allocations, caches
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default="A,D", help="configurations, comma-separated")
    p.add_argument("--batch", type=int, default=4, help="images per timed step")
    p.add_argument("--repeats", type=int, default=3, help="timed steps (the best counts)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=thread_counts_arg, default=thread_counts_arg("0,1"),
                   help="thread counts, each net timed at each, comma-separated (0: one per "
                        "core; default: 0,1, the machine's default first, then one thread)")
    p.add_argument("--write-md", default=None, help="replace this section of a Markdown file")
    args = p.parse_args(argv)
    info, load0 = machine(load=False), load_average()
    rows = []
    for cfg in args.cfg.split(","):
        for n in args.threads:
            use_threads(n)
            t = step_time(cfg, args.batch, args.repeats, args.warmup)
            per_image = t / args.batch
            macs = totals(layer_rows(cfg))["mult_adds"]
            gflops = 3 * 2 * macs / per_image / 1e9  # backward ~ twice the forward
            schedule_s = per_image * BATCH * ITERATIONS
            rows.append((cfg, n, t, per_image, gflops, schedule_s))
            print(f"VGG-{cfg}, {threads_label(n)}: {t:.2f} s per step of {args.batch} "
                  f"({per_image:.2f} s per image, ~{gflops:.0f} GFLOP/s); 370K x 256 images: "
                  f"{schedule_s / 86400 / 365:.1f} years", flush=True)
    load1 = load_average()
    lines = [
        f"Measured by `benchmarks/bench_paper_schedule.py` on {today()}; machine: {info}; "
        f"threads: {', then '.join(threads_label(n) for n in args.threads)} (the first is "
        f"the machine's default: one per core); load average {load0} at the start, {load1} at "
        f"the end.",
        "",
        f"Command: `{command_line(['benchmarks/bench_paper_schedule.py'] + (argv if argv is not None else sys.argv[1:]))}`",
        "",
        f"One training step (forward, backward, SGD with momentum 0.9 and weight decay) of the "
        f"paper-size net: 224x224 input, the paper's widths, FC-4096, 1000 classes, float32, "
        f"batch {args.batch} (best of {args.repeats} after {args.warmup} untimed steps), at "
        f"each thread count, the machine's default first. The paper's schedule is "
        f"{ITERATIONS:,} iterations of {BATCH} images (74 epochs of ILSVRC-2012) per net; its batch "
        f"of {BATCH} is {BATCH // args.batch} such steps accumulated (`--micro-batch "
        f"{args.batch}`), so the time per image scales. GFLOP/s counts 3 x 2 x the forward "
        f"multiply-adds of `python -m minivgg.summary` per image.",
        "",
        "| net | threads | s per step | s per image | GFLOP/s | one paper schedule (370K x 256 "
        "images) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cfg, n, t, per_image, gflops, sched in rows:
        lines.append(f"| VGG-{cfg} | {n} | {t:.2f} | {per_image:.2f} | {gflops:.0f} | "
                     f"{sched / 86400:,.0f} days = {sched / 86400 / 365:.1f} years |")
    lines += ["", "The paper: 4 NVIDIA Titan Black GPUs, 2-3 weeks per net (§3.3)."]
    text = "\n".join(lines)
    if args.write_md:
        write_section(args.write_md, "The paper's schedule on this CPU", text)
        print(f"wrote the section to {args.write_md}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
