#!/usr/bin/env python
"""Print training runs' metrics.jsonl as Markdown tables (for docs/benchmarks.md).

    python scripts/summarise_run.py runs/train                  # one run, epoch by epoch
    python scripts/summarise_run.py runs/s0 runs/s1 runs/s2     # runs side by side, with
                                                                # the mean and the spread

With several runs (seeds, thread counts), one row per run gives the
validation top-1 error after epoch 1, the last epoch's top-1/top-5, the best
epoch's top-1 and the training time; the last lines give the mean, the
smallest and the largest value of each column.
"""
import argparse
import json
import os
import sys


def read_run(run_dir):
    """The rows of RUN_DIR/metrics.jsonl (one per epoch) and the run's recipe."""
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"summarise_run.py: cannot read {path}: {e.strerror} "
                 f"(expected the --out folder of a training run)")
    except ValueError as e:
        sys.exit(f"summarise_run.py: {path} is not JSON lines: {e}")
    if not rows:
        sys.exit(f"summarise_run.py: {path} has no epochs yet")
    recipe = {}
    if os.path.exists(os.path.join(run_dir, "recipe.json")):
        with open(os.path.join(run_dir, "recipe.json"), encoding="utf-8") as f:
            recipe = json.load(f)
    return rows, recipe


def epoch_table(rows):
    lines = ["| epoch | train loss | train top-1 err | val top-1 err | val top-5 err | lr | "
             "time (s) | img/s |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['epoch']} | {r['train_loss']:.3f} | {100 * r['train_top1_err']:.1f}% | "
                     f"{100 * r['val_top1_err']:.2f}% | {100 * r['val_top5_err']:.2f}% | "
                     f"{r['lr']:g} | {r['time_s']:.0f} | {r['images_per_s']:.0f} |")
    total = sum(r["time_s"] for r in rows)
    lines.append(f"\nTraining time over {len(rows)} epochs: {total:.0f} s (validation and "
                 f"set-up not included).")
    return "\n".join(lines)


def runs_table(runs):
    """One row per run; then mean, min and max of each figure."""
    cols = ["epoch-1 val top-1", "last val top-1", "last val top-5", "best val top-1",
            "training s"]
    lines = ["| run | seed | threads | epochs | " + " | ".join(cols) + " |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    figures = []
    for name, (rows, recipe) in runs:
        best = min(rows, key=lambda r: r["val_top1_err"])
        f = [100 * rows[0]["val_top1_err"], 100 * rows[-1]["val_top1_err"],
             100 * rows[-1]["val_top5_err"], 100 * best["val_top1_err"],
             sum(r["time_s"] for r in rows)]
        figures.append(f)
        threads = recipe.get("threads", "?")
        lines.append(f"| {name} | {recipe.get('seed', '?')} | {threads or 'auto'} | {len(rows)} | "
                     + " | ".join(fmt(v, i) for i, v in enumerate(f)) + " |")
    for label, agg in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        lines.append(f"| **{label}** | | | | "
                     + " | ".join(fmt(agg([f[i] for f in figures]), i) for i in range(len(cols)))
                     + " |")
    return "\n".join(lines)


def fmt(value, column):
    return f"{value:.0f}" if column == 4 else f"{value:.1f}%"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="--out folders of training runs")
    args = p.parse_args(argv)
    runs = [(os.path.basename(os.path.normpath(d)), read_run(d)) for d in args.runs]
    if len(runs) == 1:
        print(epoch_table(runs[0][1][0]))
    else:
        print(runs_table(runs))


if __name__ == "__main__":
    main()
