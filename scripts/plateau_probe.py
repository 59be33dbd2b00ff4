#!/usr/bin/env python
"""How fast does a plain VGG-A leave the chance plateau? A quick probe of recipe variants.

The small profile's defaults (docs/training.md, "The small-CPU profile") were
chosen with this script. It trains the default network — VGG-A at width 0.25,
FC 128, on the embedded SyntheticShapes data through minivgg's own data
pipeline (§3.1 augmentation, mean RGB, the same batches for the same seed) —
for one or a few epochs and prints the validation top-1 error after each.
The network is a PyTorch replica of minivgg's (same layers, same init
schemes), because the probe also tries what minivgg deliberately lacks
(batch normalisation, Adam, a data-dependent "LSUV" initialisation) to tell
whether the plateau comes from the recipe or from the data; it needs torch.

    python scripts/plateau_probe.py --seeds 0,1 '{"lr": 0.01, "dropout": 0}'
    python scripts/plateau_probe.py --seeds 3 '{"train_size": 36000, "lr": 0.01, "dropout": 0}'
    python scripts/plateau_probe.py --similarity        # why: minivgg's default net at init

Each argument is one variant, a JSON object over these keys (defaults: the
old small profile): lr (0.02), momentum (0.9), weight_decay (5e-4),
dropout (0.3), fc_bias (0.1), fc_width (128), batch_size (64),
train_size (12000), epochs (1), width (16: conv1's channels), init
("kaiming" | "glorot" | "orthogonal"), bn (false), adam (false), lsuv
(false), min_object (0.25: SyntheticShapes' smallest object, as a fraction
of the side). One line per run: the variant, the seed, the error after each
epoch (500 validation images), the mean training loss of the last 50 steps
and the seconds taken.

``--similarity`` instead builds minivgg's own default model (``--seeds``:
its init seeds), passes a validation batch through it at initialisation and
prints, after each layer, the mean cosine similarity between two images'
activations and the share of the activations' RMS that varies from image to
image: deep plain ReLU nets map every image to nearly the same vector.
"""
import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DEFAULTS = dict(lr=0.02, momentum=0.9, weight_decay=5e-4, dropout=0.3, fc_bias=0.1,
                fc_width=128, batch_size=64, train_size=12000, epochs=1, width=16,
                init="kaiming", bn=False, adam=False, lsuv=False, min_object=0.25)


def build(torch, nn, v):
    """VGG-A (Table 1, column A) at conv1 width ``v['width']``, for 32x32 inputs."""
    from minivgg.models.vgg import CONFIGS, M

    layers, c = [], 3
    for width in CONFIGS["A"]:
        if width == M:
            layers.append(nn.MaxPool2d(2))
            continue
        out = max(1, int(round(width * v["width"] / 64)))  # minivgg's width_mult rounding
        layers += [nn.Conv2d(c, out, 3, padding=1)]
        layers += [nn.BatchNorm2d(out)] if v["bn"] else []
        layers += [nn.ReLU()]
        c = out
    fc = v["fc_width"]
    net = nn.Sequential(*layers, nn.Flatten(),
                        nn.Linear(c, fc), nn.ReLU(), nn.Dropout(v["dropout"]),
                        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(v["dropout"]),
                        nn.Linear(fc, 10))
    weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    init = {"kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
            "glorot": nn.init.xavier_normal_,
            "orthogonal": lambda w: nn.init.orthogonal_(w, gain=2 ** 0.5)}[v["init"]]
    for m in weighted:
        init(m.weight)
        hidden_fc = isinstance(m, nn.Linear) and m is not weighted[-1]
        nn.init.constant_(m.bias, v["fc_bias"] if hidden_fc else 0.0)
    return net, weighted


def lsuv(torch, net, weighted, x):
    """Rescale each hidden layer (and shift its bias) so that its outputs have
    zero mean and unit variance per channel on the batch ``x``."""
    net.eval()
    for m in weighted[:-1]:
        seen = {}
        hook = m.register_forward_hook(lambda mod, i, o: seen.__setitem__("o", o))
        with torch.no_grad():
            net(x)
            o = seen["o"]
            axes = (0, 2, 3) if o.dim() == 4 else (0,)
            mean, std = o.mean(axes), o.std(axes) + 1e-8
            m.weight /= std.reshape((-1,) + (1,) * (m.weight.dim() - 1))
            m.bias.copy_((m.bias - mean) / std)
        hook.remove()


def similarity(seed, workdir, images=64):
    """Layer by layer: how alike two images look to minivgg's default net at init."""
    from minivgg import Tensor, no_grad
    from minivgg.train import Recipe, Trainer

    r = Recipe(out=os.path.join(workdir, f"sim{seed}"), overwrite=True, progress=False,
               seed=seed, threads=1, val_size=images, batch_size=images,
               mean_images=2000)  # the mean RGB of 2,000 training images is close enough
    t = Trainer(r, log=lambda *a: None)
    t._setup()
    t.model.eval()
    x = Tensor(np.asarray(next(iter(t.val_loader))[0]))
    lines = [f"VGG-A (seed {seed}) at initialisation, {images} validation images:",
             f"{'after':24s} {'mean cosine':>12s} {'image-dependent':>16s}"]

    def row(name, a):
        a = a.reshape(a.shape[0], -1).astype(np.float64)
        norms = np.linalg.norm(a, axis=1)
        cos = (a @ a.T) / np.maximum(np.outer(norms, norms), 1e-30)
        varying = np.sqrt(((a - a.mean(0)) ** 2).mean() / max((a ** 2).mean(), 1e-30))
        mean_cos = cos[np.triu_indices(len(a), 1)].mean()
        lines.append(f"{name:24s} {mean_cos:12.2f} {100 * varying:15.0f}%")

    with no_grad():
        row("input", x.data)
        h = x
        for i, layer in enumerate(t.model.features):
            h = layer(h)
            row(f"features[{i}] {type(layer).__name__}", h.data)
        h = h.reshape(h.shape[0], -1)
        for i, layer in enumerate(t.model.classifier):
            h = layer(h)
            row(f"classifier[{i}] {type(layer).__name__}", h.data)
    return "\n".join(lines)


@contextlib.contextmanager
def smallest_object(fraction):
    """SyntheticShapes draws objects from ``fraction`` of the side up, meanwhile."""
    import minivgg.data.synthetic as synthetic

    original, synthetic._MIN_SIZE = synthetic._MIN_SIZE, fraction
    try:
        yield
    finally:
        synthetic._MIN_SIZE = original


def probe(v, seed, workdir):
    """Train variant ``v`` from seed ``seed``: (val errors per epoch, last loss, seconds)."""
    with smallest_object(v["min_object"]):  # images are drawn while training
        return _probe(v, seed, workdir)


def _probe(v, seed, workdir):
    import torch
    import torch.nn as nn

    from minivgg.train import Recipe, Trainer

    torch.set_num_threads(1)
    out = os.path.join(workdir, f"s{seed}")
    shutil.rmtree(out, ignore_errors=True)  # the mean RGB depends on the variant's data
    r = Recipe(out=out, overwrite=True, progress=False, seed=seed, threads=1, val_size=500,
               batch_size=v["batch_size"], train_size=v["train_size"])
    t = Trainer(r, log=lambda *a: None)
    t._setup()  # minivgg's data sets, mean RGB and loaders; its model is not used
    torch.manual_seed(seed)
    net, weighted = build(torch, nn, v)
    if v["lsuv"]:
        t.train_loader.set_epoch(10 ** 6)
        lsuv(torch, net, weighted, torch.from_numpy(np.asarray(next(iter(t.train_loader))[0])))
    if v["adam"]:
        opt = torch.optim.Adam(net.parameters(), lr=v["lr"])
    else:
        opt = torch.optim.SGD(net.parameters(), lr=v["lr"], momentum=v["momentum"],
                              weight_decay=v["weight_decay"])
    start, losses, curve = time.time(), [], []
    for epoch in range(v["epochs"]):
        t.train_loader.set_epoch(epoch)
        net.train()
        for x, y in t.train_loader:
            loss = nn.functional.cross_entropy(net(torch.from_numpy(np.asarray(x))),
                                               torch.from_numpy(np.asarray(y)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        net.eval()
        wrong = []
        with torch.no_grad():
            for x, y in t.val_loader:
                wrong.append(net(torch.from_numpy(np.asarray(x))).argmax(1).numpy() != np.asarray(y))
        curve.append(round(100 * float(np.concatenate(wrong).mean()), 1))
    return curve, float(np.mean(losses[-50:])), time.time() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="*", help="JSON objects, one per variant (see the docstring)")
    p.add_argument("--similarity", action="store_true",
                   help="print how alike images look to minivgg's default net at init, per layer")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    args = p.parse_args(argv)
    if args.similarity or not args.variants:
        if args.variants:
            p.error("--similarity takes no variants")
        if not args.similarity:
            p.error("give at least one variant, or --similarity")
    if not args.similarity:
        try:
            import torch  # noqa: F401
        except ImportError:
            p.error("the probe's networks are PyTorch replicas: pip install torch")
    variants = []
    for text in args.variants:
        try:
            given = json.loads(text)
        except ValueError as e:
            p.error(f"variant {text!r} is not JSON: {e}")
        unknown = set(given) - set(DEFAULTS)
        if not isinstance(given, dict) or unknown:
            p.error(f"variant {text!r}: unknown keys {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
        variants.append((given, dict(DEFAULTS, **given)))
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    with tempfile.TemporaryDirectory() as workdir:
        if args.similarity:
            for seed in seeds:
                print(similarity(seed, workdir), flush=True)
            return 0
        for given, v in variants:
            for seed in seeds:
                curve, loss, secs = probe(v, seed, workdir)
                errs = " / ".join(f"{e:.1f}%" for e in curve)
                print(f"{json.dumps(given)} seed {seed}: val top-1 err {errs} | "
                      f"loss {loss:.3f} | {secs:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
