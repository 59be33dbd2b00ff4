"""Figures of docs/reproduction.md, drawn from the results JSON that
examples/reproduce_paper.py writes.

    python scripts/make_reproduction_figures.py [docs/reproduction_results.json] [--img-dir docs/img]

writes reproduction_errors.png (each comparison's top-1 error, minivgg's mean
and spread over seeds beside the paper's figure) and reproduction_curves.png
(training curves of the first seed, learning-rate drops marked, drawn by
scripts/plot_training_curves.py).
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")

#: (label, result key) in the order of the document's tables.
ROWS = [
    ("A", "A|single"), ("A-LRN", "A-LRN|single"), ("B from A", "B|single"),
    ("C from A", "C|single"), ("D from A", "D|single"), ("E from A", "E|single"),
    ("B Glorot", "B-glorot|single"), ("D Glorot", "D-glorot|single"),
    ("E Glorot", "E-glorot|single"),
    ("D jittered S", "D-jit|single"), ("E jittered S", "E-jit|single"),
    ("D, 3 test Q", "D|multi"), ("D jit., 3 test Q", "D-jit|multi"),
    ("D jit., dense", "D-jit|dense"), ("D jit., multi-crop", "D-jit|multicrop"),
    ("D jit., both", "D-jit|dense+multicrop"),
    ("two nets fused, both", "fusion|dense+multicrop"),
]

CURVES = [("A (random init)", "A"), ("D from A", "D"), ("D Glorot", "D-glorot"),
          ("D from A, jittered S", "D-jit")]
FROM_A = {"B", "C", "D", "E", "D-jit", "E-jit"}


def _plot_training_curves():
    spec = importlib.util.spec_from_file_location(
        "plot_training_curves", os.path.join(HERE, "plot_training_curves.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_figures(results_json, img_dir):
    """Draw both figures; returns {"bars": path, "curves": path}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(results_json, encoding="utf-8") as f:
        data = json.load(f)
    results, paper = data["results"], data["paper"]
    os.makedirs(img_dir, exist_ok=True)

    rows = [(lab, key) for lab, key in ROWS if key in results[0]]
    labels = [lab for lab, _ in rows]
    y = np.arange(len(rows))[::-1]
    ours = np.array([[r[key]["top1"] for r in results] for _, key in rows])
    mean = ours.mean(1)
    spread = ours.std(1, ddof=1) if ours.shape[1] > 1 else np.zeros(len(rows))
    theirs = np.array([paper[key][0] if key in paper else np.nan for _, key in rows])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 6), sharey=True,
                               gridspec_kw={"width_ratios": [1, 1.4]})
    a.barh(y, np.nan_to_num(theirs, nan=0.0), color="#9ecae1")
    for yi, v in zip(y, theirs):
        a.text(v if v == v else 20.2, yi, f" {v:.1f}" if v == v else "not reported",
               va="center", fontsize=7)
    a.set_xlim(20, 31)
    a.set_title("the paper: ImageNet, 1000 classes\ntop-1 val error (%)", fontsize=9)
    b.barh(y, mean, xerr=spread, color="#fdae6b", capsize=3)
    for yi, m_, s_ in zip(y, mean, spread):
        b.text(m_ + s_, yi, f" {m_:.1f}", va="center", fontsize=7)
    b.axvline(90, color="grey", ls=":", lw=1)
    b.set_title(f"minivgg: {data['meta']['data']} data, 10 classes\ntop-1 error (%), mean "
                f"± sd of {len(results)} seeds", fontsize=9)
    b.set_xlim(0, 100)
    a.set_yticks(y)
    a.set_yticklabels(labels, fontsize=8)
    fig.suptitle("Each comparison of Tables 3-6 at toy scale beside the paper's figure "
                 "(dotted: chance)", fontsize=10)
    fig.tight_layout()
    bars = os.path.join(img_dir, "reproduction_errors.png")
    fig.savefig(bars, dpi=100)
    plt.close(fig)

    first = sorted(data["histories"], key=int)[0]
    hist = data["histories"][first]
    runs = []
    for lab, name in CURVES:
        rows = hist.get(name)
        if not rows:
            continue
        # Nets started from A continue where A stopped: shift their epochs by A's.
        shift = len(hist["A"]) if name in FROM_A else 0
        runs.append((lab, [dict(r, epoch=r["epoch"] + shift) for r in rows]))
    curves = _plot_training_curves().plot_runs(
        runs, os.path.join(img_dir, "reproduction_curves.png"),
        title=f"seed {first}: validation top-1 error (single crop) and training loss per "
              f"epoch; dotted: learning rate divided by 10 after that epoch")
    return {"bars": bars, "curves": curves}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?",
                   default=os.path.join(ROOT, "docs", "reproduction_results.json"))
    p.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"))
    args = p.parse_args(argv)
    for path in make_figures(args.results, args.img_dir).values():
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
