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
                    machine, today, write_section)

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
    p.add_argument("--fc-width", type=int, default=256)
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
    p.add_argument("--threads", type=int, default=None,
                   help="threads for BLAS, minivgg and PyTorch alike (default: "
                        "OPENBLAS_NUM_THREADS, else one per core)")
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
    """Forward throughput of the full-size network against PyTorch's."""
    import torch
    threads = a.threads
    torch.set_num_threads(threads)
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
    cpu = threads == 1
    rows = []
    with minivgg.no_grad(), torch.no_grad():
        for name, x, ours, theirs in inputs:
            tx = torch.from_numpy(x)
            diff = float(np.abs(np.asarray(ours(x).data) - theirs(tx).numpy()).max())
            wall, cput = interleaved_best_cpu([lambda: ours(x), lambda: theirs(tx)], a.repeats)
            rows.append((name, "x".join(map(str, x.shape)), wall, cput, diff))
            print(f"{name}: minivgg {len(x) / wall[0]:.2f} img/s, torch {len(x) / wall[1]:.2f} "
                  f"img/s (wall ratio {wall[1] / wall[0]:.2f}, CPU ratio {cput[1] / cput[0]:.2f})",
                  flush=True)
    extra = " | CPU minivgg img/s | CPU PyTorch img/s | CPU minivgg / PyTorch" if cpu else ""
    lines = [f"Measured by `benchmarks/bench_eval.py --full-size` on {today()}; machine: "
             f"{machine(load=False)}; threads: {threads} for BLAS, minivgg and PyTorch; load "
             f"average before the run {load_before}, after {load_average()}.", "",
             f"Command: `{command_line()}`", "",
             f"VGG-{a.cfg} at full width (FC 4096, 1000 classes, random weights), forward pass "
             f"only (no_grad), the same inputs and weights in both; best of {a.repeats} "
             f"interleaved runs after a warm-up. The dense input goes through the "
             f"fully-convolutional net of §3.2 (FC layers as convolutions). Images/s counts "
             f"crops, or dense inputs; above 1, minivgg is faster."
             + (" With one thread, the CPU time of the process is what a pass costs a core "
                "whatever else the shared machine runs." if cpu else ""), "",
             f"| input | shape | minivgg img/s | PyTorch img/s | minivgg / PyTorch{extra} | "
             f"max abs diff |",
             "|---|---|---:|---:|---:|" + ("---:|---:|---:|" if cpu else "") + "---:|"]
    for name, shape, wall, cput, diff in rows:
        n = int(shape.split("x")[0])
        cols = (f" | {n / cput[0]:.2f} | {n / cput[1]:.2f} | {cput[1] / cput[0]:.2f}"
                if cpu else "")
        lines.append(f"| {name} | {shape} | {n / wall[0]:.2f} | {n / wall[1]:.2f} | "
                     f"{wall[1] / wall[0]:.2f}{cols} | {diff:.1e} |")
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Evaluation forward at full size", text)


def main():
    from minivgg.threads import set_threads
    a = parse()
    a.threads = a.threads or blas_threads()     # BLAS, minivgg and PyTorch alike
    set_threads(a.threads)
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
        ev.evaluate(net, ds, protocol, qs, batch_size=a.batch_size, limit=2, progress=False)
        sec = timed_eval(net, ds, protocol, qs, a.batch_size, n)
        mb = peak_mb(net, ds, protocol, qs, a.batch_size, min(n, 4))
        rows.append((protocol, ",".join(map(str, qs)), views[protocol], n / sec, mb))
        print(f"{protocol:16s} Q={','.join(map(str, qs)):10s} views/img={views[protocol]:4d} "
              f"{n / sec:8.2f} img/s  peak {mb:6.1f} MiB", flush=True)

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
        import torch
        torch.set_num_threads(a.threads)  # as NumPy's BLAS and minivgg
        crops = np.random.default_rng(0).standard_normal(
            (a.batch_size, 3, a.input_size, a.input_size)).astype(np.float32)
        dense_x = np.random.default_rng(1).standard_normal(
            (2, 3, scales[-1], scales[-1])).astype(np.float32)
        tw_dense = torch_dense(twin, model)

        def pair(ours, theirs, x):
            """Images/s of both forward passes, interleaved, best of a.repeats by wall time."""
            def run_ours():
                with minivgg.no_grad():
                    ours(minivgg.Tensor(x))

            def run_theirs():
                with torch.no_grad():
                    theirs(torch.from_numpy(x))
            wall, _ = interleaved_best_cpu([run_ours, run_theirs], a.repeats)
            return x.shape[0] / wall[0], x.shape[0] / wall[1]
        ours_c, th_c = pair(model, twin, crops)
        ours_d, th_d = pair(net.dense, tw_dense, dense_x)
        with minivgg.no_grad(), torch.no_grad():
            ref = model(minivgg.Tensor(crops)).data
            diff = float(np.abs(twin(torch.from_numpy(crops)).numpy() - ref).max())
        crop_shape = f"{a.batch_size}x3x{a.input_size}x{a.input_size}"
        torch_rows = [("crop batch", crop_shape, ours_c, th_c),
                      ("dense input", f"2x3x{scales[-1]}x{scales[-1]}", ours_d, th_d)]
        for what, shape, o, t in torch_rows:
            print(f"forward {what:11s} {shape:14s} minivgg {o:8.1f} img/s  torch {t:8.1f} img/s "
                  f" ratio {o / t:.2f}", flush=True)
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


def blas_threads():
    return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
               or os.cpu_count())


def write_md(a, rows, mem_rows, torch_rows, n):
    env = "".join(f"{k}={os.environ[k]} " for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                  if k in os.environ)
    cmd = env + command_line()
    lines = [f"Measured by `benchmarks/bench_eval.py` on {today()}; machine: "
             f"{machine(load=False)}. Threads for BLAS, minivgg and PyTorch: "
             f"{a.threads}. "
             f"Load average at the end: {load_average()} (other jobs share the machine).", "",
             f"Command: `{cmd}`", "",
             f"Model: VGG-{a.cfg}, crop {a.input_size}, width_mult {a.width_mult}, "
             f"fc_width {a.fc_width}, 10 classes, float32; {n} SyntheticShapes images "
             f"{a.image_size}x{a.image_size}; batch_size {a.batch_size} crops. "
             "Images/s is the whole protocol per image (rescale, normalise, every view, "
             "soft-max, averaging). Peak memory is what tracemalloc sees during "
             "`evaluate` on 4 images (NumPy arrays included).", "",
             "| protocol | test Q | views / image | images/s | peak MiB |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {p} | {q} | {v} | {ips:.2f} | {mb:.1f} |" for p, q, v, ips, mb in rows]
    lines += ["", "Multi-crop peak memory against batch_size (crops per forward pass): the "
              "inputs of one pass are bounded by batch_size crops, so memory grows with the "
              "batch size, not with the 150 crops of an image.", "",
              "| batch_size | peak MiB |", "|---:|---:|"]
    lines += [f"| {bs} | {mb:.1f} |" for bs, mb in mem_rows]
    if torch_rows:
        lines += ["", "Forward pass only, same weights, same inputs, PyTorch "
                  f"{_torch_version()} CPU in the same run, the two interleaved, best of "
                  f"{a.repeats} by wall time:", "",
                  "| input | shape | minivgg img/s | PyTorch img/s | minivgg / PyTorch |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {w} | {s} | {o:.1f} | {t:.1f} | {o / t:.2f} |" for w, s, o, t in torch_rows]
    lines += ["", "The machine is shared (other jobs running), so the figures are "
              "indicative; ratios measured in the same run are the meaningful part. With "
              "several BLAS threads on a loaded 2-core machine small matrix products slow "
              "down by up to 10x (threads wait on each other), hence one thread here.", ""]
    write_section(a.write_md, HEADING, "\n".join(lines))
    print(f"wrote the '## {HEADING}' section of {a.write_md}")


def _torch_version():
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()
