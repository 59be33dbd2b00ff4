"""Draw the class score map of the dense network (§3.2) for docs/testing_protocols.md.

    python scripts/make_score_map_figure.py                        # trains a tiny model (~2 min)
    python scripts/make_score_map_figure.py --checkpoint run/last.npz --scene-class star

Without a checkpoint a small VGG-A (crop 32, width 1/4) is trained on
SyntheticShapes at a fixed training scale S = 36 (random 32x32 crops and
flips) for --train-steps steps, in PyTorch when it is installed (same
layers and torchvision names; the weights are then loaded into the minivgg
model) or with minivgg's own SGD (--trainer minivgg, slower per step). Every
evaluation in the figure runs in minivgg. The test "scene" is a
mosaic of rows x cols validation images (each 36x36, i.e. at the training
scale) in which several tiles hold the target class. The dense network runs
once over the whole mosaic rescaled to Q = rows * 32, so each 36px tile
becomes 32px and falls exactly under one score-map cell (one cell per
32-pixel step of the input); the figure shows the mosaic, the soft-max
posterior of the target class at each cell, the arg-max class per cell, and
for comparison the same 32x32 windows classified one by one as crops.
Written to docs/img/score_map.png.
"""
import argparse
import os
import sys

# One BLAS thread: on a small shared machine several threads mostly wait on each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minivgg  # noqa: E402
from minivgg import evaluate as ev  # noqa: E402
from minivgg.data import SyntheticShapes, compute_mean_rgb  # noqa: E402
from minivgg.functional import softmax_cross_entropy  # noqa: E402
from minivgg.functional.loss import softmax  # noqa: E402
from minivgg.models import vgg  # noqa: E402
from minivgg.optim import SGD  # noqa: E402

S, CROP = 36, 32


def _training_arrays(seed):
    train = SyntheticShapes(6000, image_size=S, seed=seed, split="train")
    mean = compute_mean_rgb(train, max_images=500, progress=False)
    images = np.stack([train[i][0] for i in range(len(train))])  # (n, S, S, 3) uint8
    images = (images.astype(np.float32) / 255 - mean.astype(np.float32)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), train.labels, mean, train.classes


def _batches(images, labels, rng):
    """Endless (64, 3, CROP, CROP) float32 batches: random crops (one offset per
    batch, cheap) of the S x S images and random horizontal flips (§3.1)."""
    while True:
        idx = rng.integers(0, len(labels), 64)
        y0, x0 = rng.integers(0, S - CROP + 1, 2)
        x = images[idx, :, y0:y0 + CROP, x0:x0 + CROP].copy()
        flip = rng.random(64) < 0.5
        x[flip] = x[flip][:, :, :, ::-1]
        yield np.ascontiguousarray(x), labels[idx]


def tiny_vgg(seed):
    return vgg("A", num_classes=10, input_size=CROP, fc_width=128, width_mult=0.25,
               init="kaiming", seed=seed, dropout=0.3)


def train_tiny(steps, seed, trainer="torch", log=print):
    """Train VGG-A (crop 32, width 1/4, FC 128) on SyntheticShapes at S=36 for
    ``steps`` SGD steps of 64 crops; return an EvalNet (a minivgg model in every case).

    trainer="torch" builds the same network in PyTorch (torchvision layer
    names), trains it there (about 8x faster per step than minivgg on this
    2-core CPU) and loads its state dict into the minivgg VGG unchanged;
    trainer="minivgg" trains with minivgg's own SGD.
    """
    rng = np.random.default_rng(seed)
    images, labels, mean, classes = _training_arrays(seed)
    model = tiny_vgg(seed)
    batches = _batches(images, labels, rng)
    t0, step, losses = time.perf_counter(), 0, []

    def report():
        if step % 200 == 0:
            log(f"step {step}: loss {np.mean(losses[-200:]):.3f} "
                f"({time.perf_counter() - t0:.0f} s)")

    if trainer == "torch":
        import torch
        torch.manual_seed(seed)  # dropout masks
        net = _torch_twin(model)
        opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        net.train()
        while step < steps:
            x, y = next(batches)
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)),
                                                     torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            report()
        model.load_state_dict({k: v.detach().numpy() for k, v in net.state_dict().items()})
    else:
        opt = SGD(list(model.parameters()), lr=0.02, momentum=0.9, weight_decay=5e-4)
        model.train()
        while step < steps:
            x, y = next(batches)
            loss = softmax_cross_entropy(model(minivgg.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.data))
            step += 1
            report()
    log(f"trained {step} steps in {time.perf_counter() - t0:.0f} s with {trainer}")
    model.eval()
    return ev.EvalNet(model, mean, train_scale=S, classes=classes)


def _torch_twin(model):
    """A PyTorch module with the minivgg model's layers, names and weights."""
    import torch
    import torch.nn as tnn
    from minivgg.nn import Conv2d, Dropout, Linear, MaxPool2d, ReLU

    def convert(mod):
        if isinstance(mod, Conv2d):
            m = tnn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size,
                           padding=mod.padding)
        elif isinstance(mod, Linear):
            m = tnn.Linear(mod.weight.shape[1], mod.weight.shape[0])
        elif isinstance(mod, ReLU):
            return tnn.ReLU()
        elif isinstance(mod, MaxPool2d):
            return tnn.MaxPool2d(2, 2)
        elif isinstance(mod, Dropout):
            return tnn.Dropout(mod.p)
        else:
            raise ValueError(f"no PyTorch twin for {type(mod).__name__}")
        m.weight.data = torch.from_numpy(mod.weight.data.copy())
        m.bias.data = torch.from_numpy(mod.bias.data.copy())
        return m

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*[convert(m) for m in model.features])
            self.classifier = tnn.Sequential(*[convert(m) for m in model.classifier])

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    return Twin()


def make_scene(target, rows, cols, seed, n_target):
    """A mosaic of validation images: (rows*S, cols*S, 3) uint8, tile labels (rows, cols)."""
    val = SyntheticShapes(400, image_size=S, seed=seed, split="val")
    rng = np.random.default_rng(seed + 1)
    want = np.array([c for c in range(10) if c != target])
    tiles = rng.choice(want, rows * cols)
    tiles[rng.choice(rows * cols, n_target, replace=False)] = target
    by_class = {c: [i for i in range(len(val)) if val.labels[i] == c] for c in range(10)}
    scene = np.zeros((rows * S, cols * S, 3), np.uint8)
    for k, c in enumerate(tiles):
        i = by_class[c].pop()
        r, q = divmod(k, cols)
        scene[r * S:(r + 1) * S, q * S:(q + 1) * S] = val[i][0]
    return scene, tiles.reshape(rows, cols)


def val_accuracy(net, n=300, seed=0):
    val = SyntheticShapes(n, image_size=S, seed=seed, split="val", cache=True)
    rep = ev.evaluate(net, val, "single", [S], progress=False)
    return 1 - rep.rows[0].top1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--train-steps", type=int, default=2500,
                   help="SGD steps of 64 crops (2500: about 2 min with PyTorch on 2 cores)")
    p.add_argument("--trainer", choices=("torch", "minivgg"), default=None,
                   help="who trains the tiny model (default: torch if installed)")
    p.add_argument("--scene-class", default=None, help="target class (default: the class the "
                   "model recognises best on the validation images)")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=6)
    p.add_argument("--targets", type=int, default=6, help="tiles of the target class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-checkpoint", default=None,
                   help="save the trained tiny model here (reuse with --checkpoint)")
    p.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "docs", "img", "score_map.png"))
    a = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if a.checkpoint:
        net = ev.EvalNet.from_checkpoint(a.checkpoint)
    else:
        trainer = a.trainer
        if trainer is None:
            try:
                import torch
                torch.set_num_threads(1)
                trainer = "torch"
            except ImportError:
                trainer = "minivgg"
        net = train_tiny(a.train_steps, a.seed, trainer)
        if a.save_checkpoint:
            from minivgg.checkpoint import save_checkpoint
            save_checkpoint(a.save_checkpoint, net.model,
                            {"classes": net.classes, "mean_rgb": net.mean_rgb.tolist(),
                             "train": {"scale": S, "crop": CROP},
                             "data": {"name": "synthetic", "image_size": S, "seed": a.seed}})
            print(f"saved {a.save_checkpoint}")
    if net.crop != CROP:
        sys.exit(f"this figure expects a crop-{CROP} model, got crop {net.crop}")
    acc = val_accuracy(net)
    print(f"single-crop validation accuracy: {100 * acc:.1f}%")

    val = SyntheticShapes(300, image_size=S, seed=a.seed, split="val", cache=True)
    rep = ev.evaluate(net, val, "single", [S], progress=False)
    per_class = rep.per_class_accuracy()
    target = (net.classes.index(a.scene_class) if a.scene_class
              else int(np.nanargmax(per_class)))
    scene, tiles = make_scene(target, a.rows, a.cols, a.seed + 7, a.targets)
    # Q = rows * crop rescales every 36px tile to 32px, so each score-map
    # cell (one per 32px step) sees exactly one tile through its 32x32 window.
    Q = a.rows * CROP
    shown = ev.rescale(scene, Q)
    smap = ev.dense_score_map(net.model, scene, Q, net.mean_rgb)  # (K, OH, OW)
    post = softmax(smap[None], axis=1)[0]                         # per-cell posteriors
    whole = ev.dense_scores(net.model, scene, Q, net.mean_rgb)
    oh, ow = post.shape[1:]
    name = net.classes[target]
    print(f"scene {scene.shape[1]}x{scene.shape[0]} -> Q={Q}: {shown.shape[1]}x{shown.shape[0]}, "
          f"score map {oh}x{ow}, target {name!r} (val acc {100 * per_class[target]:.0f}%)")

    # The same 32x32 windows classified one by one, as crops: the conv layers
    # then see zero padding at the window border instead of the neighbours.
    x = ev.normalise(shown, net.mean_rgb)
    windows = np.stack([x[:, r * CROP:(r + 1) * CROP, q * CROP:(q + 1) * CROP]
                        for r in range(oh) for q in range(ow)])
    with minivgg.no_grad():
        logits = net.model(minivgg.Tensor(windows)).data
    crop_post = softmax(logits.astype(np.float64), axis=1).T.reshape(-1, oh, ow)
    arg, crop_arg = post.argmax(axis=0), crop_post.argmax(axis=0)
    truth = tiles[:oh, :ow]
    print(f"cells right: dense {np.mean(arg == truth):.2f}, crops {np.mean(crop_arg == truth):.2f}")

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.6))
    ax = axes[0, 0]
    ax.imshow(shown)
    for r in range(a.rows):
        for q in range(a.cols):
            if tiles[r, q] == target:
                # Inset so that boxes of neighbouring tiles stay apart.
                ax.add_patch(plt.Rectangle((q * CROP + 1, r * CROP + 1), CROP - 3, CROP - 3,
                                           fill=False, ec="yellow", lw=2))
    ax.set_xticks(np.arange(0, shown.shape[1] + 1, CROP))
    ax.set_yticks(np.arange(0, shown.shape[0] + 1, CROP))
    ax.set_title(f"(a) test image rescaled to Q = {Q} ({shown.shape[1]}x{shown.shape[0]}); "
                 f"yellow: the {name!r} tiles", fontsize=10)

    def prob_map(ax, p, title):
        im = ax.imshow(p, cmap="viridis", vmin=0, vmax=1, extent=(-0.5, ow - 0.5, oh - 0.5, -0.5))
        for r in range(oh):
            for q in range(ow):
                ax.text(q, r, f"{p[r, q]:.2f}", ha="center", va="center",
                        color="black" if p[r, q] > 0.6 else "white", fontsize=10)
        ax.set_xticks(range(ow))
        ax.set_yticks(range(oh))
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)

    prob_map(axes[0, 1], post[target],
             f"(b) dense network, one pass: class score map {oh}x{ow},\n"
             f"soft-max P({name!r}) per cell")
    prob_map(axes[1, 1], crop_post[target],
             f"(d) the same 32x32 windows as separate crops (zero padding at\n"
             f"their borders, no neighbours): P({name!r}); cells right "
             f"{np.mean(crop_arg == truth):.0%}")
    ax = axes[1, 0]
    ax.imshow(arg == target, cmap="Greys", vmin=0, vmax=2.5,
              extent=(-0.5, ow - 0.5, oh - 0.5, -0.5))
    for r in range(oh):
        for q in range(ow):
            ax.text(q, r, net.classes[arg[r, q]], ha="center", va="center", fontsize=9,
                    fontweight="bold" if arg[r, q] == target else "normal",
                    color="black" if arg[r, q] == truth[r, q] else "firebrick")
    ax.set_xticks(range(ow))
    ax.set_yticks(range(oh))
    top = np.argsort(-whole)[:3]
    ax.set_title(f"(c) dense arg-max class per cell (red: wrong), cells right "
                 f"{np.mean(arg == truth):.0%};\nwhole image (map averaged, + flip): "
                 + ", ".join(f"{net.classes[c]} {whole[c]:.2f}" for c in top), fontsize=10)
    fig.suptitle(f"§3.2 dense evaluation: VGG-A with its FC layers as convolutions (crop {CROP}, "
                 f"trained at S = {net.train_scale_label},\nsingle-crop val accuracy "
                 f"{100 * acc:.0f}%) run once over a {a.rows}x{a.cols} mosaic of "
                 f"validation images", fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    fig.savefig(a.output, dpi=80)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
