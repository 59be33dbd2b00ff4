"""How slow is the emulated GPU? One VGG-A training step (width 1/8, 32x32,
batch 64, FC 128) on the ``emu`` device, next to the same step on the ``cpu``
device and in PyTorch, in the same run. The emulator exists to check and
read the CUDA kernels without a GPU; the target is a step in under a minute.

    python benchmarks/bench_emu.py [--repeats 3] [--write-md docs/benchmarks.md]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best_time, command_line, load_average, machine, today, write_section  # noqa

import minivgg  # noqa: E402
from minivgg import Tensor  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402
from minivgg.backend import device  # noqa: E402
from minivgg.profiler import Profiler  # noqa: E402


def step_fn(dev, x, y):
    m = vgg("A", num_classes=10, input_size=32, fc_width=128, width_mult=1 / 8, init="kaiming",
            seed=0).to(dev)
    opt = SGD(m.parameters(), 0.01, 0.9, 5e-4)
    xt = Tensor(x, device=dev)

    def step():
        opt.zero_grad()
        F.softmax_cross_entropy(m(xt), y).backward()
        opt.step()
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write-md", default=None)
    a = p.parse_args(argv)
    load = load_average()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    minivgg.manual_seed(0)
    times = {dev: best_time(step_fn(dev, x, y), a.repeats) for dev in ("cpu", "emu")}
    emu_step = step_fn("emu", x, y)
    with Profiler(device("emu")) as prof:
        emu_step()
    kernel_ms = sum(t for n, _, t in prof.totals() if n.startswith("kernel "))
    torch_s = None
    try:
        import torch
        from minivgg.testing import torch_vgg
        net = torch_vgg(vgg("A", num_classes=10, input_size=32, fc_width=128, width_mult=1 / 8,
                            init="kaiming", seed=0))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def tstep():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(tx), ty).backward()
            opt.step()
        torch_s = best_time(tstep, a.repeats)
    except ImportError:
        pass
    lines = [f"Machine: {machine(load=False)}; load average before {load}, after "
             f"{load_average()}. Date: {today()}. Command: `{command_line()}`.", "",
             "| device | step (ms) | vs cpu |", "| --- | ---: | ---: |",
             f"| cpu (NumPy) | {1e3 * times['cpu']:.0f} | 1.0x |",
             f"| emu (the CUDA kernels, g++) | {1e3 * times['emu']:.0f} | "
             f"{times['emu'] / times['cpu']:.1f}x |"]
    if torch_s is not None:
        lines.append(f"| PyTorch {torch.__version__} (CPU) | {1e3 * torch_s:.0f} | "
                     f"{torch_s / times['cpu']:.1f}x |")
    lines += ["", f"Of the emulated step, {kernel_ms:.0f} ms run inside the emulated kernels "
                  f"(im2col and the rest); the GEMMs are NumPy's, as on the cpu device."]
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "The emulated GPU (emu)", text)


if __name__ == "__main__":
    main()
