"""Small conv-net baseline on SyntheticShapes (the counterpart of linear_probe_synthetic.py).

Trains a 4-conv-layer VGG-style net (3x3 convs, max-pools, one FC) with
PyTorch on the same train/val images as the linear baseline, to show that
the data set is learnable by a conv net while a linear classifier on pixels
is near chance.  PyTorch (CPU) is an optional dependency of the project; the
minivgg framework itself does not use it.

    python scripts/convnet_probe_synthetic.py [--train 5000] [--val 1000] [--epochs 15] [--threads 1]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minivgg.data import SyntheticShapes  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        import torch
        import torch.nn as nn
    except ImportError:
        sys.exit("this script needs PyTorch (pip install torch --index-url https://download.pytorch.org/whl/cpu)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    def load(n, split):
        ds = SyntheticShapes(n, 32, seed=a.seed, split=split, cache=True)
        x = torch.from_numpy(ds.images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - 0.5)
        return x, torch.from_numpy(ds.labels)

    x, y = load(a.train, "train")
    xv, yv = load(a.val, "val")

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    net = nn.Sequential(*block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                        *block(64, 96), nn.MaxPool2d(2), *block(96, 128),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    steps = a.epochs * (a.train // 64)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)
    t0 = time.perf_counter()
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(a.train)
        for s in range(a.train // 64):
            idx = perm[s * 64:(s + 1) * 64]
            xb = x[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)
            loss = nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            acc = (net(xv).argmax(1) == yv).float().mean().item()
        print(f"epoch {ep + 1}: loss {loss.item():.3f}  val acc {acc:.3f}  ({time.perf_counter() - t0:.0f} s)")
    print(f"conv net: val acc {acc:.3f}; chance 0.100")


if __name__ == "__main__":
    main()
