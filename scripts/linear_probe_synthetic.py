"""Linear-classifier baseline on SyntheticShapes (how hard is the data set?).

Multinomial logistic regression on raw pixels (standardised per feature),
full-batch Adam with L2 weight decay; the decay is chosen on the validation
split, which flatters the linear model -- the figure is an upper bound.
The figure is recorded in docs/data.md.

    python scripts/linear_probe_synthetic.py [--train 5000] [--val 1000] [--size 32]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minivgg.data import SyntheticShapes  # noqa: E402


def load(n, size, split, seed):
    ds = SyntheticShapes(n, image_size=size, seed=seed, split=split, cache=True)
    x = ds.images.reshape(n, -1).astype(np.float32) / 255
    return x, ds.labels.copy()


def softmax_regression(x, y, xv, yv, l2, iters, lr=1e-2):
    """Full-batch Adam on the mean cross-entropy + l2/2 |W|^2; returns (W, b, train acc, val acc)."""
    n, d = x.shape
    k = int(y.max()) + 1
    w = np.zeros((d, k), np.float32)
    b = np.zeros(k, np.float32)
    onehot = np.eye(k, dtype=np.float32)[y]
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    for t in range(1, iters + 1):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        grads = [x.T @ g + l2 * w, g.sum(0)]
        for j, (param, gr) in enumerate(zip((w, b), grads)):
            m[j] = 0.9 * m[j] + 0.1 * gr
            v[j] = 0.999 * v[j] + 0.001 * gr * gr
            param -= lr * (m[j] / (1 - 0.9 ** t)) / (np.sqrt(v[j] / (1 - 0.999 ** t)) + 1e-8)
    acc = lambda a, lab: float(((a @ w + b).argmax(1) == lab).mean())  # noqa: E731
    return w, b, acc(x, y), acc(xv, yv)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--l2", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    x, y = load(a.train, a.size, "train", a.seed)
    xv, yv = load(a.val, a.size, "val", a.seed)
    print(f"generated {a.train}+{a.val} images of {a.size}x{a.size} in {time.perf_counter() - t0:.1f} s")
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xv = (x - mu) / sd, (xv - mu) / sd

    best = None
    for l2 in a.l2:
        _, _, tr, va = softmax_regression(x, y, xv, yv, l2, a.iters)
        print(f"l2={l2:g}: train acc {tr:.3f}  val acc {va:.3f}")
        if best is None or va > best[1]:
            best = (l2, va)
    print(f"best linear classifier: val acc {best[1]:.3f} (l2={best[0]:g}); chance 0.100")


if __name__ == "__main__":
    main()
