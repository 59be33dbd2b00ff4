"""Speed and memory of the test protocols (§3.2, §4) on a small VGG.

Measures images/s of minivgg.evaluate.evaluate for each protocol (single
centre crop, dense, multi-crop 150 crops, dense + multi-crop) on synthetic
images, the peak memory the evaluation allocates (tracemalloc, which numpy
reports to), and, as a reference, the forward throughput of the same network
with the same weights in PyTorch (CPU) on the same crop batches and dense
inputs.

    python benchmarks/bench_eval.py                      # print
    python benchmarks/bench_eval.py --write-md docs/benchmarks.md

Only the "## Evaluation protocols" section of the markdown file is written
(replaced if present, appended otherwise).

``--full-size`` instead compares the forward pass of the paper's networks
(full width, 224x224 training crop, 1000 classes) with PyTorch's in the same
run: a batch of multi-crop views (224x224 crops) and one dense input (the
fully-convolutional net on a Q x Q image), interleaved, best of
``--repeats``; with one thread also by CPU time. It writes the section
"Evaluation forward at full size".
"""
import argparse
import importlib.util
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (best_time, command_line, interleaved_best_cpu, load_average,  # noqa: E402
                    machine, thread_counts_arg, threads_label, today, use_threads,
                    write_section)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minivgg  # noqa: E402
from minivgg import evaluate as ev  # noqa: E402
from minivgg.data import SyntheticShapes  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.models.vgg import CONFIGS, LRN  # noqa: E402
from minivgg.testing import torch_vgg  # noqa: E402

HEADING = "Evaluation protocols"
MEAN = [0.5, 0.5, 0.5]


def parse():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default="A")
    p.add_argument("--input-size", type=int, default=32, help="training crop")
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--fc-width", type=int, default=128, help="FC width (the default "
                   "example's model: 128)")
    p.add_argument("--images", type=int, default=12, help="images per protocol")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--scales", default="32,48,64")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--write-md", default=None)
    p.add_argument("--full-size", action="store_true",
                   help="compare the forward pass of the full-size network with PyTorch's")
    p.add_argument("--crops", type=int, default=16, help="--full-size: crops per forward pass")
    p.add_argument("--dense-q", type=int, nargs="+", default=[256, 384],
                   help="--full-size: dense input sizes")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed forward passes of each framework, interleaved, best kept "
                        "(default: 3 with --full-size, else 20)")
    p.add_argument("--threads", type=thread_counts_arg, default=thread_counts_arg("0,1"),
                   help="thread counts for BLAS, minivgg and PyTorch alike, everything "
                        "measured at each, comma-separated (0: one per core; default: 0,1, "
                        "the machine's default first, then one thread)")
    return p.parse_args()


def timed_eval(net, ds, protocol, scales, batch_size, n):
    """Seconds of one evaluate() call (the caller warms up)."""
    return best_time(lambda: ev.evaluate(net, ds, protocol, scales, batch_size=batch_size,
                                         limit=n, progress=False), repeats=1, warmup=0)


def peak_mb(net, ds, protocol, scales, batch_size, n):
    tracemalloc.start()
    ev.evaluate(net, ds, protocol, scales, batch_size=batch_size, limit=n, progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2 ** 20


def torch_twin(model):
    """The same network in PyTorch with the same weights (dropout off), or None
    without PyTorch; None for the LRN configuration too, which this benchmark
    has never compared."""
    if LRN in CONFIGS[model.cfg] or importlib.util.find_spec("torch") is None:
        return None
    return torch_vgg(model).eval()


def full_size(a):
    """Forward throughput of the full-size network against PyTorch's, at
    each thread count."""
    import torch
    load_before = load_average()
    model = vgg(a.cfg, num_classes=1000, input_size=224, init="kaiming", seed=0).eval()
    net = ev.EvalNet(model, MEAN)
    twin = torch_twin(model)
    tw_dense = torch_dense(twin, model)
    rng = np.random.default_rng(0)
    inputs = [("multi-crop views", rng.standard_normal((a.crops, 3, 224, 224)).astype(np.float32),
               lambda x: model(minivgg.Tensor(x)), twin)]
    for q in a.dense_q:
        x = rng.standard_normal((1, 3, q, q)).astype(np.float32)
        inputs.append((f"dense input, Q = {q}", x, lambda x: net.dense(minivgg.Tensor(x)),
                       tw_dense))
    rows = []
    with minivgg.no_grad(), torch.no_grad():
        for name, x, ours, theirs in inputs:
            tx = torch.from_numpy(x)
            diff = float(np.abs(np.asarray(ours(x).data) - theirs(tx).numpy()).max())
            walls = {}
            for n in a.threads:
                use_threads(n, torch)
                walls[n], _ = interleaved_best_cpu([lambda: ours(x), lambda: theirs(tx)],
                                                   a.repeats)
                w = walls[n]
                print(f"{name}, {threads_label(n)}: minivgg {len(x) / w[0]:.2f} img/s, torch "
                      f"{len(x) / w[1]:.2f} img/s (ratio {w[1] / w[0]:.2f})", flush=True)
            rows.append((name, "x".join(map(str, x.shape)), walls, diff))
    labels = [threads_label(n) for n in a.threads]
    ups = " | minivgg speed-up | PyTorch speed-up" if len(a.threads) > 1 else ""
    lines = [f"Measured by `benchmarks/bench_eval.py --full-size` on {today()}; machine: "
             f"{machine(load=False)}; threads: {', then '.join(labels)} for BLAS, minivgg and "
             f"PyTorch alike (the first is the machine's default: one per core); load average "
             f"before the run {load_before}, after {load_average()}.", "",
             f"Command: `{command_line()}`", "",
             f"VGG-{a.cfg} at full width (FC 4096, 1000 classes, random weights), forward pass "
             f"only (no_grad), the same inputs and weights in both; best of {a.repeats} "
             f"interleaved runs after a warm-up, by wall time, at each thread count. The dense "
             f"input goes through the fully-convolutional net of §3.2 (FC layers as "
             f"convolutions). Images/s counts crops, or dense inputs; above 1, minivgg is "
             f"faster.", "",
             "| input | shape | " + " | ".join(
                 f"minivgg img/s, {t} | PyTorch img/s, {t} | minivgg / PyTorch, {t}"
                 for t in labels) + f"{ups} | max abs diff |",
             "|---|---|" + "---:|---:|---:|" * len(labels) + "---:|---:|" * bool(ups) + "---:|"]
    n0, n1 = a.threads[0], a.threads[-1]
    for name, shape, walls, diff in rows:
        k = int(shape.split("x")[0])
        cells = " | ".join(f"{k / walls[n][0]:.2f} | {k / walls[n][1]:.2f} | "
                           f"{walls[n][1] / walls[n][0]:.2f}" for n in a.threads)
        up = (f" | {walls[n1][0] / walls[n0][0]:.2f} | {walls[n1][1] / walls[n0][1]:.2f}"
              if ups else "")
        lines.append(f"| {name} | {shape} | {cells}{up} | {diff:.1e} |")
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Evaluation forward at full size", text)


def main():
    a = parse()
    import torch
    use_threads(a.threads[0], torch)
    if a.full_size:
        a.repeats = a.repeats or 3
        return full_size(a)
    a.repeats = a.repeats or 20
    scales = [int(s) for s in a.scales.split(",")]
    model = vgg(a.cfg, num_classes=10, input_size=a.input_size, fc_width=a.fc_width,
                width_mult=a.width_mult, init="kaiming", seed=0).eval()
    net = ev.EvalNet(model, MEAN, train_scale=scales[1])
    ds = SyntheticShapes(a.images, image_size=a.image_size, seed=0, split="val", cache=True)
    n = a.images
    views = {"single": 1, "dense": 2 * len(scales), "multicrop": 50 * len(scales),
             "dense+multicrop": 52 * len(scales)}
    rows = []
    for protocol in ev.PROTOCOLS:
        qs = [scales[1]] if protocol == "single" else scales
        ips = {}
        for t in a.threads:
            use_threads(t, torch)
            ev.evaluate(net, ds, protocol, qs, batch_size=a.batch_size, limit=2, progress=False)
            ips[t] = n / timed_eval(net, ds, protocol, qs, a.batch_size, n)
        mb = peak_mb(net, ds, protocol, qs, a.batch_size, min(n, 4))
        rows.append((protocol, ",".join(map(str, qs)), views[protocol], ips, mb))
        print(f"{protocol:16s} Q={','.join(map(str, qs)):10s} views/img={views[protocol]:4d} " +
              ", ".join(f"{ips[t]:8.2f} img/s with {threads_label(t)}" for t in a.threads) +
              f"  peak {mb:6.1f} MiB", flush=True)

    # Memory bound: peak vs batch size for multi-crop.
    mem_rows = []
    for bs in (16, 64, 256):
        mb = peak_mb(net, ds, "multicrop", scales, bs, 4)
        mem_rows.append((bs, mb))
        print(f"multicrop batch_size={bs:4d}: peak {mb:6.1f} MiB", flush=True)

    # Forward throughput against PyTorch, same weights, same inputs.
    torch_rows = []
    twin = None if a.no_torch else torch_twin(model)
    if twin is not None:
        crops = np.random.default_rng(0).standard_normal(
            (a.batch_size, 3, a.input_size, a.input_size)).astype(np.float32)
        dense_x = np.random.default_rng(1).standard_normal(
            (2, 3, scales[-1], scales[-1])).astype(np.float32)
        tw_dense = torch_dense(twin, model)

        def pair(ours, theirs, x):
            """Images/s of both forward passes at each thread count, interleaved, best
            of a.repeats by wall time."""
            def run_ours():
                with minivgg.no_grad():
                    ours(minivgg.Tensor(x))

            def run_theirs():
                with torch.no_grad():
                    theirs(torch.from_numpy(x))
            res = {}
            for t in a.threads:
                use_threads(t, torch)
                wall, _ = interleaved_best_cpu([run_ours, run_theirs], a.repeats)
                res[t] = (x.shape[0] / wall[0], x.shape[0] / wall[1])
            return res
        crop_ips = pair(model, twin, crops)
        dense_ips = pair(net.dense, tw_dense, dense_x)
        with minivgg.no_grad(), torch.no_grad():
            ref = model(minivgg.Tensor(crops)).data
            diff = float(np.abs(twin(torch.from_numpy(crops)).numpy() - ref).max())
        crop_shape = f"{a.batch_size}x3x{a.input_size}x{a.input_size}"
        torch_rows = [("crop batch", crop_shape, crop_ips),
                      ("dense input", f"2x3x{scales[-1]}x{scales[-1]}", dense_ips)]
        for what, shape, res in torch_rows:
            for t, (o, th) in res.items():
                print(f"forward {what:11s} {shape:14s} {threads_label(t)}: minivgg {o:8.1f} "
                      f"img/s  torch {th:8.1f} img/s  ratio {o / th:.2f}", flush=True)
        print(f"max |minivgg - torch| logits: {diff:.2e}")

    if a.write_md:
        write_md(a, rows, mem_rows, torch_rows, n)


def torch_dense(twin, model):
    """PyTorch dense twin: FC1 as a KxK conv, FC2/FC3 as 1x1 convs."""
    import torch
    import torch.nn as tnn
    feats = twin.features
    f1, f2, f3 = twin.classifier[0], twin.classifier[3], twin.classifier[6]
    k = model.feature_size
    convs = []
    for f, ks in ((f1, k), (f2, 1), (f3, 1)):
        c = tnn.Conv2d(f.in_features // (ks * ks), f.out_features, ks)
        c.weight.data = f.weight.data.reshape(f.out_features, -1, ks, ks).clone()
        c.bias.data = f.bias.data.clone()
        convs.append(c)
    return torch.nn.Sequential(feats, convs[0], tnn.ReLU(), convs[1], tnn.ReLU(), convs[2]).eval()


def write_md(a, rows, mem_rows, torch_rows, n):
    labels = [threads_label(t) for t in a.threads]
    t0, t1 = a.threads[0], a.threads[-1]
    ups = len(a.threads) > 1
    lines = [f"Measured by `benchmarks/bench_eval.py` on {today()}; machine: "
             f"{machine(load=False)}; threads: {', then '.join(labels)} for BLAS, minivgg "
             f"and PyTorch alike (the first is the machine's default: one per core). Load "
             f"average at the end: {load_average()}.", "",
             f"Command: `{command_line()}`", "",
             f"Model: VGG-{a.cfg}, crop {a.input_size}, width_mult {a.width_mult}, "
             f"fc_width {a.fc_width}, 10 classes, float32; {n} SyntheticShapes images "
             f"{a.image_size}x{a.image_size}; batch_size {a.batch_size} crops. "
             "Images/s is the whole protocol per image (rescale, normalise, every view, "
             "soft-max, averaging). Peak memory is what tracemalloc sees during "
             "`evaluate` on 4 images (NumPy arrays included).", "",
             "| protocol | test Q | views / image | " +
             " | ".join(f"images/s, {t}" for t in labels) +
             (" | speed-up" if ups else "") + " | peak MiB |",
             "|---|---|---:|" + "---:|" * len(labels) + "---:|" * ups + "---:|"]
    lines += [f"| {p} | {q} | {v} | " + " | ".join(f"{ips[t]:.2f}" for t in a.threads) +
              (f" | {ips[t0] / ips[t1]:.2f}" if ups else "") + f" | {mb:.1f} |"
              for p, q, v, ips, mb in rows]
    lines += ["", "Multi-crop peak memory against batch_size (crops per forward pass): the "
              "inputs of one pass are bounded by batch_size crops, so memory grows with the "
              "batch size, not with the 150 crops of an image.", "",
              "| batch_size | peak MiB |", "|---:|---:|"]
    lines += [f"| {bs} | {mb:.1f} |" for bs, mb in mem_rows]
    if torch_rows:
        lines += ["", "Forward pass only, same weights, same inputs, PyTorch "
                  f"{_torch_version()} CPU in the same run, the two interleaved, best of "
                  f"{a.repeats} by wall time, at each thread count:", "",
                  "| input | shape | " + " | ".join(
                      f"minivgg img/s, {t} | PyTorch img/s, {t} | minivgg / PyTorch, {t}"
                      for t in labels) +
                  (" | minivgg speed-up | PyTorch speed-up" if ups else "") + " |",
                  "|---|---|" + "---:|---:|---:|" * len(labels) + "---:|---:|" * ups]
        for w, shape, res in torch_rows:
            lines.append(f"| {w} | {shape} | " + " | ".join(
                f"{res[t][0]:.1f} | {res[t][1]:.1f} | {res[t][0] / res[t][1]:.2f}"
                for t in a.threads) +
                (f" | {res[t0][0] / res[t1][0]:.2f} | {res[t0][1] / res[t1][1]:.2f}"
                 if ups else "") + " |")
    write_section(a.write_md, HEADING, "\n".join(lines))
    print(f"wrote the '## {HEADING}' section of {a.write_md}")


def _torch_version():
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()
