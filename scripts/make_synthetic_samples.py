"""Save a contact sheet of SyntheticShapes (docs/img/synthetic_samples.png).

One row per class, ``--per-class`` samples per row, each image upscaled with
nearest-neighbour so the 32x32 pixels stay visible.

    python scripts/make_synthetic_samples.py [--size 32] [--per-class 12] [--zoom 3]
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minivgg.data import SyntheticShapes  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--per-class", type=int, default=12)
    p.add_argument("--zoom", type=int, default=3, help="nearest-neighbour upscale factor")
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/img/synthetic_samples.png")
    a = p.parse_args(argv)

    ds = SyntheticShapes(10 * a.per_class, image_size=a.size, seed=a.seed, split=a.split)
    cell = a.size * a.zoom
    pad, label_w = 2, 70
    sheet = Image.new("RGB", (label_w + a.per_class * (cell + pad), 10 * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == c)[: a.per_class]
        y = c * (cell + pad)
        draw.text((4, y + cell // 2 - 5), name, fill="black")
        for k, i in enumerate(idx):
            img, _ = ds[int(i)]
            tile = Image.fromarray(img).resize((cell, cell), Image.NEAREST)
            sheet.paste(tile, (label_w + k * (cell + pad), y))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    sheet.save(a.out)
    print(f"wrote {a.out} ({sheet.size[0]}x{sheet.size[1]})")


if __name__ == "__main__":
    main()
