"""Memory of a VGG-D training step at 224x224, measured on the CPU and
extrapolated to the GPU's batch of 64.

The GPU path keeps exactly the arrays the CPU path keeps (the same ops save
the same inputs and outputs; only im2col's chunk is larger on a GPU:
2^28 elements, 1 GiB in float32, instead of 2^20). So the bytes a step
allocates on the CPU, measured with tracemalloc at batch 1 and 2, give the
per-image cost, and batch 64 = batch 1 + 63 x that, plus parameters,
gradients and momentum (3 x 4 bytes x 138,357,544) and the GPU's larger
im2col chunks.

    python benchmarks/bench_memory.py [--write-md docs/benchmarks.md]
"""
import argparse
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, machine, today, write_section  # noqa: E402

from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.functional.conv import CHUNK_ELEMENTS  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write-md", default=None)
    a = p.parse_args(argv)
    m = vgg("D", num_classes=1000, input_size=224, init="kaiming", seed=0)
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
        F.softmax_cross_entropy(m(Tensor(x)), np.arange(b)).backward()
        opt.step()
        peaks[b] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    per_image = peaks[2] - peaks[1]
    gib = 2 ** 30
    chunk_extra = 2 * 4 * (CHUNK_ELEMENTS["cuda"] - CHUNK_ELEMENTS["cpu"])  # a column chunk + its GEMM
    est = peaks[1] + 63 * per_image + state + chunk_extra
    lines = [f"Machine: {machine()}. Date: {today()}. Command: `{command_line()}`.", "",
             "| quantity | GiB |", "| --- | ---: |",
             f"| parameters + gradients + momentum (flat buffers) | {state / gib:.2f} |",
             f"| step allocations at batch 1 (measured) | {peaks[1] / gib:.3f} |",
             f"| step allocations at batch 2 (measured) | {peaks[2] / gib:.3f} |",
             f"| per image (difference) | {per_image / gib:.3f} |",
             f"| estimated peak on a GPU at batch 64 (batch 1 + 63 images + state + 1 GiB "
             f"im2col chunks) | {est / gib:.1f} |"]
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Memory of a VGG-D step (224x224)", text)


if __name__ == "__main__":
    main()
