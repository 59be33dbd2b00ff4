"""§2.3 of the paper made visible, and the initialisation story of §3.1.

Prints the numbers quoted in docs/why_3x3.md and draws its figures:

    python scripts/section_2_3.py                 # every part (about 15 minutes here)
    python scripts/section_2_3.py --part rf       # one part: rf, params, onebyone, init, train

Parts:
  rf        back-propagate a one-pixel gradient through n stacked 3x3 layers (and one
            7x7): the input pixels that receive gradient are the receptive field
            -> docs/img/rf_gradient.png; and through VGG-D's whole conv stack
  params    weights of three 3x3 layers against one 7x7 layer, C channels in and out
  onebyone  a 1x1 convolution is a per-pixel linear layer: without a ReLU after it,
            it folds into the 3x3 layer before it; with one it does not
  init      activation and gradient scale per layer of A, D and E at the paper's
            widths under N(0, 0.01^2), Glorot and Kaiming -> docs/img/init_scales.png
  train     one 7x7 against three 3x3 layers (with ReLUs, and without the inner
            ReLUs), same data, same steps -> docs/img/3x3_vs_7x7.png
"""
import argparse
import os
import sys
import time

# Small matrices: one BLAS thread beats two that wait on each other on a busy 2-core
# machine (docs/benchmarks.md).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minivgg import Tensor, no_grad  # noqa: E402
from minivgg.arithmetic import reshape  # noqa: E402
from minivgg import functional as F  # noqa: E402
from minivgg.nn import Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential  # noqa: E402
from minivgg.nn.init import init_weight  # noqa: E402

IMG = os.path.join(ROOT, "docs", "img")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---------------------------------------------------------------------------
# Receptive fields, read off the gradient
# ---------------------------------------------------------------------------

def conv_stack(n_layers, k=3, channels=1, relu=True, seed=0):
    """n_layers k x k convolutions (padding k//2) with positive weights, so no
    gradient path cancels and no ReLU is ever off for a positive input."""
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(n_layers):
        conv = Conv2d(3 if i == 0 else channels, channels, k, padding=k // 2)
        conv.weight.data[...] = rng.uniform(0.5, 1.5, conv.weight.shape)
        layers.append(conv)
        if relu:
            layers.append(ReLU())
    return Sequential(*layers)


def gradient_support(net, size, out_yx=None, channel=0, seed=1):
    """Back-propagate d(output pixel)/d(input): (mask of input pixels with a
    nonzero gradient (size, size), |gradient|)."""
    x = Tensor(np.random.default_rng(seed).uniform(0.5, 1.5, (1, 3, size, size))
               .astype(np.float32), requires_grad=True)
    y = net(x)
    oy, ox = out_yx if out_yx is not None else (y.shape[2] // 2, y.shape[3] // 2)
    seed = np.zeros(y.shape, np.float32)
    seed[0, channel, oy, ox] = 1.0
    y.backward(seed)
    g = np.abs(x.grad[0]).sum(0)
    return g > 0, g


def extent(mask):
    """(height, width) of the bounding box of the True pixels."""
    ys, xs = np.nonzero(mask)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def part_rf(args):
    print("== receptive field from the gradient of one output pixel ==")
    plt = _plt()
    cases = [("one 3x3", conv_stack(1)), ("two 3x3", conv_stack(2)),
             ("three 3x3", conv_stack(3)), ("one 7x7", conv_stack(1, k=7))]
    fig, axes = plt.subplots(1, len(cases), figsize=(3.0 * len(cases), 3.2))
    for ax, (title, net) in zip(axes, cases):
        mask, g = gradient_support(net, 15)
        h, w = extent(mask)
        print(f"  {title:<10} nonzero input gradient: {h}x{w} pixels")
        ax.imshow(np.where(mask, np.log10(g + 1e-12), np.nan), cmap="viridis")
        ax.set_title(f"{title}: {h}x{w}")
        ax.set_xticks(range(0, 15, 2))
        ax.set_yticks(range(0, 15, 2))
        ax.grid(False)
        ax.plot(7, 7, "r+", ms=10)
    fig.suptitle("Input pixels that receive gradient from the centre output pixel "
                 "(colour: log10 |gradient|; red +: that pixel)", fontsize=9)
    fig.tight_layout()
    os.makedirs(IMG, exist_ok=True)
    path = os.path.join(IMG, "rf_gradient.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"  wrote {os.path.relpath(path, ROOT)}")

    # The same through VGG-D's conv stack: one pool5 unit of a 224 input.
    from minivgg.models import vgg
    from minivgg.summary import layer_rows
    m = vgg("D", num_classes=10, input_size=224, width_mult=1 / 16, fc_width=8, init=None)
    rng = np.random.default_rng(0)
    for mod in m.features:
        if isinstance(mod, Conv2d):
            mod.weight.data[...] = rng.uniform(0.5, 1.5, mod.weight.shape) / mod.weight[0].size
    theory = {r.name: r.receptive_field for r in layer_rows("D")}["pool5"]
    union = np.zeros((224, 224), bool)
    for trial in range(args.rf_images):
        mask, _ = gradient_support(m.features, 224, out_yx=(3, 3), seed=100 + trial)
        if trial == 0:
            print(f"  VGG-D (width 1/16), pool5 unit (3, 3) of one 224x224 input: nonzero input "
                  f"gradient {extent(mask)[0]}x{extent(mask)[1]} pixels")
        union |= mask
    print(f"  union over {args.rf_images} random inputs: {extent(union)[0]}x{extent(union)[1]} "
          f"pixels; receptive field of pool5 by the formula: {theory} "
          f"(python -m minivgg.summary --profile paper --cfg D). Max-pooling passes the gradient to one input "
          f"of each 2x2 window, so one image reaches less than the whole field")


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

def part_params(args):
    print("== weights: three 3x3 layers against one 7x7 layer, C channels in and out ==")
    print(f"  {'C':>4} {'3 x conv3 weights':>18} {'27 C^2':>10} {'1 x conv7 weights':>18} "
          f"{'49 C^2':>10} {'ratio':>6}")
    for c in (64, 128, 256, 512):
        three = sum(Conv2d(c, c, 3, padding=1).weight.size for _ in range(3))
        seven = Conv2d(c, c, 7, padding=3).weight.size
        print(f"  {c:>4} {three:>18,} {27 * c * c:>10,} {seven:>18,} {49 * c * c:>10,} "
              f"{seven / three:>6.2f}")
    print("  (the multiply-adds per output pixel are the same numbers, so the stack is also "
          "1.81x cheaper to run)")


# ---------------------------------------------------------------------------
# 1x1 convolutions (configuration C)
# ---------------------------------------------------------------------------

def part_onebyone(args):
    print("== 1x1 convolutions: a per-pixel linear layer, non-linear only with its ReLU ==")
    rng = np.random.default_rng(0)
    c_in, c = 8, 16
    conv3 = Conv2d(c_in, c, 3, padding=1)
    conv1 = Conv2d(c, c, 1)
    for layer in (conv3, conv1):
        init_weight(layer.weight, "kaiming", rng=rng)
        layer.bias.data[...] = rng.normal(0, 0.1, layer.bias.shape)
    x = rng.standard_normal((4, c_in, 12, 12)).astype(np.float32)
    with no_grad():
        h = rng.standard_normal((4, c, 12, 12)).astype(np.float32)
        y1 = conv1(Tensor(h)).data
        lin = Linear(c, c)
        lin.weight.data[...] = conv1.weight.data[:, :, 0, 0]
        lin.bias.data[...] = conv1.bias.data
        per_pixel = lin(Tensor(h.transpose(0, 2, 3, 1).reshape(-1, c))).data
        per_pixel = per_pixel.reshape(4, 12, 12, c).transpose(0, 3, 1, 2)
        print(f"  1x1 conv == the same Linear applied at every pixel: max |difference| "
              f"{np.abs(y1 - per_pixel).max():.2e}")
        # Fold conv1 into conv3: W' = W1 @ W3 (over channels), b' = W1 b3 + b1.
        w1 = conv1.weight.data[:, :, 0, 0]
        folded = Conv2d(c_in, c, 3, padding=1)
        folded.weight.data[...] = np.einsum("ok,kcij->ocij", w1, conv3.weight.data)
        folded.bias.data[...] = w1 @ conv3.bias.data + conv1.bias.data
        linear_pair = conv1(conv3(Tensor(x))).data
        with_relu = conv1(F.relu(conv3(Tensor(x)))).data
        one = folded(Tensor(x)).data
        scale = np.abs(linear_pair).max()
        print(f"  conv3 -> conv1 without ReLU == one folded conv3: max |difference| "
              f"{np.abs(linear_pair - one).max() / scale:.2e} (relative)")
        print(f"  conv3 -> ReLU -> conv1 against the folded conv3: max |difference| "
              f"{np.abs(with_relu - one).max() / scale:.2f} (relative): the ReLU is what the "
              f"1x1 layer adds")
    from minivgg.summary import layer_rows
    rf = {r.name: r.receptive_field for r in layer_rows("C")}
    print(f"  configuration C: conv3_2 sees {rf['conv3_2']} pixels, its 1x1 successor conv3_3 "
          f"{rf['conv3_3']}: no spatial context added")


# ---------------------------------------------------------------------------
# Initialisation (§3.1)
# ---------------------------------------------------------------------------

def layer_scales(cfg, init, x, labels, pixel_scale, seed=0):
    """Forward a batch through ``cfg`` at the paper's widths (FC-4096) and
    back-propagate the loss: per weight layer, (name, std of its ReLU output,
    std of the gradient of its weight)."""
    from minivgg.models import vgg
    m = vgg(cfg, num_classes=10, input_size=x.shape[-1], fc_width=4096, init=init,
            init_std=0.01, seed=seed, dropout=0.0)
    acts = []
    h = Tensor(x * np.float32(pixel_scale))
    names = list(m.paper_layer_names())
    for mod in m.features:
        h = mod(h)
        if isinstance(mod, ReLU):
            acts.append(float(np.std(h.data)))
    h = reshape(h, (h.shape[0], -1))
    for i, mod in enumerate(m.classifier):
        h = mod(h)
        if isinstance(mod, ReLU) or i == len(m.classifier) - 1:
            acts.append(float(np.std(h.data)))
    loss = F.softmax_cross_entropy(h, labels)
    loss.backward()
    grads = [float(np.std(mod.weight.grad)) for mod in m.paper_layer_names().values()]
    return names, acts, grads


def part_init(args):
    print("== initialisation: signal and gradient scale per layer at the paper's widths ==")
    from minivgg.data import SyntheticShapes, compute_mean_rgb
    from minivgg.evaluate import normalise
    ds = SyntheticShapes(16, 32, seed=0, split="train")
    mean = compute_mean_rgb(ds, progress=False)
    x = np.stack([normalise(ds[i][0], mean) for i in range(len(ds))]).astype(np.float32)
    labels = np.array([ds[i][1] for i in range(len(ds))])
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"gauss": "o-", "glorot": "s-", "kaiming": "^-"}
    results = {}
    for init in ("gauss", "glorot", "kaiming"):
        for cfg in ("A", "D", "E"):
            ps = 255.0 if init == "gauss" else 1.0
            names, acts, grads = layer_scales(cfg, init, x, labels, ps)
            results[(init, cfg)] = (names, acts, grads)
            if cfg == "D":
                label = {"gauss": "N(0, 0.01^2), 0-255 pixels", "glorot": "Glorot",
                         "kaiming": "Kaiming (He)"}[init]
                a.semilogy(range(1, len(acts) + 1), acts, styles[init], label=label)
                b.semilogy(range(1, len(grads) + 1), grads, styles[init], label=label)
    names = results[("gauss", "D")][0]
    for ax, what in ((a, "std of the layer's output (after ReLU)"),
                     (b, "std of the gradient of the layer's weights")):
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.suptitle("VGG-D at the paper's widths (FC-4096), 16 SyntheticShapes images at 32x32, "
                 "at initialisation", fontsize=9)
    fig.tight_layout()
    path = os.path.join(IMG, "init_scales.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"  wrote {os.path.relpath(path, ROOT)}")
    print(f"  {'init':<8} {'cfg':<4} {'layers':>6} {'output std of fc8':>18} "
          f"{'grad std conv1_1':>17} {'grad std fc8':>13} {'conv1_1 / fc8':>14}")
    for (init, cfg), (names, acts, grads) in results.items():
        print(f"  {init:<8} {cfg:<4} {len(names):>6} {acts[-1]:>18.3g} {grads[0]:>17.3g} "
              f"{grads[-1]:>13.3g} {grads[0] / grads[-1]:>14.3g}")


# ---------------------------------------------------------------------------
# Training: one 7x7 against three 3x3
# ---------------------------------------------------------------------------

class SmallNet(Module):
    """Three stages, each (7x7 | three 3x3 [+ReLUs]) -> ReLU -> 2x2 max-pool,
    then FC-10 on the 4x4 map of a 32x32 input."""

    def __init__(self, kind, widths=(8, 16, 32), seed=0):
        super().__init__()
        layers, c = [], 3
        for w in widths:
            if kind == "7x7":
                layers += [Conv2d(c, w, 7, padding=3), ReLU()]
            else:
                for i in range(3):
                    layers.append(Conv2d(c if i == 0 else w, w, 3, padding=1))
                    if kind == "3x3" or i == 2:
                        layers.append(ReLU())
            layers.append(MaxPool2d(2, 2))
            c = w
        self.features = Sequential(*layers)
        self.fc = Linear(c * 16, 10)
        self.assign_names()
        rng = np.random.default_rng(seed)
        for mod in list(self.features) + [self.fc]:
            if isinstance(mod, (Conv2d, Linear)):
                init_weight(mod.weight, "kaiming", rng=rng)

    def forward(self, x):
        h = self.features(x)
        return self.fc(reshape(h, (h.shape[0], -1)))


def part_train(args):
    print("== one 7x7 layer against three 3x3 layers, trained on the same data ==")
    from minivgg.data import DataLoader, SyntheticShapes, compute_mean_rgb, eval_transform
    from minivgg.data import train_transform
    from minivgg.optim import SGD
    train = SyntheticShapes(args.train_size, 32, seed=0, split="train", cache=True)
    val = SyntheticShapes(500, 32, seed=0, split="val", cache=True)
    mean = compute_mean_rgb(train, progress=False)
    kinds = ["7x7", "3x3", "3x3-linear"]
    labels = {"7x7": "one 7x7 + ReLU", "3x3": "three 3x3, ReLU after each",
              "3x3-linear": "three 3x3, one ReLU after the third"}
    curves = {k: [] for k in kinds}
    finals = {k: [] for k in kinds}
    for seed in range(args.seeds):
        for kind in kinds:
            net = SmallNet(kind, seed=seed)
            n_params = net.num_parameters()
            opt = SGD(net.parameters(), args.lr, 0.9, 5e-4)
            loader = DataLoader(train, 64, train_transform(32, (32, 40), mean), seed=seed)
            vloader = DataLoader(val, 250, eval_transform(32, (32, 40), mean), shuffle=False)
            step, epoch, t0 = 0, 0, time.perf_counter()
            curve = []
            while step < args.steps:
                loader.set_epoch(epoch)
                epoch += 1
                for xb, yb in loader:
                    opt.zero_grad()
                    F.softmax_cross_entropy(net(Tensor(xb)), yb).backward()
                    opt.step()
                    step += 1
                    if step % args.eval_every == 0 or step == args.steps:
                        wrong = 0
                        with no_grad():
                            for xv, yv in vloader:
                                wrong += int((net(Tensor(xv)).data.argmax(1) != yv).sum())
                        curve.append((step, 100.0 * wrong / len(val)))
                    if step >= args.steps:
                        break
            curves[kind].append(curve)
            finals[kind].append(curve[-1][1])
            print(f"  seed {seed} {labels[kind]:<36} {n_params:>7,} parameters: val top-1 error "
                  f"{curve[-1][1]:.1f}% after {args.steps} steps ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    for kind in kinds:
        v = np.array(finals[kind])
        print(f"  {labels[kind]:<36} mean {v.mean():.1f}%  (seeds: "
              f"{', '.join(f'{e:.1f}' for e in v)})")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, style in zip(kinds, ("o-", "s-", "^-")):
        steps = [s for s, _ in curves[kind][0]]
        errs = np.array([[e for _, e in c] for c in curves[kind]])
        ax.plot(steps, errs.mean(0), style, label=labels[kind])
        if len(errs) > 1:
            ax.fill_between(steps, errs.min(0), errs.max(0), alpha=0.2)
    ax.set_xlabel("SGD step (batch 64)")
    ax.set_ylabel("validation top-1 error (%)")
    ax.set_title(f"Same receptive field, same data: {args.seeds} seeds (band: min-max)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(IMG, "3x3_vs_7x7.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"  wrote {os.path.relpath(path, ROOT)}")


PARTS = {"rf": part_rf, "params": part_params, "onebyone": part_onebyone, "init": part_init,
         "train": part_train}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="all", choices=["all"] + list(PARTS))
    p.add_argument("--rf-images", type=int, default=32,
                   help="rf: random inputs whose gradient supports are united for VGG-D")
    p.add_argument("--steps", type=int, default=1200, help="train: SGD steps per net")
    p.add_argument("--eval-every", type=int, default=200, help="train: steps between evaluations")
    p.add_argument("--seeds", type=int, default=2, help="train: seeds per variant")
    p.add_argument("--lr", type=float, default=0.01, help="train: learning rate")
    p.add_argument("--train-size", type=int, default=6400, help="train: SyntheticShapes images")
    args = p.parse_args(argv)
    for name, fn in PARTS.items():
        if args.part in ("all", name):
            fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
