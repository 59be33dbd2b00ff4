"""Figures of the reproduction page (the paper's Tables 3-6, §4), drawn from the
results JSON that examples/reproduce_paper.py writes.

    python scripts/make_reproduction_figures.py RESULTS_JSON [--img-dir DIR]

writes, into DIR (default: beside the JSON):

- reproduction_table3.png ... reproduction_table6.png: one per table, each row's
  top-1 error, the paper's figure beside minivgg's mean over seeds with its 95%
  t-interval and the seeds as dots;
- reproduction_comparisons.png: every comparison's mean paired difference with
  its interval, the paper's difference marked, coloured by verdict;
- reproduction_curves.png: the learning curves of every cell (validation top-1
  error per epoch, one line per seed, rate drops dotted).

The numbers come from the JSON's "summary" (computed by reproduce_paper.py);
this script only draws them.
"""
import argparse
import json
import math
import os
import sys

VERDICT_COLOURS = {"reproduces": "#1a9641", "contradicts": "#d7191c",
                   "inconclusive": "#969696", "not measurable": "#fdae61"}
TITLES = {"3": "Table 3: one test scale", "4": "Table 4: one against three test scales",
          "5": "Table 5: dense, multi-crop, both", "6": "Table 6: fusion of two nets"}


def _finite(v):
    return v is not None and math.isfinite(v)


def _table_figure(plt, rows, title, meta, out):
    n = len(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 1.6 + 0.36 * n), sharey=True,
                               gridspec_kw={"width_ratios": [1, 1.5]})
    y = list(range(n))[::-1]
    for yi, r in zip(y, rows):
        p = r["paper_top1"]
        if p is None:
            a.text(20.2, yi, "not reported", va="center", fontsize=7)
        else:
            a.barh(yi, p, color="#9ecae1")
            a.text(p, yi, f" {p:.1f}", va="center", fontsize=7)
        m, lo, hi = r["mean_top1"], r["low_top1"], r["high_top1"]
        colour = "#fdae6b" if r["learnt"] else "#d9d9d9"
        if _finite(lo):
            b.barh(yi, m, xerr=[[m - lo], [hi - m]], color=colour, capsize=3)
        else:
            b.barh(yi, m, color=colour)
        seeds = sorted(r["top1"].items(), key=lambda kv: int(kv[0]))
        b.plot([v for _, v in seeds], [yi] * len(seeds), ".", color="#3182bd", ms=5)
        b.text(min(max(hi if _finite(hi) else m, m), 92), yi, f" {m:.1f}", va="center",
               fontsize=7)
    a.set_xlim(20, 31)
    a.set_title("the paper: ImageNet, 1000 classes\ntop-1 val error (%)", fontsize=9)
    b.axvline(90, color="grey", ls=":", lw=1)
    learnt = meta.get("learnt_below")
    if learnt:
        b.axvline(learnt, color="#fdae61", ls="--", lw=1)
    b.set_xlim(0, 100)
    b.set_title(f"minivgg: {meta['data_name']}, 10 classes\ntop-1 error (%), mean and 95% "
                f"interval over seeds, dots: seeds", fontsize=9)
    a.set_yticks(y)
    a.set_yticklabels([r["label"] for r in rows], fontsize=8)
    fig.suptitle(f"{title} (dotted: chance; dashed: the 'left chance' line; grey bars: a "
                 f"net at chance)", fontsize=9)
    h = fig.get_figheight()
    fig.subplots_adjust(left=0.3, right=0.97, wspace=0.05, top=1 - 1.0 / h, bottom=0.5 / h)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _comparison_figure(plt, comps, scratch, out):
    n = len(comps)
    fig, ax = plt.subplots(figsize=(12, 1.4 + 0.3 * n))
    y = list(range(n))[::-1]
    for yi, c in zip(y, comps):
        colour = VERDICT_COLOURS[c["verdict"]]
        m, lo, hi = c["mean"], c["low"], c["high"]
        if _finite(lo):
            ax.errorbar(m, yi, xerr=[[m - lo], [hi - m]], fmt="o", color=colour, capsize=3)
        else:
            ax.plot(m, yi, "o", color=colour)
        ax.plot(c["paper_diff"], yi, "kx", ms=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c['claim']} [{c['verdict']}]" for c in comps], fontsize=7)
    ax.set_xlabel("difference of top-1 errors, first net minus second (points); "
                  "x: the paper's", fontsize=8)
    note = "; ".join(f"{s['net']} left chance in {s['left_chance']}/{s['seeds']} seeds "
                     f"[{s['verdict']}]" for s in scratch)
    ax.set_title("Every comparison: mean paired difference over seeds and its 95% interval"
                 + (f"\n{note}" if note else ""), fontsize=9)
    # The claims are long: give them the left half instead of asking tight_layout.
    fig.subplots_adjust(left=0.5, right=0.98, top=1 - 0.7 / fig.get_figheight(),
                        bottom=0.6 / fig.get_figheight())
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _curves_figure(plt, histories, runs, sources, out):
    seeds = sorted(histories, key=int)
    names = [n for n in runs if any(n in histories[s] for s in seeds)]
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), sharey=True, squeeze=False)
    from matplotlib.ticker import MaxNLocator
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names):
        for i, s in enumerate(seeds):
            rows_ = histories[s].get(name)
            if not rows_:
                continue
            # A net started from another goes on from that one's last epoch, drawn
            # faintly before it (D-jit: A, then D).
            shift, chain, src = 0, [], sources.get(name)
            while src:
                chain.insert(0, src)
                src = sources.get(src)
            for k, src in enumerate(chain):
                prev = histories[s].get(src, [])
                ax.plot([r["epoch"] + shift for r in prev],
                        [100 * r["val_top1_err"] for r in prev], "-", color="#bdbdbd",
                        lw=0.8, label="where it starts from" if i == 0 and k == 0 else None)
                shift += len(prev)
            ep = [r["epoch"] + shift for r in rows_]
            c = colours[i % len(colours)]
            ax.plot(ep, [100 * r["val_top1_err"] for r in rows_], "o-", ms=2.5, color=c,
                    label=f"seed {s}")
            ax.plot(ep, [100 * r["train_top1_err"] for r in rows_], "--", lw=0.8, color=c)
            for a, b in zip(rows_, rows_[1:]):
                if b["lr"] < a["lr"]:
                    ax.axvline(a["epoch"] + shift + 0.5, color=c, ls=":", lw=1)
        ax.axhline(90, color="grey", ls=":", lw=0.8)
        ax.set_title(name + (f" (after {sources[name]})" if sources.get(name) else ""),
                     fontsize=8)
        ax.set_ylim(0, 100)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("top-1 error (%)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.suptitle("Learning curves of every cell: validation top-1 error (solid), training "
                 "top-1 error (dashed); dotted: the rate divided by 10; grey: the net it "
                 "starts from", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def make_figures(results_json, img_dir=None):
    """Draw every figure; returns {"3": path, ..., "comparisons": path, "curves": path}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(results_json, encoding="utf-8") as f:
        data = json.load(f)
    if "summary" not in data:
        raise ValueError(f"{results_json} has no summary (written by an older "
                         f"reproduce_paper.py): rewrite it with `python "
                         f"examples/reproduce_paper.py --from-results {results_json}`")
    img_dir = img_dir or os.path.dirname(os.path.abspath(results_json))
    os.makedirs(img_dir, exist_ok=True)
    summary, meta = data["summary"], dict(data["meta"])
    meta["learnt_below"] = summary.get("learnt_below")
    paths = {}
    for t, rows in summary["tables"].items():
        paths[t] = _table_figure(plt, rows, TITLES[t], meta,
                                 os.path.join(img_dir, f"reproduction_table{t}.png"))
    if summary["comparisons"]:
        paths["comparisons"] = _comparison_figure(
            plt, summary["comparisons"], summary["scratch"],
            os.path.join(img_dir, "reproduction_comparisons.png"))
    paths["curves"] = _curves_figure(plt, data["histories"], meta["profile"]["runs"],
                                     data["sources"],
                                     os.path.join(img_dir, "reproduction_curves.png"))
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="the results JSON of examples/reproduce_paper.py")
    p.add_argument("--img-dir", default=None, help="where to write (default: beside the JSON)")
    args = p.parse_args(argv)
    try:
        paths = make_figures(args.results, args.img_dir)
    except ValueError as e:
        p.error(str(e))
    for path in paths.values():
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
