#!/usr/bin/env python
"""Print a training run's metrics.jsonl as a Markdown table (for docs/benchmarks.md).

    python scripts/summarise_run.py runs/train
"""
import json
import os
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: summarise_run.py RUN_DIR")
    path = os.path.join(argv[0], "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        sys.exit(f"{path} has no epochs yet")
    print("| epoch | train loss | train top-1 err | val top-1 err | val top-5 err | lr | "
          "time (s) | img/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['epoch']} | {r['train_loss']:.3f} | {100 * r['train_top1_err']:.1f}% | "
              f"{100 * r['val_top1_err']:.2f}% | {100 * r['val_top5_err']:.2f}% | {r['lr']:g} | "
              f"{r['time_s']:.0f} | {r['images_per_s']:.0f} |")
    total = sum(r["time_s"] for r in rows)
    print(f"\nTraining time over {len(rows)} epochs: {total:.0f} s (validation and set-up "
          f"not included).")


if __name__ == "__main__":
    main()
