"""What a trained VGG has learnt: its first-layer filters and the feature maps
of one image through the five blocks.

    python scripts/make_model_figures.py --checkpoint runs/train/last.npz

writes docs/img/first_layer_filters.png and docs/img/feature_maps.png. The
figures in the docs come from the checkpoint of the default example run,
``python examples/train_vgg.py --cfg A`` (VGG-A, width 1/4, 32x32 crops of
SyntheticShapes); any minivgg checkpoint works.
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minivgg import Tensor, no_grad  # noqa: E402
from minivgg.data import SyntheticShapes  # noqa: E402
from minivgg.evaluate import EvalNet, normalise, rescale  # noqa: E402
from minivgg.nn import Conv2d, MaxPool2d  # noqa: E402

IMG = os.path.join(ROOT, "docs", "img")


def filters_figure(net, plt):
    w = net.model.paper_layer_names()["conv1_1"].weight.data  # (K, 3, 3, 3)
    k = w.shape[0]
    cols = min(k, 16)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.9 + 0.6), squeeze=False)
    lim = np.abs(w).max()
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.axis("off")
            continue
        f = w[i].transpose(1, 2, 0)  # 3x3 RGB
        ax.imshow(0.5 + 0.5 * f / lim, interpolation="nearest")
        ax.set_title(str(i), fontsize=6)
    fig.suptitle(f"conv1_1 of VGG-{net.cfg}: {k} filters of 3x3x3 (RGB weights, grey = 0, "
                 "common scale)", fontsize=8)
    fig.tight_layout()
    return fig


def feature_maps_figure(net, img, label_name, plt, per_block=6):
    m = net.model
    x = normalise(rescale(img, net.crop), net.mean_rgb, net.pixel_scale)
    h = Tensor(x[None])
    outs = []  # (name, map) after the last ReLU of each block
    block, i, last, prev = 1, 0, None, None
    with no_grad():
        m.eval()
        for mod in m.features:
            if isinstance(mod, MaxPool2d):
                outs.append((last, np.asarray(prev)))
                block, i = block + 1, 0
            h = mod(h)
            if isinstance(mod, Conv2d):
                i += 1
                last = f"conv{block}_{i}"
            prev = h.data[0]
    fig, axes = plt.subplots(len(outs), per_block + 1, figsize=(1.6 * (per_block + 1),
                                                                1.7 * len(outs)))
    for r, (name, fmap) in enumerate(outs):
        ax = axes[r, 0]
        if r == 0:
            ax.imshow(img)
        else:
            ax.set_frame_on(False)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(f"input ({label_name})", fontsize=7)
        ax.set_ylabel(f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}x{fmap.shape[2]}", fontsize=7)
        strongest = np.argsort(fmap.reshape(fmap.shape[0], -1).mean(1))[::-1][:per_block]
        for c, ch in enumerate(strongest):
            a = axes[r, c + 1]
            a.imshow(fmap[ch], cmap="magma", interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(f"channel {ch}", fontsize=6)
    fig.suptitle(f"VGG-{net.cfg}: the {per_block} most active channels at the end of each "
                 f"block (after the last ReLU, before its max-pool)", fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a minivgg checkpoint (file or run dir)")
    p.add_argument("--index", type=int, default=5, help="SyntheticShapes validation image")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    net = EvalNet.from_checkpoint(args.checkpoint)
    ds = SyntheticShapes(args.index + 1, image_size=max(32, net.crop), seed=0, split="val")
    img, label = ds[args.index]
    os.makedirs(IMG, exist_ok=True)
    for name, fig in (("first_layer_filters.png", filters_figure(net, plt)),
                      ("feature_maps.png", feature_maps_figure(net, img, ds.classes[label], plt))):
        path = os.path.join(IMG, name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
