"""Draw Table 1's six configurations side by side (docs/img/configurations.png).

One column per configuration, one box per layer, blocks aligned across
columns as in the paper's table; the layers a column adds to the one Table 1
compares it with have a thick outline. Below each column: weight layers,
parameters and forward multiply-adds at 224 (from minivgg.summary).

    python scripts/make_config_diagram.py [--out docs/img/configurations.png]
"""
import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minivgg.models.vgg import CONFIGS, DEPTHS, LRN, M  # noqa: E402
from minivgg.summary import layer_rows, totals  # noqa: E402

PREVIOUS = {"A-LRN": "A", "B": "A", "C": "B", "D": "C", "E": "D"}
COLOURS = {64: "#c6dbef", 128: "#9ecae1", 256: "#6baed6", 512: "#3182bd"}


def blocks(cfg):
    out, cur = [], []
    for item in CONFIGS[cfg]:
        if item == M:
            out.append(cur)
            cur = []
        else:
            cur.append(item)
    return out


def label_and_colour(item):
    if item == LRN:
        return "LRN", "#bcbddc"
    c, k = item if isinstance(item, tuple) else (item, 3)
    return f"conv{k}-{c}", ("#fdae6b" if k == 1 else COLOURS[c])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "configurations.png"))
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cfgs = list(CONFIGS)
    bl = {c: blocks(c) for c in cfgs}
    heights = [max(len(bl[c][b]) for c in cfgs) for b in range(5)]
    n_rows = 1 + sum(h + 1 for h in heights) + 4
    fig, ax = plt.subplots(figsize=(12, 0.36 * n_rows + 1.6))
    col_w, box_w, box_h = 1.0, 0.86, 0.8

    def box(x, y, text, colour, thick=False, text_colour="black"):
        ax.add_patch(Rectangle((x - box_w / 2, -y - box_h / 2), box_w, box_h, facecolor=colour,
                               edgecolor="black", linewidth=2.2 if thick else 0.6))
        ax.text(x, -y, text, ha="center", va="center", fontsize=8, color=text_colour,
                fontweight="bold" if thick else "normal")

    for ci, cfg in enumerate(cfgs):
        x = ci * col_w
        ax.text(x, 1.1, f"{cfg}\n{DEPTHS[cfg]} weight layers", ha="center", va="center",
                fontsize=9, fontweight="bold")
        y = 0
        box(x, y, "input 224x224 RGB", "white")
        for b in range(5):
            items = bl[cfg][b]
            prev = bl[PREVIOUS[cfg]][b] if cfg in PREVIOUS else None
            for r in range(heights[b]):
                y += 1
                if r < len(items):
                    text, colour = label_and_colour(items[r])
                    new = prev is not None and (r >= len(prev) or prev[r] != items[r])
                    box(x, y, text, colour, thick=new)
            y += 1
            box(x, y, "maxpool", "#d9d9d9")
        for f in ("FC-4096", "FC-4096", "FC-1000"):
            y += 1
            box(x, y, f, "#a1d99b")
        y += 1
        box(x, y, "soft-max", "#fc9272")
        t = totals(layer_rows(cfg))
        ax.text(x, -(y + 1.2), f"{t['params'] / 1e6:.1f} M params\n"
                f"{t['mult_adds'] / 1e9:.1f} G mult-adds", ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.6, (len(cfgs) - 1) * col_w + 0.6)
    ax.set_ylim(-(n_rows + 1.0), 1.7)
    ax.axis("off")
    ax.set_title("Table 1 of the paper: VGG configurations A-E (thick outline: layers added "
                 "to the column compared;\nconv3 blues by width, conv1 orange; every conv and "
                 "the first two FC layers are followed by a ReLU)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
