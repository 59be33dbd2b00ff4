#!/usr/bin/env python
"""Reproduce the comparisons of the paper's Tables 3-6 (§4.1-§4.4) with small nets.

    python examples/reproduce_paper.py --profile cifar --data imagefolder:DIR   # CIFAR-10, ~2.5 h
    python examples/reproduce_paper.py --profile cifar --data cifar10:DIR       # the binary archive
    python examples/reproduce_paper.py --quick                                  # generated shapes
    python examples/reproduce_paper.py --profile cifar --data ... --report      # the page only

Every network is trained with minivgg's own Trainer (the §3.1 recipe of
examples/train_vgg.py) on 32x32 crops, for ``--seeds`` seeds (3 by default),
and evaluated with minivgg.evaluate's protocols (§3.2, §4). The comparisons:

  LRN                A against A-LRN (Table 3)
  depth              A, B, D, E at a fixed S; B-E started from A's first four conv and
                     three FC layers (§3.1), and D also from a random initialisation alone
  1x1 against 3x3    C against B and D
  training scale     D and E trained at a fixed S against S jittered in [S_min, S_max]
  test scale         one Q against three Q (Table 4)
  dense / multi-crop dense, 5x5 multi-crop with flips, and both averaged (Table 5)
  fusion             the jittered D and E, posteriors averaged, against the better one (Table 6)

The paper's ImageNet sizes scaled by 32/224: crop 32 (224), fixed S = 36 (256),
S in [36, 72] ([256, 512]), Q = {32, 36, 40} around S = 36 (S - 32, S, S + 32),
Q = {36, 54, 72} for the jittered nets ({256, 384, 512}).

Each comparison is the mean over seeds of the paired difference of top-1 errors
(the two nets of a seed share its training images and are tested on the same
images) with a 95% t-interval; its verdict is "reproduces" or "contradicts" when
the interval lies on one side of zero (the paper's side or the other),
"inconclusive" when it spans zero, and "not measurable" when a net of the
comparison has not left chance (top-1 error not below the profile's
``learnt_below``, 50% by default; chance is 90% on 10 classes) in some seed.

Every cell (network x seed) is its own folder under ``--out``/PROFILE/seedN/NAME
(the Trainer's checkpoints and metrics, the evaluation's posteriors in eval.npz,
and cell.json once the cell is finished). Started again, the command skips the
finished cells and continues an interrupted one from its last epoch. The page
(``--doc``, default OUT/PROFILE/reproduction.md), its figures and the results JSON
are written at the end from every finished cell; ``--report`` writes them without
training anything, ``--from-results JSON`` from a results JSON alone.
"""
import argparse
import contextlib
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import sys
import time
import warnings

# Tiny nets multiply small matrices: on a busy 2-core machine one BLAS thread is
# about twice as fast as two that wait on each other (docs/benchmarks.md).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

from minivgg.checkpoint import load_checkpoint  # noqa: E402
from minivgg.data.base import Dataset, Subset, stratified_subset  # noqa: E402
from minivgg.evaluate import EvalNet, evaluate, fuse_posteriors, topk_error  # noqa: E402
from minivgg.threads import set_threads  # noqa: E402
from minivgg.train import Recipe, Trainer  # noqa: E402
from minivgg.train import trainer as train_mod  # noqa: E402  (the Trainer reads its data here)

CROP = 32
FIXED_S = "36"
JITTER_S = "36:72"
Q_FIXED = [32, 36, 40]
Q_JITTER = [36, 54, 72]
Q_SINGLE = {FIXED_S: 36, JITTER_S: 54}
CHANCE = 90.0  # top-1 error (%) of a guess among 10 classes

#: name -> (configuration, training scale, init, started from, budget)
RUNS = {
    "A": ("A", FIXED_S, "kaiming", None, "base"),
    "A-LRN": ("A-LRN", FIXED_S, "kaiming", None, "base"),
    "B": ("B", FIXED_S, "kaiming", "A", "deep"),
    "C": ("C", FIXED_S, "kaiming", "A", "deep"),
    "D": ("D", FIXED_S, "kaiming", "A", "deep"),
    "E": ("E", FIXED_S, "kaiming", "A", "deep"),
    "B-glorot": ("B", FIXED_S, "glorot", None, "scratch"),
    "D-glorot": ("D", FIXED_S, "glorot", None, "scratch"),
    "E-glorot": ("E", FIXED_S, "glorot", None, "scratch"),
    "D-he": ("D", FIXED_S, "kaiming", None, "scratch"),
    "D-jit": ("D", JITTER_S, "kaiming", "A", "deep"),
    "E-jit": ("E", JITTER_S, "kaiming", "A", "deep"),
}
#: The nets trained without A's layers (the paper's post-submission note).
SCRATCH = ("D-he", "D-glorot", "B-glorot", "E-glorot")


def run_info(name, prof):
    """(configuration, training scale, init, started from, budget) of net ``name``
    under ``prof``: with ``jit_from="same"`` the jittered nets are fine-tuned from the
    fixed-scale net of their own configuration (§3.1: "multi-scale models were trained
    by fine-tuning all layers of a single-scale model with the same configuration"),
    with the "tune" budget, instead of starting from A."""
    cfg, scale, init, source, budget = RUNS[name]
    if name.endswith("-jit") and prof.get("jit_from") == "same":
        return cfg, scale, init, cfg, "tune"
    return cfg, scale, init, source, budget

#: Training budgets. "base": nets trained from random weights (A, A-LRN); "deep": nets
#: started from A; "scratch": deep nets from a random initialisation alone; "tune": the
#: jittered nets fine-tuned from their fixed-scale net (``jit_from="same"``; else they
#: start from A with the "deep" budget). Epochs of ``train_size`` images; ``*_drop``: the
#: epoch after which the rate is divided by 10 once (0: never; the plateau rule of §3.1
#: still applies with ``*_patience``); ``*_lr``: that budget's rate (default ``lr``).
#: ``runs``: the networks trained, in order; ``fusion``: the two nets whose posteriors
#: are averaged (Table 6); ``learnt_below``: the top-1 error (%) under which a net has
#: left chance, the condition of every verdict. In the quick profile the patience is as
#: long as the run, so the plateau rule never fires: a drop while a net still sits at
#: chance (the first epochs of A on the shapes) stalls it for good (docs/training.md).
ALL_RUNS = ["A", "A-LRN", "B", "C", "D", "E", "B-glorot", "D-glorot", "E-glorot", "D-jit",
            "E-jit"]
QUICK_RUNS = ["A", "A-LRN", "B", "C", "D", "E", "D-glorot", "D-jit"]
CIFAR_RUNS = ["A", "A-LRN", "B", "C", "D", "E", "D-he", "D-jit", "E-jit"]
PROFILES = {
    "quick": dict(width_mult=0.125, fc_width=128, dropout=0.0, train_size=6400, val_size=400,
                  eval_images=250, multicrop_images=100, base_epochs=11, deep_epochs=3,
                  scratch_epochs=3, base_patience=11, deep_patience=3, scratch_patience=3,
                  base_drop=0, deep_drop=0, scratch_drop=0, batch_size=64, lr=0.02,
                  runs=QUICK_RUNS, fusion=("D-jit", "E"), learnt_below=50.0),
    "full": dict(width_mult=0.25, fc_width=128, dropout=0.3, train_size=12000, val_size=1000,
                 eval_images=1000, multicrop_images=500, base_epochs=16, deep_epochs=8,
                 scratch_epochs=8, base_patience=3, deep_patience=2, scratch_patience=2,
                 base_drop=0, deep_drop=0, scratch_drop=0, batch_size=64, lr=0.02,
                 runs=ALL_RUNS, fusion=("D-jit", "E-jit"), learnt_below=50.0),
    # Real images (CIFAR-10 at 32x32, or any 10-class ImageFolder), sized from pilot
    # runs (PILOTS below, the page's "Budget") to fit about 2.5 hours on a quiet 2-core
    # CPU. val_size images held out of the training folder drive the schedule; the
    # evaluation images come from the test folder, the same ones for every seed.
    "cifar": dict(width_mult=0.25, fc_width=128, dropout=0.0, train_size=20000, val_size=1000,
                  eval_images=3000, multicrop_images=500, base_epochs=10, base_drop=8,
                  deep_epochs=10, deep_drop=8, scratch_epochs=10, scratch_drop=8,
                  tune_epochs=4, tune_drop=0, tune_lr=0.001, base_patience=99,
                  deep_patience=99, scratch_patience=99, tune_patience=99, batch_size=64,
                  lr=0.01, runs=CIFAR_RUNS, fusion=("D-jit", "E-jit"), jit_from="same",
                  learnt_below=50.0, real_data=True),
    # For the test suite: every step of the pipeline in seconds, nothing learnt.
    "tiny": dict(width_mult=0.0625, fc_width=8, dropout=0.0, train_size=16, val_size=8,
                 eval_images=4, multicrop_images=2, base_epochs=2, deep_epochs=1,
                 scratch_epochs=1, base_patience=0, deep_patience=0, scratch_patience=0,
                 base_drop=0, deep_drop=0, scratch_drop=0, batch_size=8, lr=0.01,
                 runs=QUICK_RUNS, fusion=("D-jit", "E"), learnt_below=50.0),
}

#: The paper's figures (top-1, top-5 val error, %), transcribed from Tables 3-6
#: (docs/paper_results.md): single-scale dense (Table 3), multi-scale dense (Table 4),
#: Table 5 (S in [256, 512], Q = {256, 384, 512}) and Table 6 (D and E fused).
PAPER = {
    ("A", "single"): (29.6, 10.4), ("A-LRN", "single"): (29.7, 10.5),
    ("B", "single"): (28.7, 9.9), ("C", "single"): (28.1, 9.4),
    ("D", "single"): (27.0, 8.8), ("E", "single"): (27.3, 9.0),
    ("D-jit", "single"): (25.6, 8.1), ("E-jit", "single"): (25.5, 8.0),
    ("B", "multi"): (28.2, 9.6), ("C", "multi"): (27.7, 9.2),
    ("D", "multi"): (26.6, 8.6), ("E", "multi"): (26.9, 8.7),
    ("D-jit", "multi"): (24.8, 7.5), ("E-jit", "multi"): (24.8, 7.5),
    ("D-jit", "dense"): (24.8, 7.5), ("D-jit", "multicrop"): (24.6, 7.5),
    ("D-jit", "dense+multicrop"): (24.4, 7.2),
    ("E-jit", "dense"): (24.8, 7.5), ("E-jit", "multicrop"): (24.6, 7.4),
    ("E-jit", "dense+multicrop"): (24.4, 7.1),
    ("fusion", "dense"): (24.0, 7.1), ("fusion", "multicrop"): (23.9, 7.2),
    ("fusion", "dense+multicrop"): (23.7, 6.8),
}

#: Seconds per forward multiply-add, a prior for the ETA before this session has
#: timed any work of its own: VGG-A x0.25 at 32x32 trained
#: on 20,000 CIFAR-10 images per epoch in 18.5 s on the project's 2-core machine, one
#: BLAS thread (forward, backward ~ 3 forward passes).
PRIOR_SECONDS_PER_MAC = 18.5 / (9.912e6 * 3 * 20000)


# ---------------------------------------------------------------------------
# Statistics: a paired difference per seed, its mean and 95% t-interval
# ---------------------------------------------------------------------------

def t_cdf(x, df):
    """P(T <= x) of Student's t with ``df`` degrees of freedom.

    Through the regularised incomplete beta function: for x >= 0,
    P(T <= x) = 1 - I_{df/(df+x^2)}(df/2, 1/2) / 2.
    """
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    return 1.0 - 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))


def _betainc(a, b, x):
    """I_x(a, b), the regularised incomplete beta function, by its continued
    fraction (Lentz's method), on the side where it converges fast."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def t_quantile(p, df):
    """The x with P(T <= x) = p, Student's t with ``df`` degrees of freedom (bisection)."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_interval(values, level=0.95):
    """(mean, low, high): the mean of ``values`` and its two-sided t-interval,
    mean -+ t_{(1+level)/2, n-1} * sd / sqrt(n) with sd the sample standard
    deviation (n - 1 in the denominator). Fewer than two values: no interval (nan)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = t_quantile(0.5 + level / 2.0, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return m, m - half, m + half


def verdict(low, high, paper_diff, measurable=True):
    """The verdict on one comparison, from its interval [low, high] of the
    difference (here) and the sign of the paper's difference.

    "not measurable": a net of the comparison has not left chance in some seed;
    "inconclusive": no interval (one seed) or it spans 0; "reproduces": it lies
    entirely on the paper's side of 0; "contradicts": entirely on the other side.
    """
    if not measurable:
        return "not measurable"
    if paper_diff == 0:
        raise ValueError("a comparison needs a direction: the paper's difference is 0")
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0.0 <= high:
        return "inconclusive"
    return "reproduces" if (high < 0.0) == (paper_diff < 0.0) else "contradicts"


# ---------------------------------------------------------------------------
# The comparisons and tables
# ---------------------------------------------------------------------------

#: (id, table, the paper's finding, x key, y key): the difference is top-1(x) - top-1(y)
#: per seed; y "better-of" is the better of the two fused nets in each seed.
COMPARISONS = [
    ("lrn", 3, "LRN does not improve A (A-LRN is no better than A)",
     ("A-LRN", "single"), ("A", "single")),
    ("depth-B", 3, "Depth helps: B (13 weight layers) beats A (11)", ("B", "single"),
     ("A", "single")),
    ("depth-D", 3, "Depth helps: D (16 weight layers) beats B (13)", ("D", "single"),
     ("B", "single")),
    ("depth-E", 3, "Depth saturates: E (19 weight layers) is no better than D (16)",
     ("E", "single"), ("D", "single")),
    ("1x1", 3, "Extra non-linearity helps: C (1x1 conv layers added to B) beats B",
     ("C", "single"), ("B", "single")),
    ("3x3", 3, "Spatial context helps: D (3x3 where C has 1x1) beats C", ("D", "single"),
     ("C", "single")),
    ("jitter-D", 3, "Scale jittering in training helps D (one test scale)",
     ("D-jit", "single"), ("D", "single")),
    ("jitter-E", 3, "Scale jittering in training helps E (one test scale)",
     ("E-jit", "single"), ("E", "single")),
    ("multi-D", 4, "Three test scales beat one: D, fixed S", ("D", "multi"), ("D", "single")),
    ("multi-E", 4, "Three test scales beat one: E, fixed S", ("E", "multi"), ("E", "single")),
    ("multi-D-jit", 4, "Three test scales beat one: D, jittered S", ("D-jit", "multi"),
     ("D-jit", "single")),
    ("multi-E-jit", 4, "Three test scales beat one: E, jittered S", ("E-jit", "multi"),
     ("E-jit", "single")),
    ("crops-D", 5, "Multi-crop beats dense: D, jittered S", ("D-jit", "multicrop"),
     ("D-jit", "dense")),
    ("both-dense-D", 5, "Dense + multi-crop beats dense: D, jittered S",
     ("D-jit", "dense+multicrop"), ("D-jit", "dense")),
    ("both-crops-D", 5, "Dense + multi-crop beats multi-crop: D, jittered S",
     ("D-jit", "dense+multicrop"), ("D-jit", "multicrop")),
    ("crops-E", 5, "Multi-crop beats dense: E, jittered S", ("E-jit", "multicrop"),
     ("E-jit", "dense")),
    ("both-dense-E", 5, "Dense + multi-crop beats dense: E, jittered S",
     ("E-jit", "dense+multicrop"), ("E-jit", "dense")),
    ("both-crops-E", 5, "Dense + multi-crop beats multi-crop: E, jittered S",
     ("E-jit", "dense+multicrop"), ("E-jit", "multicrop")),
    ("fusion-dense", 6, "Fusing two nets beats the better one (dense)", ("fusion", "dense"),
     "better-of"),
    ("fusion-both", 6, "Fusing two nets beats the better one (dense + multi-crop)",
     ("fusion", "dense+multicrop"), "better-of"),
]

#: The nets trained from a random initialisation alone: the paper reports that they
#: train (no error figure); measured as "left chance in every seed", and beside D
#: started from A.
SCRATCH_CLAIM = "Deep nets train without A's layers, from a random initialisation alone"


def paper_diff(x, y):
    """The paper's top-1 difference x - y, or None where it gives no figure."""
    px = PAPER.get(x)
    if y == "better-of":  # the paper fused D and E trained with S in [256, 512]
        ys = [PAPER.get((net, x[1])) for net in ("D-jit", "E-jit")]
        py = min(ys, key=lambda p: p[0]) if all(ys) else None
    else:
        py = PAPER.get(y)
    return None if px is None or py is None else round(px[0] - py[0], 2)


def nets_of(key, fusion):
    return list(fusion) if key[0] == "fusion" else [key[0]]


def scratch_nets(prof):
    return [n for n in prof["runs"] if n in SCRATCH]


def summarise(results, seeds, prof):
    """Everything the page and the figures show, computed once from the per-seed
    results ({seed: {(net, label): {"top1", "top5", ...}}}).

    Returns {"learnt": {net: {seed: bool}}, "comparisons": [...], "scratch": [...],
    "tables": {table: [row, ...]}} where each comparison and row carries its
    per-seed values, mean and 95% interval.
    """
    learnt_below = prof.get("learnt_below", 50.0)
    fusion = tuple(prof["fusion"])
    learnt = {}
    for s in seeds:
        for (net, label), v in results.get(s, {}).items():
            if label == "single" and net != "fusion":
                learnt.setdefault(net, {})[s] = v["top1"] < learnt_below

    def net_ok(nets, paired):
        bad = [f"{n} seed {s}" for n in nets for s in paired if not learnt.get(n, {}).get(s)]
        return not bad, bad

    def value(s, key):
        if key == "better-of":
            return None
        r = results.get(s, {}).get(key)
        return None if r is None else r["top1"]

    comps = []
    for cid, table, claim, x, y in COMPARISONS:
        pd_ = paper_diff(x, y)
        per_seed = {}
        better = []
        for s in seeds:
            vx = value(s, x)
            if y == "better-of":
                ys = [value(s, (n, x[1])) for n in fusion]
                if vx is None or any(v is None for v in ys):
                    continue
                vy = min(ys)
                better.append(fusion[int(np.argmin(ys))])
            else:
                vy = value(s, y)
                if vx is None or vy is None:
                    continue
            per_seed[s] = vx - vy
        if not per_seed or pd_ is None:
            continue
        paired = sorted(per_seed)
        nets = sorted(set(nets_of(x, fusion) + ([] if y == "better-of" else nets_of(y, fusion))))
        ok, bad = net_ok(nets, paired)
        m, lo, hi = mean_interval([per_seed[s] for s in paired])
        comps.append({"id": cid, "table": table, "claim": claim, "x": "|".join(x),
                      "y": y if y == "better-of" else "|".join(y), "paper_diff": pd_,
                      "diffs": {str(s): per_seed[s] for s in paired}, "mean": m, "low": lo,
                      "high": hi, "n": len(paired), "verdict": verdict(lo, hi, pd_, ok),
                      "not_learnt": bad, "better_net": better})
    scratch = []
    for net in scratch_nets(prof):
        got = {s: results[s][(net, "single")]["top1"] for s in seeds
               if (net, "single") in results.get(s, {})}
        if not got:
            continue
        left = [s for s in got if got[s] < learnt_below]
        cfg = run_info(net, prof)[0]  # the same configuration, started from A
        paired = [s for s in got if (cfg, "single") in results.get(s, {})]
        # Whether the net trains says something only where the same net started
        # from A did leave chance.
        ok, _ = net_ok([cfg], list(got))
        word = ("not measurable" if not ok else
                "reproduces" if len(left) == len(got) and len(got) > 1 else
                "contradicts" if not left and len(got) > 1 else "inconclusive")
        diff = mean_interval([got[s] - results[s][(cfg, "single")]["top1"] for s in paired])
        scratch.append({"net": net, "cfg": cfg, "claim": SCRATCH_CLAIM,
                        "errors": {str(s): got[s] for s in got},
                        "left_chance": len(left), "seeds": len(got), "verdict": word,
                        "vs_from_A": {"mean": diff[0], "low": diff[1], "high": diff[2],
                                      "n": len(paired)}})
    tables = {}
    for table, rows in table_rows(prof).items():
        out = []
        for text, key in rows:
            vals = {s: results[s][key] for s in seeds if key in results.get(s, {})}
            if not vals:
                continue
            t1 = mean_interval([v["top1"] for v in vals.values()])
            t5 = mean_interval([v["top5"] for v in vals.values()])
            p = PAPER.get(key)
            out.append({"label": text, "key": "|".join(key),
                        "paper_top1": p[0] if p else None, "paper_top5": p[1] if p else None,
                        "top1": {str(s): v["top1"] for s, v in vals.items()},
                        "top5": {str(s): v["top5"] for s, v in vals.items()},
                        "mean_top1": t1[0], "low_top1": t1[1], "high_top1": t1[2],
                        "mean_top5": t5[0], "low_top5": t5[1], "high_top5": t5[2],
                        "learnt": all(learnt.get(n, {}).get(s, False)
                                      for n in nets_of(key, fusion) for s in vals)})
        if out:
            tables[str(table)] = out
    return {"learnt": {n: {str(s): b for s, b in v.items()} for n, v in learnt.items()},
            "learnt_below": learnt_below, "comparisons": comps, "scratch": scratch,
            "tables": tables}


def jit_label(name):
    return name.replace("-jit", f", S in [{JITTER_S.replace(':', ', ')}]")


def table_rows(prof):
    """{table number: [(row text, result key)]} in the order of the page."""
    runs = prof["runs"]
    a, b = prof["fusion"]
    t3 = [("A, random init", ("A", "single")), ("A-LRN, random init", ("A-LRN", "single"))]
    t3 += [(f"{n}, from A", (n, "single")) for n in ("B", "C", "D", "E")]
    t3 += [(f"{n[0]}, {RUNS[n][2]} init, no A", (n, "single")) for n in SCRATCH if n in runs]
    t3 += [(f"{jit_label(n)}, from {run_info(n, prof)[3]}, Q = {Q_SINGLE[JITTER_S]}",
            (n, "single")) for n in ("D-jit", "E-jit")]
    t4 = []
    for n in ("B", "C", "D", "E", "D-jit", "E-jit"):
        s = RUNS[n][1]
        qs = Q_FIXED if s == FIXED_S else Q_JITTER
        t4 += [(f"{jit_label(n)}: Q = {Q_SINGLE[s]}", (n, "single")),
               (f"{jit_label(n)}: Q = {{{', '.join(map(str, qs))}}}", (n, "multi"))]
    t5 = []
    for n in dict.fromkeys(("D-jit", "E-jit", a, b)):
        s = RUNS[n][1]
        qs = ", ".join(map(str, Q_FIXED if s == FIXED_S else Q_JITTER))
        t5 += [(f"{jit_label(n)}, Q = {{{qs}}}, dense", (n, "dense")),
               (f"{jit_label(n)}, multi-crop (150 crops)", (n, "multicrop")),
               (f"{jit_label(n)}, dense + multi-crop", (n, "dense+multicrop"))]
    t6 = [(f"{jit_label(a)} + {jit_label(b)}, {lab}", ("fusion", key))
          for lab, key in (("dense", "dense"), ("multi-crop", "multicrop"),
                           ("dense + multi-crop", "dense+multicrop"))]
    t6 += [(f"{jit_label(n)} alone, dense + multi-crop", (n, "dense+multicrop")) for n in (a, b)]
    return {3: t3, 4: t4, 5: t5, 6: t6}


# ---------------------------------------------------------------------------
# Data: every cell of one seed trains on the same images; decode them once
# ---------------------------------------------------------------------------

class InMemory(Dataset):
    """Keep every image of ``ds`` after its first read (the data sets here are small)."""

    def __init__(self, ds):
        self.ds, self.classes, self._store = ds, list(ds.classes), {}
        self.labels = np.asarray(ds.labels)

    def __len__(self):
        return len(self.ds)

    def _get(self, i):
        if i not in self._store:
            self._store[i] = self.ds[i]
        return self._store[i]

    def describe(self, i):
        return self.ds.describe(i)


_CACHE = {}


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def whole_sets(data):
    """(training set, test set) of a real data set, whole (read once per process)."""
    return _cached(("whole", data), lambda: _ORIGINAL_MAKE_DATASETS(Recipe(data=data)))


def seed_data(data, prof, seed):
    """(training images, validation images) of one seed: what the Trainer sees.

    Synthetic data: the seed's generated train and val splits. Real data: a
    class-stratified sample of ``train_size`` images of the training folder
    and, held out of the rest of it, ``val_size`` images for the plateau rule
    and the learning curves; both drawn with the seed.
    """
    def make():
        if data == "synthetic":
            r = Recipe(data=data, train_size=prof["train_size"], val_size=prof["val_size"],
                       seed=seed)
            train, val = _ORIGINAL_MAKE_DATASETS(r)
            return InMemory(train), InMemory(val)
        whole, _ = whole_sets(data)
        need = prof["train_size"] + prof["val_size"]
        if need > len(whole):
            raise ValueError(f"--data {data}: the training folder holds {len(whole):,} images; "
                             f"the profile needs {prof['train_size']:,} to train on and "
                             f"{prof['val_size']:,} to hold out ({need:,})")
        train = stratified_subset(whole, prof["train_size"], seed)
        rest = Subset(whole, np.setdiff1d(np.arange(len(whole)), train.indices))
        val = stratified_subset(rest, prof["val_size"], seed)
        return InMemory(train), InMemory(val)
    return _cached(("seed", data, prof["train_size"], prof["val_size"], seed), make)


def eval_data(data, prof, seed):
    """(evaluation images, multi-crop images): the one- and three-scale rows are
    measured on the first, the dense / multi-crop / fusion rows on the second.

    Synthetic data: the first images of the seed's val split. Real data:
    class-stratified samples of the test folder, the same for every seed, so
    that every cell is tested on the same images."""
    if data == "synthetic":
        _, val = seed_data(data, prof, seed)
        return (Subset(val, np.arange(min(prof["eval_images"], len(val)))),
                Subset(val, np.arange(min(prof["multicrop_images"], len(val)))))

    def make():
        _, test = whole_sets(data)
        return tuple(InMemory(stratified_subset(test, min(n, len(test)), 0))
                     for n in (prof["eval_images"], prof["multicrop_images"]))
    return _cached(("eval", data, prof["eval_images"], prof["multicrop_images"]), make)


_ORIGINAL_MAKE_DATASETS = train_mod.make_datasets


@contextlib.contextmanager
def trainer_data(train, val):
    """Hand the Trainer these data sets instead of reading them again."""
    train_mod.make_datasets = lambda recipe: (train, val)
    try:
        yield
    finally:
        train_mod.make_datasets = _ORIGINAL_MAKE_DATASETS


# ---------------------------------------------------------------------------
# Cells: one network x one seed, in its own folder
# ---------------------------------------------------------------------------

def evaluation_plan(prof, name=None):
    """[(net, protocol label, protocol, scales, "eval" | "crops")] (of one net)."""
    plan = []
    three = set(prof["fusion"]) | {"D-jit", "E-jit"}
    for net in prof["runs"]:
        if name is not None and net != name:
            continue
        qs = Q_FIXED if RUNS[net][1] == FIXED_S else Q_JITTER
        plan.append((net, "single", "dense", [Q_SINGLE[RUNS[net][1]]], "eval"))
        if net in ("B", "C", "D", "E", "D-jit", "E-jit"):
            plan.append((net, "multi", "dense", qs, "eval"))
        if net in three:
            plan.append((net, "dense", "dense", qs, "crops"))
            plan.append((net, "multicrop", "multicrop", qs, "crops"))
    return plan


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    seed: int

    def __str__(self):
        return f"{self.name} seed {self.seed}"


def cell_dir(out_root, cell):
    return os.path.join(out_root, f"seed{cell.seed}", cell.name)


def cell_spec(cell, prof, data):
    """What a cell's results depend on; a finished cell is reused only when its
    stored spec is this one."""
    cfg, scale, init, source, budget = run_info(cell.name, prof)
    return {"net": cell.name, "seed": cell.seed, "cfg": cfg, "scale": scale, "init": init,
            "from": source, "data": data, "epochs": prof[f"{budget}_epochs"],
            "lr_drop_after": prof.get(f"{budget}_drop", 0),
            "patience": prof[f"{budget}_patience"], "lr": prof.get(f"{budget}_lr", prof["lr"]),
            **{k: prof[k] for k in ("batch_size", "width_mult", "fc_width", "dropout",
                                    "train_size", "val_size", "eval_images",
                                    "multicrop_images")},
            "protocols": [p[1] for p in evaluation_plan(prof, cell.name)]}


def recipe_for(cell, prof, args, out_root):
    cfg, scale, init, source, budget = run_info(cell.name, prof)
    src = Cell(source, cell.seed) if source else None
    return Recipe(
        cfg=cfg, data=args.data, crop=CROP, scale=scale, batch_size=prof["batch_size"],
        lr=prof.get(f"{budget}_lr", prof["lr"]), epochs=prof[f"{budget}_epochs"], init=init,
        init_from=os.path.join(cell_dir(out_root, src), "last.npz") if src else "",
        fc_width=prof["fc_width"], width_mult=prof["width_mult"], dropout=prof["dropout"],
        patience=prof[f"{budget}_patience"], train_size=prof["train_size"],
        val_size=prof["val_size"], seed=cell.seed, out=cell_dir(out_root, cell),
        progress=False, device=args.device, threads=getattr(args, "threads", 1))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write_json(path, obj):
    """Write atomically: a killed process leaves the old file or the new one."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def finished(out_root, cell, spec):
    """The cell.json of a finished cell, or None. A finished cell made with other
    settings is an error: its numbers would be mixed with these."""
    done = read_json(os.path.join(cell_dir(out_root, cell), "cell.json"))
    if done is None:
        return None
    if done.get("spec") != spec:
        old = done.get("spec") or {}
        diff = [f"{k} {old.get(k)!r} there, {v!r} here" for k, v in spec.items()
                if old.get(k) != v]
        raise ValueError(f"{cell_dir(out_root, cell)} holds {cell} made with other settings "
                         f"({'; '.join(diff)}); write this run elsewhere with --out, or "
                         f"delete that folder to make it again")
    return done


class CellTrainer(Trainer):
    """The Trainer, telling the caller about each finished epoch."""

    def __init__(self, *args, on_epoch=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_epoch = on_epoch

    def _end_epoch(self):
        super()._end_epoch()
        if self.on_epoch is not None:
            self.on_epoch(self.history[-1], self.optimizer.lr)


def train_cell(recipe, drop, on_epoch=None, log=print, trainer_cls=None):
    """Train (or continue) one cell to ``recipe.epochs``; returns its history.

    With ``drop`` (0 < drop < epochs) the rate is divided by 10 after epoch
    ``drop``: the run is trained to that epoch, then continued from its
    checkpoint with the lower rate (the Trainer's manual step of the schedule).
    A checkpoint already in the folder is continued from where it stopped.
    ``trainer_cls``: a CellTrainer subclass to train with (benchmarks time steps)."""
    trainer_cls = trainer_cls or CellTrainer
    last = os.path.join(recipe.out, "last.npz")
    stages = ([(drop, 0.0), (recipe.epochs, recipe.lr * 0.1)] if 0 < drop < recipe.epochs
              else [(recipe.epochs, 0.0)])
    history = []
    for end, lr in stages:
        ck = load_checkpoint(last) if os.path.exists(last) else None
        if ck is not None and ck.meta["epoch"] >= end:
            history = ck.meta["history"]
            continue
        r = dataclasses.replace(recipe, epochs=end)
        if ck is None:
            r.overwrite = True  # files of an epoch that never finished
        elif lr and ck.optimizer_state["lr"] > lr * (1 + 1e-9):
            r.resume_lr = lr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            history = trainer_cls(r, resume=last if ck is not None else None, log=log,
                                  on_epoch=on_epoch).run()
    return history


def evaluate_cell(folder, name, prof, eval_set, crop_set):
    """Evaluate a trained cell with every protocol of its plan; the posteriors go
    to folder/eval.npz (fusion reads them), the errors are returned."""
    net = EvalNet.from_checkpoint(os.path.join(folder, "last.npz"))
    results, arrays = {}, {}
    sets = {"eval": eval_set, "crops": crop_set}
    for _, label, protocol, scales, which in evaluation_plan(prof, name):
        rep = evaluate(net, sets[which], protocol, scales, batch_size=64, progress=False)
        arrays[f"post_{label}"] = rep.posteriors[0]
        arrays[f"labels_{which}"] = rep.labels
        results[label] = {"protocol": protocol, "scales": scales, "images": len(rep.labels)}
        if label == "multicrop":
            # The dense+multicrop protocol is the mean of the two posteriors
            # (tests/test_reproduce_paper.py checks it against evaluate's own).
            arrays["post_dense+multicrop"] = (arrays["post_dense"] + arrays["post_multicrop"]) / 2
            results["dense+multicrop"] = {"protocol": "dense+multicrop", "scales": scales,
                                          "images": len(rep.labels)}
    for label, r in results.items():
        which = "crops" if label in ("dense", "multicrop", "dense+multicrop") else "eval"
        y = arrays[f"labels_{which}"]
        p = arrays[f"post_{label}"]
        r["top1"], r["top5"] = 100 * topk_error(p, y, 1), 100 * topk_error(p, y, 5)
    tmp = os.path.join(folder, "eval.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, os.path.join(folder, "eval.npz"))
    return results


# ---------------------------------------------------------------------------
# Progress and the ETA of the whole run
# ---------------------------------------------------------------------------

def macs_per_image(cfg, prof):
    from minivgg.summary import layer_rows
    return sum(r.mult_adds for r in layer_rows(cfg, CROP, 1, prof["width_mult"],
                                               prof["fc_width"]))


def cell_cost(cell, prof):
    """(training, evaluation) work of a cell in forward multiply-adds: a training
    image costs about three forward passes (forward and backward), a validation
    image one; a dense view at Q costs (Q / 32)^2 crops, each with its flip."""
    cfg, _, _, _, budget = run_info(cell.name, prof)
    macs = macs_per_image(cfg, prof)
    epoch = macs * (3 * prof["train_size"] + prof["val_size"])
    views = 0.0
    for _, _, protocol, scales, which in evaluation_plan(prof, cell.name):
        n = prof["eval_images"] if which == "eval" else prof["multicrop_images"]
        per = (sum(2 * 25 for _ in scales) if protocol == "multicrop" else
               sum(2 * (q / CROP) ** 2 for q in scales))
        views += n * per
    return epoch, macs * views


class Progress:
    """What is done of this session's work, and when the rest should be."""

    def __init__(self, todo, prof, log, total_cells, done_cells):
        self.prof, self.log, self.t0 = prof, log, time.perf_counter()
        self.total_cells, self.done_cells = total_cells, done_cells
        self.remaining = {c: self._units(c) for c in todo}
        self.done_units = 0.0

    def _units(self, cell):
        epoch, ev = cell_cost(cell, self.prof)
        budget = run_info(cell.name, self.prof)[4]
        return {"epoch": epoch, "epochs": self.prof[f"{budget}_epochs"], "eval": ev}

    def skip_epochs(self, cell, n):
        """n epochs of the cell were trained by an earlier session."""
        u = self.remaining[cell]
        u["epochs"] = max(0, u["epochs"] - n)

    def epoch_done(self, cell):
        u = self.remaining[cell]
        if u["epochs"] > 0:
            u["epochs"] -= 1
            self.done_units += u["epoch"]

    def cell_done(self, cell):
        u = self.remaining.pop(cell)
        self.done_units += u["epoch"] * u["epochs"] + u["eval"]
        self.done_cells += 1

    def left_units(self):
        return sum(u["epoch"] * u["epochs"] + u["eval"] for u in self.remaining.values())

    def eta_seconds(self):
        elapsed = time.perf_counter() - self.t0
        rate = (elapsed / self.done_units if self.done_units > 0 and elapsed > 5 else
                PRIOR_SECONDS_PER_MAC)
        return self.left_units() * rate

    def line(self):
        elapsed = time.perf_counter() - self.t0
        eta = self.eta_seconds()
        total = self.done_units + self.left_units()
        at = (datetime.datetime.now() + datetime.timedelta(seconds=eta)).strftime("%H:%M")
        return (f"cells done {self.done_cells}/{self.total_cells}; this session "
                f"{100 * self.done_units / max(total, 1):.0f}% of its work, "
                f"{fmt_time(elapsed)} elapsed, ETA {fmt_time(eta)} (about {at})")


def fmt_time(seconds):
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------------
# Running the cells
# ---------------------------------------------------------------------------

def plan_cells(prof, seeds, selection=None):
    """Every cell of the run in order (seed by seed), or those of ``--cells``
    and the cells they start from."""
    cells = [Cell(n, s) for s in seeds for n in prof["runs"]]
    if not selection:
        return cells, []
    want, added = set(), []
    for item in selection.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, seed = item.partition(":")
        if name not in prof["runs"]:
            raise ValueError(f"--cells: {name!r} is not a network of this profile; choose "
                             f"among {', '.join(prof['runs'])} (NAME or NAME:SEED)")
        if seed and (not seed.isdigit() or int(seed) not in seeds):
            raise ValueError(f"--cells: seed {seed!r} of {item!r} is not one of the run's "
                             f"seeds {seeds}")
        want |= {c for c in cells if c.name == name and (not seed or c.seed == int(seed))}
    grew = True
    while grew:  # D-jit starts from D, which starts from A
        grew = False
        for c in sorted(want, key=lambda c: (c.seed, c.name)):
            source = run_info(c.name, prof)[3]
            if source and Cell(source, c.seed) not in want:
                want.add(Cell(source, c.seed))
                added.append(f"{source} seed {c.seed} (where {c.name} starts from)")
                grew = True
    return [c for c in cells if c in want], sorted(set(added))


def run_cells(cells, prof, args, out_root, log, state=None):
    """Train and evaluate every unfinished cell of ``cells``; returns the number run
    (also counted in ``state["ran"]`` as they finish, for an interrupted session)."""
    state = {} if state is None else state
    state.setdefault("ran", 0)
    specs = {c: cell_spec(c, prof, args.data) for c in cells}
    todo = [c for c in cells if finished(out_root, c, specs[c]) is None]
    progress = Progress(todo, prof, log, len(cells), len(cells) - len(todo))
    log(f"{len(cells)} cells, {len(cells) - len(todo)} finished already, {len(todo)} to run "
        f"in {out_root}")
    for c in todo:
        last = os.path.join(cell_dir(out_root, c), "last.npz")
        if os.path.exists(last):
            progress.skip_epochs(c, load_checkpoint(last).meta["epoch"])
    if todo:
        log(progress.line())
    for i, c in enumerate(todo, 1):
        folder = cell_dir(out_root, c)
        spec = specs[c]
        log(f"[{i}/{len(todo)}] {c}: VGG-{spec['cfg']}, {spec['init']} init"
            f"{', from ' + spec['from'] if spec['from'] else ''}, S = {spec['scale']}, "
            f"{spec['epochs']} epochs -> {folder}")
        train, val = seed_data(args.data, prof, c.seed)
        t0 = time.perf_counter()

        def on_epoch(row, lr, c=c):
            progress.epoch_done(c)
            log(f"    epoch {row['epoch']}/{spec['epochs']}: train loss "
                f"{row['train_loss']:.3f}, val top-1 {100 * row['val_top1_err']:.1f}%, lr "
                f"{row['lr']:g}, {row['time_s']:.0f} s | {progress.line()}")

        with trainer_data(train, val):
            history = train_cell(recipe_for(c, prof, args, out_root), spec["lr_drop_after"],
                                 on_epoch, log=lambda *a: None)
        train_s = time.perf_counter() - t0
        results, eval_s = evaluate_timed(folder, c, prof, args)
        write_json(os.path.join(folder, "cell.json"), {
            "spec": spec, "history": history, "results": results, "train_s": train_s,
            "eval_s": eval_s, "finished": datetime.datetime.now().isoformat(timespec="seconds")})
        progress.cell_done(c)
        count_cell(state)
        log(f"    {c}: {top1_text(results)} top-1 (evaluated in {eval_s:.0f} s) | "
            f"{progress.line()}")
    return len(todo)


def evaluate_timed(folder, cell, prof, args):
    """(results, seconds): evaluate_cell on the cell's evaluation images, on
    ``args.threads`` threads, timed from loading those images."""
    t0 = time.perf_counter()
    set_threads(args.threads)
    eval_set, crop_set = eval_data(args.data, prof, cell.seed)
    results = evaluate_cell(folder, cell.name, prof, eval_set, crop_set)
    return results, time.perf_counter() - t0


def count_cell(state):
    """One more cell done in this session (``state["ran"]``, and its hook)."""
    state["ran"] += 1
    if state.get("on_cell"):
        state["on_cell"]()


def top1_text(results):
    return ", ".join(f"{lab} {r['top1']:.1f}%" for lab, r in results.items())


def re_evaluate_cells(cells, prof, args, out_root, log, state=None):
    """Evaluate every finished cell of ``cells`` again with today's evaluation code,
    keeping its training: cell.json's results, eval_s and eval.npz are replaced.
    Refuses (ValueError) if a cell of the plan has not finished training."""
    state = {} if state is None else state
    state.setdefault("ran", 0)
    specs = {c: cell_spec(c, prof, args.data) for c in cells}
    done = {c: finished(out_root, c, specs[c]) for c in cells}
    missing = [str(c) for c, d in done.items() if d is None]
    if missing:
        raise ValueError(f"--re-evaluate: {len(missing)} cell(s) have not finished "
                         f"({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}); "
                         f"run the command without --re-evaluate first")
    for i, c in enumerate(cells, 1):
        folder = cell_dir(out_root, c)
        results, eval_s = evaluate_timed(folder, c, prof, args)
        write_json(os.path.join(folder, "cell.json"), dict(
            done[c], results=results, eval_s=eval_s,
            re_evaluated=datetime.datetime.now().isoformat(timespec="seconds")))
        count_cell(state)
        log(f"[{i}/{len(cells)}] {c} evaluated again: {top1_text(results)} top-1 ({eval_s:.0f} s)")
    return len(cells)


# ---------------------------------------------------------------------------
# Collecting the finished cells
# ---------------------------------------------------------------------------

def collect(out_root, prof, seeds, data):
    """Every finished cell of the run: {seed: {(net, label): result}} (fusion
    included, from the saved posteriors), {seed: {net: history}}, {cell: times}."""
    results, histories, times = {}, {}, {}
    for s in seeds:
        for name in prof["runs"]:
            c = Cell(name, s)
            done = finished(out_root, c, cell_spec(c, prof, data))
            if done is None:
                continue
            for label, r in done["results"].items():
                results.setdefault(s, {})[(name, label)] = r
            histories.setdefault(s, {})[name] = done["history"]
            times[f"{name}|{s}"] = {"train_s": done["train_s"], "eval_s": done["eval_s"],
                                    "train_epochs_s": sum(h["time_s"] for h in done["history"])}
        a, b = prof["fusion"]
        if all((n, "multicrop") in results.get(s, {}) for n in (a, b)):
            ea, eb = (np.load(os.path.join(cell_dir(out_root, Cell(n, s)), "eval.npz"))
                      for n in (a, b))
            y = ea["labels_crops"]
            if not np.array_equal(y, eb["labels_crops"]):
                raise ValueError(f"seed {s}: {a} and {b} were evaluated on different images")
            for label in ("dense", "multicrop", "dense+multicrop"):
                p = fuse_posteriors([ea[f"post_{label}"], eb[f"post_{label}"]])
                results[s][("fusion", label)] = {
                    "top1": 100 * topk_error(p, y, 1), "top5": 100 * topk_error(p, y, 5),
                    "images": len(y), "protocol": label, "scales": "each net's own"}
    return results, histories, times


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

def fmt_interval(m, lo, hi, signed=False):
    f = "{:+.1f}" if signed else "{:.1f}"
    if not math.isfinite(lo):
        return f.format(m)
    return f"{f.format(m)} [{f.format(lo)}, {f.format(hi)}]"


def fmt_hours(hours):
    return f"{hours:.2f} hours" if hours >= 1 else f"{60 * hours:.1f} minutes"


def shown_path(path):
    """A path as a reader types it: from the current folder when it is below it."""
    r = os.path.relpath(path, os.getcwd())
    return os.path.abspath(path) if r.startswith("..") else r


def per_seed_text(values, signed=False):
    f = "{:+.1f}" if signed else "{:.1f}"
    return ", ".join(f.format(v) for _, v in sorted(values.items(), key=lambda kv: int(kv[0])))


def write_doc(path, dump, fig_paths):
    meta, summary, prof = dump["meta"], dump["summary"], dump["meta"]["profile"]
    seeds = dump["seeds"]
    rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(path)))  # noqa: E731
    real = prof.get("real_data", False) or meta["data"] != "synthetic"
    n_cells = sum(len(h) for h in dump["histories"].values())
    where = f"on {meta['data_name']}" if real else "at toy scale"
    L = [f"# The paper's comparisons, measured {where}\n"]
    L.append(
        f"Measured by `{meta['command']}`"
        f"{' (' + meta['placeholders'] + ')' if meta.get('placeholders') else ''}; "
        f"written on {meta['date']} from the {n_cells} "
        f"finished cells (networks x seeds) of `{meta['out']}`. Training and evaluating them took "
        f"{fmt_hours(meta['wall_h'])} of wall time in {meta['sessions']} session(s), on "
        f"the project's machine ({meta['machine']}; load average {meta['load']}: other jobs "
        f"may have shared the cores). Every minivgg number on this page was measured in "
        f"that run; every paper number is **transcribed from the paper** (Tables 3-6, "
        f"ILSVRC-2012 validation set, [paper_results.md](paper_results.md)). The two measure "
        f"different things and are set side by side for the *direction* of each comparison, "
        f"not its size: the paper's nets have 133-144 M parameters, trained for weeks on "
        f"1.3 M ImageNet images at 224x224 and were tested on 1000 classes; these have "
        f"{meta['params_range']} parameters, trained for minutes on {prof['train_size']:,} "
        f"{meta['data_desc']} at 32x32 and are tested on 10 classes (chance: 90% top-1, "
        f"50% top-5).\n")
    L.append("## Set-up\n")
    if real:
        L.append(f"- Data: `{meta['data']}`. Per seed, a class-stratified sample of "
                 f"{prof['train_size']:,} images of the training folder to train on and "
                 f"{prof['val_size']:,} more of it, held out, for the learning curves and the "
                 f"plateau rule. Tested on class-stratified samples of the test folder, the "
                 f"same for every seed and net: {prof['eval_images']:,} images for the one- "
                 f"and three-scale rows (Tables 3, 4), {prof['multicrop_images']:,} for the "
                 f"dense / multi-crop / fusion rows (Tables 5, 6).")
    else:
        L.append(f"- Data: `{meta['data']}`, {prof['train_size']:,} training and "
                 f"{prof['val_size']} validation images per seed. The plateau rule watches the "
                 f"validation split; the one- and three-scale rows are measured on its first "
                 f"{prof['eval_images']} images, the dense / multi-crop / fusion rows on its "
                 f"first {prof['multicrop_images']}.")
    widths = ", ".join(str(max(1, round(c * prof["width_mult"]))) for c in (64, 128, 256, 512))
    L.append(f"- Nets: Table 1's configurations at width {prof['width_mult']} (conv widths "
             f"{widths}), FC-{prof['fc_width']}, 10 classes, 32x32 crops.")
    L.append(f"- Training: examples/train_vgg.py's Trainer (SGD, momentum 0.9, weight decay "
             f"5e-4, batch {prof['batch_size']}, lr {prof['lr']}, FC bias 0.1, flips and "
             f"colour shift, dropout {prof['dropout']}). " + budget_text(prof))
    L.append(f"- Scales (the paper's times 32/224): fixed S = {FIXED_S} (256), jittered S in "
             f"[{JITTER_S.replace(':', ', ')}] ([256, 512]); test Q = {Q_SINGLE[FIXED_S]} or "
             f"{Q_SINGLE[JITTER_S]} for one scale, {{{', '.join(map(str, Q_FIXED))}}} or "
             f"{{{', '.join(map(str, Q_JITTER))}}} for three. Every row is dense evaluation "
             f"(with the flip) unless it says otherwise, as in the paper's Tables 3 and 4. "
             f"These Q are not 32 + 32k, so the score map cannot cover the whole image: the "
             f"rows and columns it cannot cover are cut equally from both sides "
             f"(minivgg.evaluate.dense_window), so the map stays centred on the image as the "
             f"training crops were (left to the pools, at Q = {Q_SINGLE[JITTER_S]} the map's "
             f"one cell would see the top-left part of the image).")
    L.append(f"- Seeds: {', '.join(map(str, seeds))}; a seed sets the training sample, the "
             f"initialisation, the data order, the augmentation and dropout. A cell is one "
             f"network trained with one seed.")
    L.append(f"- Statistics: each comparison is the difference of two nets' top-1 errors "
             f"within a seed (same training images, same test images), averaged over the "
             f"seeds, with its 95% t-interval (mean ± t(0.975, n-1) · sd / √n, sd over the n "
             f"seeds). Each table cell is the mean over seeds with the same interval. A net "
             f"has *left chance* when its one-scale top-1 error is below "
             f"{summary['learnt_below']:.0f}% (chance: 90%).\n")
    L.append("## Verdicts\n")
    L.append("| the paper's finding | paper: difference (top-1, points) | minivgg: mean difference "
             "[95% interval] | per seed | verdict |")
    L.append("| --- | ---: | ---: | --- | --- |")
    for c in summary["comparisons"]:
        L.append(f"| {c['claim']} | {c['paper_diff']:+.1f} | "
                 f"{fmt_interval(c['mean'], c['low'], c['high'], True)} | "
                 f"{per_seed_text(c['diffs'], True)} | **{c['verdict']}** |")
    for s in summary["scratch"]:
        v = s["vs_from_A"]
        L.append(f"| {s['claim']} ({s['net']}: left chance in {s['left_chance']} of "
                 f"{s['seeds']} seeds) | no figure | {s['net']} minus "
                 f"{s.get('cfg', 'D')} from A: "
                 f"{fmt_interval(v['mean'], v['low'], v['high'], True)} | "
                 f"{per_seed_text(s['errors'])} (error) | **{s['verdict']}** |")
    L.append("")
    L.append("A difference is the first net's top-1 error minus the second's, so a negative "
             "number means the first is better. *Reproduces*: the 95% interval lies on the "
             "side of zero where the paper's difference lies; *contradicts*: on the other "
             "side; *inconclusive*: it spans zero (or a single seed gives no interval); *not "
             "measurable*: a net of the comparison did not leave chance in some seed, so the "
             "comparison says nothing about the finding. The paper's own differences are "
             "often a few tenths of a point, inside the seed-to-seed spread of nets this "
             "small: *inconclusive* is the expected verdict for those. For the nets trained "
             "without A the paper gives no error, only that they train: *reproduces* when "
             "the net left chance in every seed, *contradicts* when in none.")
    stuck = {n: [s for s, ok in by.items() if not ok] for n, by in summary["learnt"].items()}
    stuck = {n: s for n, s in stuck.items() if s}
    if stuck:
        L.append("\nNets that did not leave chance: " + "; ".join(
            f"{n} (seed{'s' if len(s) > 1 else ''} {', '.join(sorted(s, key=int))})"
            for n, s in stuck.items()) + ".")
    L.append("")
    titles = {"3": "Table 3: one test scale (depth, LRN, 1x1 against 3x3, training scale)",
              "4": "Table 4: one against three test scales",
              "5": "Table 5: dense, multi-crop, both (three test scales)",
              "6": "Table 6: fusion of two nets"}
    for t, rows in summary["tables"].items():
        L.append(f"## {titles[t]}\n")
        L.append("| ConvNet | paper top-1 | paper top-5 | minivgg top-1 [95% interval] | "
                 "minivgg top-5 | per seed (top-1) |")
        L.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for r in rows:
            pt1 = "—" if r["paper_top1"] is None else f"{r['paper_top1']:.1f}"
            pt5 = "—" if r["paper_top5"] is None else f"{r['paper_top5']:.1f}"
            flag = "" if r["learnt"] else " (at chance)"
            L.append(f"| {r['label']}{flag} | {pt1} | {pt5} | "
                     f"{fmt_interval(r['mean_top1'], r['low_top1'], r['high_top1'])} | "
                     f"{r['mean_top5']:.1f} | {per_seed_text(r['top1'])} |")
        if t in fig_paths:
            L.append(f"\n![Table {t}]({rel(fig_paths[t])})\n")
        L.append(TABLE_NOTES[t])
    L.append("## Figures\n")
    if "comparisons" in fig_paths:
        L.append(f"![every comparison]({rel(fig_paths['comparisons'])})\n")
        L.append("*Every comparison's mean paired difference with its 95% interval "
                 "(minivgg, bars) beside the paper's difference (crosses); left of zero: the "
                 "first net is better. Drawn, like the table figures, by "
                 f"`python scripts/make_reproduction_figures.py {meta['results_json_from_root']}`"
                 ".*\n")
    L.append(f"![training curves]({rel(fig_paths['curves'])})\n")
    L.append("*The learning curves of every cell: validation top-1 error (single centre "
             "crop, the measure the plateau rule watches) per epoch, one line per seed. The "
             "nets started from A are drawn from A's last epoch on; a dotted line marks a "
             "division of the rate by 10. `scripts/plot_training_curves.py` draws any run "
             "folders this way.*\n")
    L.append("## Time\n")
    L.append("| net | training per cell (s, mean over seeds; validation included) | "
             "evaluation per cell (s) |")
    L.append("| --- | ---: | ---: |")
    for name in prof["runs"]:
        ts = [v for k, v in dump["times"].items() if k.split("|")[0] == name]
        if ts:
            L.append(f"| {name} | {np.mean([t['train_s'] for t in ts]):.0f} | "
                     f"{np.mean([t['eval_s'] for t in ts]):.0f} |")
    L.append(f"\nAll cells: {fmt_hours(meta['wall_h'])} of wall time over "
             f"{meta['sessions']} session(s) (the report itself not included).\n")
    if meta.get("profile_name") == "cifar":
        L.append(PILOTS)
    L.append(SCALE_UP)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L))


TABLE_NOTES = {
    "3": "\nThe paper gives no error for the nets initialised without A; it reports that "
         "they trained. Its jittered rows are tested at Q = 384, the middle of [256, 512] "
         "(here 54).\n",
    "4": "\nThe three scales are S - 32/7, S, S + 32/7 scaled (Q = {32, 36, 40}) for a "
         "fixed S, and S_min, the middle, S_max (Q = {36, 54, 72}) for a jittered one.\n",
    "5": "\nThe paper's figures are for S in [256, 512], Q = {256, 384, 512}.\n",
    "6": "\nThe paper's figures fuse D and E, both trained with S in [256, 512] and tested "
         "at Q = {256, 384, 512}. The comparison takes the better of the two nets in each "
         "seed.\n",
}

#: How the cifar profile's budget was chosen: pilot runs on the CIFAR-10 JPEGs, seed 0.
PILOTS = """## Budget

The cifar profile was sized from pilot runs on the project's 2-core machine (seed 0,
20,000 training images per epoch, lr 0.01, batch 64; validation top-1 error on 1,000
test images, single centre crop, after each epoch):

| pilot | validation top-1 error per epoch (%) |
| --- | --- |
| A, He init | 60.9, 56.1, 54.0, 44.6, 43.9, 41.5, 39.1, 37.0 |
| D from A (§3.1) | 61.1, 55.4, 53.4, 47.2, 45.7 |
| D, He init alone | 61.8, 60.6, 59.6, 50.4, 46.9 |
| D, Glorot init alone | 90.0, 90.0 (loss 2.305 in both: at chance) |
| E from A | 64.2, 56.6, 55.8, 48.5 |
| D, S in [36, 72], from A (tested at Q = 54) | 69.4, 70.3, 64.3, 59.3 |
| D, S in [36, 72], from that D after 5 epochs, lr 0.001 / 0.01 | 48.4 / 51.9 |

An epoch of A took 18.1-19.4 s on the quiet machine (one BLAS thread, about 1,060
images/s); a training step of A-LRN costs 1.3 times A's CPU time, D 1.9 times, E 2.4
times. Hence: every net trained from scratch or from A gets 10 epochs (the rate divided
by 10 after 8: the runs end long before the plateau rule would fire); the net without
A is D with He's initialisation, since Glorot's left D at chance; the jittered nets
are fine-tuned from D and E (as in §3.1) for 4 epochs at lr 0.001, the paper's
fine-tuning rate, since started from A they left chance too slowly. Evaluation runs on
one thread: with two, on the shared machine, the 150-crop protocol took 40 times the
CPU time (15.7 s against 0.39 s for 6 images). In all, about 2.3 hours on a quiet
machine; the ETA printed during the run measures it.

"""

SCALE_UP = """## Scaling up

The budget is set by the profile (`PROFILES` in examples/reproduce_paper.py); any value
can be changed for one run with `--set KEY=VALUE` (repeatable), and the cells of the new
settings must go to another `--out` (a finished cell is reused only with the settings it
was made with):

- width: `--set width_mult=0.5` (conv widths 32-256, about 4x the work per image) or `1`
  (the paper's 64-512, about 16x); `--set fc_width=512` widens FC1 and FC2;
- images: `--set train_size=49000` (all of CIFAR-10's training images but the 1,000 held
  out) and `--set eval_images=10000` (the whole test set);
- epochs: `--set base_epochs=40 --set base_drop=30` and the same for `deep_`,
  `scratch_` and `tune_` (the rate is divided by 10 after the `_drop` epoch), or leave
  the drops to the paper's plateau rule with `--set base_drop=0 --set base_patience=2`;
- seeds: `--seeds 5` narrows every interval (by about a third from 3 seeds);
- threads: `--threads 0` lets minivgg choose per epoch (wider nets on a machine of
  their own gain from more than one);
- a GPU: `--device cuda` trains there through the Trainer's CUDA path (the evaluation
  stays on the CPU).

Started again with the same command, a run reuses its finished cells, so a bigger run
can be built up a few cells at a time with `--cells`.
"""


def budget_text(prof):
    parts = []
    for budget, who in (("base", "A and A-LRN from He (kaiming) initialisation"),
                        ("deep", "B-E started from A's conv1_1, conv2_1, conv3_1, conv3_2 and "
                                 "fc6-fc8 (the rest He-initialised, §3.1)"),
                        ("scratch", "the deep nets without A, from their own initialisation "
                                    "alone"),
                        ("tune", "the nets with S jittered, fine-tuned from the fixed-S net "
                                 "of their configuration and seed, every weight copied (§3.1: "
                                 "\"fine-tuning all layers of a single-scale model with the "
                                 "same configuration\")")):
        if (budget == "scratch" and not scratch_nets(prof) or
                budget == "tune" and prof.get("jit_from") != "same"):
            continue
        ep, drop, pat = (prof[f"{budget}_epochs"], prof.get(f"{budget}_drop", 0),
                         prof[f"{budget}_patience"])
        steps = ep * math.ceil(prof["train_size"] / prof["batch_size"])
        text = f"{who}: {ep} epoch{'s' if ep > 1 else ''} ({steps:,} steps)"
        if prof.get(f"{budget}_lr", prof["lr"]) != prof["lr"]:
            text += f" at lr {prof[f'{budget}_lr']}"
        if 0 < drop < ep:
            text += f", the rate divided by 10 after epoch {drop}"
        text += (", plateau rule off (patience as long as the run)" if pat + 1 >= ep else
                 f", and by 10 after {pat + 1} epoch{'s' if pat else ''} without a gain "
                 f"(§3.1)")
        parts.append(text)
    text = "; ".join(parts) + "."
    if 0 < prof.get("base_drop", 0):
        text += (" The runs end before validation accuracy stops improving, so the plateau "
                 "rule of §3.1 would never fire; one division of the rate by 10 at a fixed "
                 "epoch stands in for it.")
    elif prof["base_patience"] + 1 >= prof["base_epochs"]:
        text += (" At this budget a drop while a net still sits at chance stalls it for good "
                 "(training.md), so the schedule is left out.")
    return text


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def machine_line():
    return (f"{platform.machine()} CPU, {os.cpu_count()} logical cores; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def load_average():
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def load_figure_module():
    spec = importlib.util.spec_from_file_location(
        "make_reproduction_figures", os.path.join(ROOT, "scripts", "make_reproduction_figures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_set(items, prof):
    """--set KEY=VALUE overrides of profile values (same type as the profile's)."""
    prof = dict(prof)
    keys = [k for k in sorted(prof) if k not in ("runs", "fusion", "real_data")]
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or key not in keys:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(keys)}")
        kind = type(prof[key])
        try:
            prof[key] = kind(text)
        except ValueError:
            raise ValueError(f"--set {item!r}: {key} needs a {kind.__name__}, got {text!r}") \
                from None
    return prof


#: CIFAR-10's classes (batches.meta.txt; the JPEG folders are named after them).
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


def data_name(data):
    """What the page calls the data: CIFAR-10 when the classes are its own."""
    if data == "synthetic":
        return "generated shapes"
    classes = whole_sets(data)[0].classes
    return ("CIFAR-10" if sorted(classes) == CIFAR10_CLASSES else
            f"the images of {data.partition(':')[2]}")


def report(out_root, prof, seeds, args, paths, sessions=None):
    """Collect the finished cells, write the results JSON, the figures and the page."""
    results, histories, times = collect(out_root, prof, seeds, args.data)
    if not results:
        raise ValueError(f"no finished cell in {out_root} to report on")
    sessions = sessions if sessions is not None else read_sessions(out_root)
    done = sorted({s for s in results})
    a_e = [os.path.join(cell_dir(out_root, Cell(n, done[0])), "last.npz") for n in ("A", "E")
           if os.path.exists(os.path.join(cell_dir(out_root, Cell(n, done[0])), "last.npz"))]
    params = [EvalNet.from_checkpoint(p).model.num_parameters() for p in a_e]
    kind = args.data.partition(":")[0]
    # Folders outside the current one are this machine's: the page names them DIR and OUT.
    hidden = [(p, name) for p, name in ((args.data.partition(":")[2], "DIR"), (args.out, "OUT"))
              if p and os.path.isabs(shown_path(p))]

    def hide(text):
        for p, name in sorted(hidden, key=lambda h: -len(h[0])):
            text = re.sub(re.escape(p.rstrip("/")) + r"(?=[/\s`]|$)", name, text)
        # Any other folder outside this one (--doc, --img-dir): its file name only.
        return re.sub(r"(?<![\w.])/[^\s`]*/([^\s`/]*)",
                      lambda m: m.group(0) if not os.path.isabs(shown_path(m.group(0)))
                      else ".../" + m.group(1), text)
    commands = dict.fromkeys(hide(s["command"]) for s in sessions)
    meta = {
        # The commands that trained the cells (a --report only writes the page).
        "command": "`; `".join(commands) or hide("python examples/reproduce_paper.py " +
                                                  " ".join(args.argv)),
        "placeholders": ", ".join(f"{name}: the folder of the "
                                  f"{'data set' if name == 'DIR' else 'runs'}"
                                  for _, name in hidden),
        "date": datetime.date.today().isoformat(), "machine": machine_line(),
        "load": "; ".join(f"{s['load_start']} at the start and {s['load_end']} at the end of "
                          f"session {i + 1}" for i, s in enumerate(sessions)) or load_average(),
        # A session still running counts up to its last finished cell.
        "wall_h": sum(s["wall_s"] for s in sessions) / 3600, "sessions": len(sessions),
        "profile": prof, "profile_name": args.profile, "data": hide(args.data),
        "data_name": hide(data_name(args.data)),
        "data_desc": ("generated SyntheticShapes images" if kind == "synthetic" else
                      "real images"),
        "params_range": "-".join(f"{p / 1e3:.0f}K" for p in params) or "?",
        "out": hide(out_root),
        "results_json_from_root": hide(shown_path(paths[1])),
    }
    return write_report(paths, meta, seeds, results, histories, times)


def write_report(paths, meta, seeds, results, histories, times):
    doc, results_json, img_dir = paths
    prof = meta["profile"]
    for p in (doc, results_json):
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    meta.setdefault("results_json_from_root", shown_path(results_json))
    summary = summarise(results, seeds, prof)
    dump = {"meta": meta, "seeds": seeds, "summary": summary,
            "paper": {f"{k[0]}|{k[1]}": v for k, v in PAPER.items()},
            "results": {str(s): {f"{k[0]}|{k[1]}": v for k, v in res.items()}
                        for s, res in results.items()},
            "histories": {str(s): hs for s, hs in histories.items()}, "times": times,
            "sources": {n: run_info(n, prof)[3] for n in prof["runs"]}}
    write_json(results_json, dump)
    figs = load_figure_module().make_figures(results_json, img_dir)
    write_doc(doc, dump, figs)
    return doc, results_json, figs


def read_sessions(out_root):
    """The sessions that trained cells in ``out_root``: sessions.jsonl gets a line
    per finished cell of a session (its totals so far; a killed session keeps its
    last), so each session's last line counts."""
    path = os.path.join(out_root, "sessions.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return list({(s["start"], s.get("pid")): s for s in lines}.values())


def note_session(out_root, session, t0, ran):
    """Append this session's totals so far to OUT/PROFILE/sessions.jsonl."""
    session.update(end=datetime.datetime.now().isoformat(timespec="seconds"),
                   wall_s=time.perf_counter() - t0, load_end=load_average(), cells_run=ran)
    with open(os.path.join(out_root, "sessions.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(session) + "\n")


def from_results(path, paths):
    """Rewrite the page and the figures from a results JSON (this script's, or the
    per-seed list of earlier versions)."""
    with open(path, encoding="utf-8") as f:
        dump = json.load(f)
    meta = dump["meta"]
    if "seeds" in dump:  # this version's
        seeds = dump["seeds"]
        results = {int(s): {tuple(k.split("|")): v for k, v in r.items()}
                   for s, r in dump["results"].items()}
        histories, times = dump["histories"], dump["times"]
    else:  # results as a list over seeds, one session
        seeds = list(meta["seeds"])
        results = {s: {tuple(k.split("|")): v for k, v in r.items()}
                   for s, r in zip(seeds, dump["results"])}
        histories = dump["histories"]
        times = {f"{n}|{s}": {"train_s": sum(h["time_s"] for h in hs), "eval_s": float("nan"),
                              "train_epochs_s": sum(h["time_s"] for h in hs)}
                 for s, by in histories.items() for n, hs in by.items()}
        prof = {**PROFILES[meta["profile_name"]], **meta["profile"]}
        prof.setdefault("learnt_below", 50.0)
        for k in ("epochs", "patience"):
            prof.setdefault(f"scratch_{k}", prof[f"deep_{k}"])
        meta = {**meta, "profile": prof, "wall_h": meta["wall_min"] / 60, "sessions": 1,
                "load": f"{meta['load_start']} at the start and {meta['load_end']} at the end",
                "data_name": "generated shapes", "out": "runs/reproduce/" + meta["profile_name"]}
    return write_report(paths, meta, seeds, results, histories, times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick",
                   help="generated shapes, 8x narrower nets, under 15 minutes")
    g.add_argument("--full", dest="profile", action="store_const", const="full",
                   help="generated shapes, 4x narrower nets, longer training")
    g.add_argument("--profile", dest="profile", choices=list(PROFILES),
                   help="a profile by name: cifar (real 32x32 images, ~2.5 h on 2 cores), "
                        "quick, full, tiny (the test suite's)")
    p.add_argument("--data", default="synthetic",
                   help="synthetic (generated), cifar10:DIR (DIR/cifar-10-batches-bin/, the "
                        "binary archive) or imagefolder:DIR (DIR/train/<class>/, DIR/val/ or "
                        "DIR/test/<class>/)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--cells", default="",
                   help="only these cells: NAME or NAME:SEED, comma-separated (e.g. A,D-jit:1); "
                        "the cells they start from are added")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one value of the profile for this run (e.g. width_mult=0.5)")
    p.add_argument("--device", default="cpu", help="where to train: cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of training and evaluation (default 1: these nets' "
                        "products are small, and a second BLAS thread on a shared 2-core "
                        "machine waits far more than it works; 0: minivgg's own choice)")
    p.add_argument("--out", default="runs/reproduce", help="folder of the runs (OUT/PROFILE/)")
    p.add_argument("--doc", default=None, help="the page to write (default "
                                               "OUT/PROFILE/reproduction.md)")
    p.add_argument("--results", default=None,
                   help="the results JSON (default: beside --doc, NAME_results.json)")
    p.add_argument("--img-dir", default=None, help="where the figures go (default: beside "
                                                   "--doc)")
    p.add_argument("--report", action="store_true",
                   help="train nothing: write the page, figures and JSON from the finished "
                        "cells in OUT")
    p.add_argument("--re-evaluate", action="store_true",
                   help="train nothing: evaluate every finished cell in OUT again with this "
                        "version's evaluation code (their training kept), then write the page")
    p.add_argument("--from-results", default=None, metavar="JSON",
                   help="train and read nothing else: rewrite the page and the figures from a "
                        "results JSON")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if args.report and args.re_evaluate:
        p.error("--report and --re-evaluate exclude each other (--re-evaluate writes the page "
                "too)")
    if args.threads < 0:
        p.error(f"--threads must be >= 0 (0: minivgg's own choice), got {args.threads}")
    if args.from_results:
        doc = args.doc or os.path.join(os.path.dirname(os.path.abspath(args.from_results)),
                                       "reproduction.md")
    elif args.profile is None:
        p.error("choose a profile: --profile cifar (with --data), --quick, --full")
    out_root = os.path.join(args.out, args.profile or "")
    if not args.from_results:
        doc = args.doc or os.path.join(out_root, "reproduction.md")
    results_json = args.results or os.path.splitext(doc)[0] + "_results.json"
    img_dir = args.img_dir or os.path.dirname(os.path.abspath(doc))
    paths = (doc, results_json, img_dir)
    try:
        if args.from_results:
            doc, results_json, figs = from_results(args.from_results, paths)
            print(f"wrote {doc}, {results_json} and {len(figs)} figures from "
                  f"{args.from_results}")
            return 0
        prof = parse_set(args.set, PROFILES[args.profile])
        if prof.get("real_data") and args.data == "synthetic":
            p.error(f"--profile {args.profile} is sized for real images: give --data "
                    f"cifar10:DIR or imagefolder:DIR")
        Recipe(data=args.data, device=args.device).validate()
        seeds = list(range(args.seeds))
        cells, added = plan_cells(prof, seeds, args.cells)
    except ValueError as e:
        p.error(str(e))
    except FileNotFoundError as e:
        p.error(str(e))
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    if added:
        log("also running " + ", ".join(added))
    if not args.report:
        os.makedirs(out_root, exist_ok=True)
        session = {"command": "python examples/reproduce_paper.py " + " ".join(args.argv),
                   "start": datetime.datetime.now().isoformat(timespec="seconds"),
                   "pid": os.getpid(), "load_start": load_average()}
        t0 = time.perf_counter()
        state = {"ran": 0}
        state["on_cell"] = lambda: note_session(out_root, session, t0, state["ran"])
        try:
            (re_evaluate_cells if args.re_evaluate else run_cells)(cells, prof, args, out_root,
                                                                   log, state)
        except KeyboardInterrupt:
            log("interrupted: the finished cells and the interrupted cell's last saved state "
                "are kept; run the same command again to continue")
            return 130
        except (ValueError, FileNotFoundError) as e:
            p.error(str(e))
        finally:
            # Sessions that did work count towards the run's wall time.
            if state["ran"] or time.perf_counter() - t0 > 60:
                note_session(out_root, session, t0, state["ran"])
    try:
        doc, results_json, figs = report(out_root, prof, seeds, args, paths)
    except ValueError as e:
        p.error(str(e))
    log(f"wrote {doc}, {results_json} and {len(figs)} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
