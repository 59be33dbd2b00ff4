"""The input pipelines of §3.1 and §3.2 drawn on a real photograph.

    python scripts/make_pipeline_figures.py

writes
  docs/img/train_pipeline.png   scale jittering: S ~ U[256, 512], a random 224x224
                                crop, a horizontal flip, the RGB colour shift, the
                                mean subtracted (the library's own transforms)
  docs/img/multicrop_grid.png   the 5x5 multi-crop grid at Q = 256, 384, 512 (§4.3)
                                and, for comparison, the windows dense evaluation
                                classifies at Q = 384 (one per score-map cell, §3.2)

The photograph is the portrait of Grace Hopper that ships with matplotlib
(matplotlib.cbook.get_sample_data), so nothing is downloaded.
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minivgg.data import (PCAColourShift, RandomCrop, RandomHorizontalFlip,  # noqa: E402
                          RescaleShorter, SubtractMean, ToFloat)
from minivgg.evaluate import crop_positions, rescale  # noqa: E402

IMG = os.path.join(ROOT, "docs", "img")
CROP = 224


def sample_photo():
    import matplotlib.cbook as cbook
    from PIL import Image
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def view_offset(view, base):
    """(y, x) of a crop that is a view into ``base``."""
    off = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return off // base.strides[0], (off % base.strides[0]) // base.strides[1]


def show(ax, img, title):
    ax.imshow(np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def train_pipeline(img, seed, plt):
    from matplotlib.patches import Rectangle
    rng = np.random.default_rng(seed)
    resc = RescaleShorter((256, 512))
    fig, axes = plt.subplots(2, 4, figsize=(13, 7))
    show(axes[0, 0], img, f"original, {img.shape[1]}x{img.shape[0]}")
    # Three draws of S, each with its random crop: the same object at three scales.
    draws = []
    for i, ax in enumerate(axes[0, 1:]):
        s = resc.sample_scale(rng)
        big = RescaleShorter(s)(img)
        crop = RandomCrop(CROP)(big, rng)
        y, x = view_offset(crop, big)
        draws.append((s, big, crop))
        show(ax, big, f"draw {i + 1}: S = {s} -> {big.shape[1]}x{big.shape[0]},\n"
                      f"random {CROP}x{CROP} crop at ({x}, {y})")
        ax.add_patch(Rectangle((x, y), CROP, CROP, fill=False, edgecolor="yellow", linewidth=2))
    s, big, crop = draws[0]
    show(axes[1, 0], crop, f"draw 1: the {CROP}x{CROP} crop (S = {s})")
    flipped = RandomHorizontalFlip(p=1.0)(crop, rng)
    show(axes[1, 1], flipped, "horizontal flip (probability 0.5;\nshown flipped)")
    f = ToFloat()(np.ascontiguousarray(flipped))
    colour = PCAColourShift()
    shift = colour.sample_shift(rng)
    shifted = f + shift.astype(np.float32)
    show(axes[1, 2], 255 * shifted,
         f"RGB colour shift {np.round(255 * shift, 1).tolist()}\n(0-255 units, one per image)")
    mean = img.reshape(-1, 3).mean(0) / 255.0  # this photograph's mean stands in for the set's
    centred = SubtractMean(mean)(shifted.astype(np.float32))
    show(axes[1, 3], 127.5 + 255 * centred,
         f"mean RGB subtracted ({np.round(255 * mean).astype(int).tolist()}),\n"
         "shown around mid-grey: the network input")
    fig.suptitle("§3.1 training input: isotropic rescale to S ~ U[256, 512] (scale jittering), "
                 "random 224x224 crop, flip, colour shift, mean subtraction", fontsize=10)
    fig.tight_layout()
    return fig


def multicrop(img, plt):
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(1, 4, figsize=(15, 5))
    cmap = plt.get_cmap("viridis")
    for ax, q in zip(axes[:3], (256, 384, 512)):
        r = rescale(img, q)
        pos = crop_positions(r.shape[0], r.shape[1], CROP)
        show(ax, r, f"Q = {q} ({r.shape[1]}x{r.shape[0]}): 5x5 grid of {CROP}x{CROP} crops,\n"
                    f"each also flipped: 50 crops")
        for i, (y, x) in enumerate(pos):
            example = i in (0, 12, 24)  # two corners and the centre, drawn thick
            ax.add_patch(Rectangle((x, y), CROP, CROP, fill=False, edgecolor=cmap(i / 24),
                                   linewidth=2.5 if example else 0.4,
                                   alpha=1.0 if example else 0.6))
            ax.plot(x + CROP / 2, y + CROP / 2, "o", color=cmap(i / 24), ms=4)
        ax.set_xlim(-0.5, img.shape[1] - 0.5)  # one pixel scale for every panel
        ax.set_ylim(img.shape[0] - 0.5, -0.5)
    q = 384
    r = rescale(img, q)
    oh, ow = r.shape[0] // 32 - CROP // 32 + 1, r.shape[1] // 32 - CROP // 32 + 1
    show(axes[3], r, f"dense at Q = {q}: a {ow}x{oh} class score map,\none cell per "
                     f"{CROP}x{CROP} window, stride 32")
    last = max(oh * ow - 1, 1)
    for i in range(oh):
        for j in range(ow):
            n = i * ow + j
            example = n in (0, last)
            axes[3].add_patch(Rectangle((32 * j, 32 * i), CROP, CROP, fill=False,
                                        edgecolor=cmap(n / last), linewidth=2.5 if example else
                                        0.4, alpha=1.0 if example else 0.6))
            axes[3].plot(32 * j + CROP / 2, 32 * i + CROP / 2, "o", color=cmap(n / last), ms=4)
    axes[3].set_xlim(-0.5, img.shape[1] - 0.5)
    axes[3].set_ylim(img.shape[0] - 0.5, -0.5)
    fig.suptitle("§4.3 multi-crop evaluation: 150 crops over three scales (every crop centre "
                 "marked; corner and centre crops outlined), against the windows of dense "
                 "evaluation; all panels at one pixel scale", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=3, help="seed of the augmentation draws")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    img = sample_photo()
    os.makedirs(IMG, exist_ok=True)
    for name, fig in (("train_pipeline.png", train_pipeline(img, args.seed, plt)),
                      ("multicrop_grid.png", multicrop(img, plt))):
        path = os.path.join(IMG, name)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
