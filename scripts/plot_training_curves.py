"""Training curves of one or more runs, learning-rate drops marked.

    python scripts/plot_training_curves.py RUN_DIR [RUN_DIR ...] --out curves.png [--labels A,D]

Each RUN_DIR is an ``--out`` directory of examples/train_vgg.py (or of
examples/reproduce_paper.py); its metrics.jsonl has one line per epoch. The
left panel shows the training loss, the right one the validation top-1 error;
a dotted vertical line marks each epoch after which the plateau rule divided
the learning rate by 10 (§3.1), labelled with the new rate.
"""
import argparse
import json
import os
import sys


def read_metrics(run_dir):
    """The list of per-epoch dicts of ``run_dir/metrics.jsonl``."""
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def lr_drops(rows):
    """[(epoch, new lr)]: the epochs whose end lowered the rate.

    metrics.jsonl records the rate each epoch trained with, so a drop decided
    at the end of epoch e shows as a lower rate in epoch e + 1.
    """
    return [(a["epoch"], b["lr"]) for a, b in zip(rows, rows[1:]) if b["lr"] < a["lr"]]


def plot_runs(runs, out, title=None):
    """runs: [(label, rows)]; writes ``out`` (PNG) and returns its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs):
        c = colours[i % len(colours)]
        ep = [r["epoch"] for r in rows]
        a.plot(ep, [r["train_loss"] for r in rows], "o-", color=c, ms=3, label=label)
        b.plot(ep, [100 * r["val_top1_err"] for r in rows], "o-", color=c, ms=3, label=label)
        for e, lr in lr_drops(rows):
            for ax in (a, b):
                ax.axvline(e + 0.5, color=c, ls=":", lw=1.2)
            b.text(e + 0.55, 100 * rows[0]["val_top1_err"], f"lr {lr:g}", color=c, fontsize=7,
                   rotation=90, va="top")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel("validation top-1 error (%)")
    for ax in (a, b):
        ax.legend(fontsize=7)
    fig.suptitle(title or "training curves (dotted: the learning rate divided by 10 after "
                          "that epoch)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories holding metrics.jsonl")
    p.add_argument("--labels", default="", help="comma-separated labels (default: dir names)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [os.path.basename(os.path.normpath(r))
                                                         for r in args.runs]
    if len(labels) != len(args.runs):
        p.error(f"{len(labels)} labels for {len(args.runs)} runs")
    runs = [(lab, read_metrics(r)) for lab, r in zip(labels, args.runs)]
    print(f"wrote {plot_runs(runs, args.out, args.title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
