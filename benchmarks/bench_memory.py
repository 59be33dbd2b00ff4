"""Memory of a VGG-D training step at 224x224, measured on the emulated GPU
and extrapolated to the GPU's batch of 64.

The emulated device (``emu``) runs the GPU's own code path (the same kernels,
im2col chunks of 2^28 elements, the same arrays kept for backward) with NumPy
arrays, so tracemalloc sees exactly the allocations a GPU step makes. Measured
at batch 1 and 2, they give the per-image cost, and batch 64 = batch 1 + 63 x
that; the parameters, gradients and momentum (3 x 4 bytes x 138,357,544) are
counted apart.

    python benchmarks/bench_memory.py [--write-md docs/benchmarks.md]

``--rss`` instead measures the peak resident memory of a VGG-D training
step at 224x224 (batch ``--batch``, 1000 classes) against PyTorch's: each
framework runs two steps in a fresh process of its own (minivgg keeping freed
memory, as its Trainer does: minivgg/memory.py); the peak (VmHWM) is
reset once the model and optimizer exist, so it covers the steps alone,
and the resident memory at that moment is reported beside it. Section
"Peak memory of a VGG-D step against PyTorch".
"""
import argparse
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, machine, today, write_section  # noqa: E402

from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg import memory  # noqa: E402
from minivgg.fast.blocks import CHUNK_ELEMENTS  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402


def _status(key):
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024   # MiB
    return float("nan")


def rss_child(framework, batch, keep=True):
    """In a fresh process: build VGG-D, reset the peak, run two steps, print MiB."""
    import gc
    m = vgg("D", num_classes=1000, input_size=224, init="kaiming", seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    y = np.arange(batch)
    if framework == "torch":
        import torch
        from minivgg.testing import torch_vgg
        torch.set_num_threads(1)
        tm = torch_vgg(m)
        del m
        opt = torch.optim.SGD(tm.parameters(), 1e-3, momentum=0.9, weight_decay=5e-4)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def step():
            loss = torch.nn.functional.cross_entropy(tm(tx), ty)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        from minivgg.threads import set_threads
        set_threads(1)
        if keep:      # as Trainer runs it (Recipe.keep_freed_memory)
            memory.keep_freed_memory()
        opt = SGD(m.parameters(), 1e-3, 0.9, 5e-4)

        def step():
            loss = F.softmax_cross_entropy(m(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:   # restart VmHWM from the current RSS
        f.write("5")
    for _ in range(2):
        step()
    print(json.dumps({"before": before, "peak": _status("VmHWM")}))


def rss(a):
    out = {}
    for fw in ("minivgg", "torch"):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", fw,
                            "--batch", str(a.batch)], capture_output=True, text=True, check=True)
        out[fw] = json.loads(r.stdout.strip().splitlines()[-1])
        print(fw, out[fw], flush=True)
    mv, th = out["minivgg"], out["torch"]
    lines = [f"Measured by `benchmarks/bench_memory.py --rss` on {today()}; machine: "
             f"{machine()}.", "", f"Command: `{command_line()}`", "",
             f"VGG-D, 224x224, batch {a.batch}, 1000 classes, SGD with momentum and weight decay; "
             f"each framework in a fresh process, one thread; minivgg as its Trainer runs it, "
             f"with freed memory kept in the process (minivgg.memory), PyTorch as shipped. "
             f"'Resident before' is the "
             f"process's memory once the model and optimizer exist (PyTorch's includes its "
             f"libraries); 'peak during the steps' is the largest resident set over two "
             f"steps (VmHWM, reset just before them).", "",
             "| framework | resident before MiB | peak during the steps MiB | growth MiB |",
             "| --- | ---: | ---: | ---: |",
             *[f"| {name} | {r['before']:.0f} | {r['peak']:.0f} | {r['peak'] - r['before']:.0f} |"
               for name, r in (("minivgg", mv), ("PyTorch", th))],
             "", f"Peak ratio minivgg / PyTorch: {mv['peak'] / th['peak']:.2f}; growth ratio: "
             f"{(mv['peak'] - mv['before']) / (th['peak'] - th['before']):.2f}."]
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Peak memory of a VGG-D step against PyTorch", text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write-md", default=None)
    p.add_argument("--rss", action="store_true", help="peak resident memory against PyTorch")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rss-child", choices=["minivgg", "torch"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child:
        return rss_child(a.rss_child, a.batch)
    if a.rss:
        return rss(a)
    dev = "emu"
    m = vgg("D", num_classes=1000, input_size=224, init="kaiming", seed=0).to(dev)
    opt = SGD(m.parameters(), 0.01, 0.9, 5e-4)
    opt.zero_grad()
    opt.step()  # the flat parameter, gradient and momentum buffers exist from here on
    state = 3 * 4 * m.num_parameters()
    peaks = {}
    for b in (1, 2):
        x = np.random.default_rng(0).random((b, 3, 224, 224), dtype=np.float32)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        opt.zero_grad()
        F.softmax_cross_entropy(m(Tensor(x, device=dev)), np.arange(b)).backward()
        opt.step()
        peaks[b] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    per_image = peaks[2] - peaks[1]
    gib = 2 ** 30
    est = peaks[1] + 63 * per_image + state
    lines = [f"Machine: {machine()}. Date: {today()}. Command: `{command_line()}`.", "",
             f"On the emulated GPU (the GPU's code path; im2col chunks of "
             f"{CHUNK_ELEMENTS['emu']:,} elements):", "",
             "| quantity | GiB |", "| --- | ---: |",
             f"| parameters + gradients + momentum (flat buffers) | {state / gib:.2f} |",
             f"| step allocations at batch 1 (measured) | {peaks[1] / gib:.3f} |",
             f"| step allocations at batch 2 (measured) | {peaks[2] / gib:.3f} |",
             f"| per image (difference) | {per_image / gib:.3f} |",
             f"| estimated peak of a GPU step at batch 64 (batch 1 + 63 images + state) | "
             f"{est / gib:.1f} |"]
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Memory of a VGG-D step (224x224)", text)


if __name__ == "__main__":
    main()
