#!/usr/bin/env python
"""Reproduce the comparisons of the paper's Tables 3-6 at toy scale.

    python examples/reproduce_paper.py --quick            # under 15 minutes on a 2-core CPU
    python examples/reproduce_paper.py --full             # hours: wider nets, longer training
    python examples/reproduce_paper.py --quick --data imagefolder:/tmp/cifar10

Every configuration is trained with minivgg's own Trainer (the §3.1 recipe of
examples/train_vgg.py) on 32x32 crops, for ``--seeds`` seeds (3 by default),
and evaluated with minivgg.evaluate's protocols (§3.2, §4). The comparisons:

  depth              A, B, D, E at a fixed S; B-E started from A's first four conv and
                     three FC layers (as in the paper) and, separately, from Glorot's
                     initialisation without A (the paper's post-submission note)
  LRN                A against A-LRN
  1x1 against 3x3    C against D (and B)
  training scale     D and E trained at a fixed S against S jittered in [S_min, S_max]
  test scale         one Q against three Q
  dense / multi-crop dense, 5x5 multi-crop with flips, and both averaged
  fusion             the jittered D and E, posteriors averaged

The paper's ImageNet sizes scaled by 32/224: crop 32 (224), fixed S = 36 (256),
S in [36, 72] ([256, 512]), Q = {32, 36, 40} around S = 36 (S - 32, S, S + 32),
Q = {36, 54, 72} for the jittered nets ({256, 384, 512}).

The results (mean and spread over seeds, each row beside the paper's figure),
the machine, the date and the command are written to docs/reproduction.md
(``--doc``), the raw numbers to docs/reproduction_results.json, and the figures
by scripts/make_reproduction_figures.py, which can redraw them from the JSON.
Runs are kept under ``--out`` (one directory per seed and network); a run whose
checkpoint already exists there is not trained again (delete ``--out`` to start
over).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
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

from minivgg.train import trainer as train_mod  # noqa: E402
from minivgg.data.base import Dataset  # noqa: E402
from minivgg.evaluate import EvalNet, evaluate, fuse_posteriors, topk_error  # noqa: E402
from minivgg.train import Recipe, Trainer  # noqa: E402

CROP = 32
LEARNT = 75.0  # top-1 error (%) below which a 10-class net has clearly left chance (90%)
FIXED_S = "36"
JITTER_S = "36:72"
Q_FIXED = [32, 36, 40]
Q_JITTER = [36, 54, 72]
Q_SINGLE = {FIXED_S: 36, JITTER_S: 54}

#: Training budgets. "base": nets trained from random weights (A, A-LRN); "deep": nets
#: started from A, and the Glorot nets, given the same number of steps as a net started
#: from A. Epochs of ``train_size`` images. ``runs``: the networks trained;
#: ``fusion``: the two nets whose posteriors are averaged (Table 6). In the quick profile
#: the patience is as long as the run, so the plateau rule never fires: a drop while a
#: net still sits at chance (the first epochs of A) stalls it for good (docs/training.md).
ALL_RUNS = ["A", "A-LRN", "B", "C", "D", "E", "B-glorot", "D-glorot", "E-glorot", "D-jit",
            "E-jit"]
QUICK_RUNS = ["A", "A-LRN", "B", "C", "D", "E", "D-glorot", "D-jit"]
PROFILES = {
    "quick": dict(width_mult=0.125, fc_width=128, dropout=0.0, train_size=6400, val_size=400,
                  eval_images=250, multicrop_images=100, base_epochs=11, deep_epochs=3,
                  base_patience=11, deep_patience=3, batch_size=64, lr=0.02, runs=QUICK_RUNS,
                  fusion=("D-jit", "E")),
    "full": dict(width_mult=0.25, fc_width=128, dropout=0.3, train_size=12000, val_size=1000,
                 eval_images=1000, multicrop_images=500, base_epochs=16, deep_epochs=8,
                 base_patience=3, deep_patience=2, batch_size=64, lr=0.02, runs=ALL_RUNS,
                 fusion=("D-jit", "E-jit")),
    # For the test suite: every step of the pipeline in seconds, nothing learnt.
    "tiny": dict(width_mult=0.0625, fc_width=8, dropout=0.0, train_size=16, val_size=8,
                 eval_images=4, multicrop_images=2, base_epochs=2, deep_epochs=1,
                 base_patience=0, deep_patience=0, batch_size=8, lr=0.01, runs=QUICK_RUNS,
                 fusion=("D-jit", "E")),
}

#: name -> (configuration, training scale, init, started from, budget)
RUNS = {
    "A": ("A", FIXED_S, "kaiming", None, "base"),
    "A-LRN": ("A-LRN", FIXED_S, "kaiming", None, "base"),
    "B": ("B", FIXED_S, "kaiming", "A", "deep"),
    "C": ("C", FIXED_S, "kaiming", "A", "deep"),
    "D": ("D", FIXED_S, "kaiming", "A", "deep"),
    "E": ("E", FIXED_S, "kaiming", "A", "deep"),
    "B-glorot": ("B", FIXED_S, "glorot", None, "deep"),
    "D-glorot": ("D", FIXED_S, "glorot", None, "deep"),
    "E-glorot": ("E", FIXED_S, "glorot", None, "deep"),
    "D-jit": ("D", JITTER_S, "kaiming", "A", "deep"),
    "E-jit": ("E", JITTER_S, "kaiming", "A", "deep"),
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


# ---------------------------------------------------------------------------
# Data: every run of one seed trains on the same images; render or decode them once
# ---------------------------------------------------------------------------

class InMemory(Dataset):
    """Keep every image of ``ds`` after its first read (the data sets here are small)."""

    def __init__(self, ds):
        self.ds, self.classes, self._store = ds, list(ds.classes), {}

    def __len__(self):
        return len(self.ds)

    def _get(self, i):
        if i not in self._store:
            self._store[i] = self.ds[i]
        return self._store[i]

    def describe(self, i):
        return self.ds.describe(i)


_DATA = {}


def cached_datasets(recipe):
    """train.make_datasets, read once per (data, sizes, seed) in this process."""
    key = (recipe.data, recipe.train_size, recipe.val_size, recipe.image_size, recipe.seed)
    if key not in _DATA:
        train, val = _ORIGINAL_MAKE_DATASETS(recipe)
        _DATA[key] = (InMemory(train), InMemory(val))
    return _DATA[key]


_ORIGINAL_MAKE_DATASETS = train_mod.make_datasets


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def recipe_for(name, seed, prof, args, out_dir):
    cfg, scale, init, source, budget = RUNS[name]
    return Recipe(
        cfg=cfg, data=args.data, crop=CROP, scale=scale, batch_size=prof["batch_size"],
        lr=prof["lr"], epochs=prof[f"{budget}_epochs"], init=init,
        init_from=os.path.join(out_dir, source, "last.npz") if source else "",
        fc_width=prof["fc_width"], width_mult=prof["width_mult"], dropout=prof["dropout"],
        patience=prof[f"{budget}_patience"], train_size=prof["train_size"],
        val_size=prof["val_size"], seed=seed, out=os.path.join(out_dir, name), progress=False)


def train_run(recipe, log):
    ck = os.path.join(recipe.out, "last.npz")
    done = os.path.exists(ck) and len(read_metrics(recipe.out)) >= recipe.epochs
    if done:
        log(f"  {recipe.out}: trained already, kept")
        return read_metrics(recipe.out), 0.0
    if os.path.isdir(recipe.out):  # an unfinished run: start it again from scratch
        for f in os.listdir(recipe.out):
            os.remove(os.path.join(recipe.out, f))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = Trainer(recipe, log=lambda *_: None).run()
    dt = time.perf_counter() - t0
    last = history[-1]
    log(f"  {os.path.basename(recipe.out):<9} seed {recipe.seed}: {len(history)} epochs, "
        f"val top-1 {100 * last['val_top1_err']:.1f}% (single crop), lr {last['lr']:g}, "
        f"{dt:.0f} s")
    return history, dt


def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

def evaluation_plan(prof):
    """[(run name, protocol label, protocol, scales, image budget key)]."""
    plan = []
    three = set(prof["fusion"]) | {"D-jit", "E-jit"}
    for name in prof["runs"]:
        qs = Q_FIXED if RUNS[name][1] == FIXED_S else Q_JITTER
        plan.append((name, "single", "dense", [Q_SINGLE[RUNS[name][1]]], "eval_images"))
        if name in ("B", "C", "D", "E", "D-jit", "E-jit"):
            plan.append((name, "multi", "dense", qs, "eval_images"))
        if name in three:
            plan.append((name, "dense", "dense", qs, "multicrop_images"))
            plan.append((name, "multicrop", "multicrop", qs, "multicrop_images"))
    return plan


def evaluate_seed(out_dir, val, prof):
    """{(name, label): {"top1", "top5", "images", ...}} for one seed, fusion included.

    "dense+multicrop" is the mean of the dense and the multi-crop posteriors, which
    is what evaluate(..., "dense+multicrop") computes (tests/test_reproduce_paper.py
    checks it), without running the 150 crops twice.
    """
    nets = {name: EvalNet.from_checkpoint(os.path.join(out_dir, name)) for name in prof["runs"]}
    results, post = {}, {}

    def record(key, p, y, protocol, scales):
        results[key] = {"top1": 100 * topk_error(p, y, 1), "top5": 100 * topk_error(p, y, 5),
                        "images": len(y), "protocol": protocol, "scales": scales}
        post[key] = (p, y)

    for name, label, protocol, scales, budget in evaluation_plan(prof):
        rep = evaluate(nets[name], val, protocol, scales, batch_size=64,
                       limit=min(prof[budget], len(val)), progress=False)
        record((name, label), rep.posteriors[0], rep.labels, protocol, scales)
        if label == "multicrop":
            (pd, y), (pm, _) = post[(name, "dense")], post[(name, "multicrop")]
            record((name, "dense+multicrop"), (pd + pm) / 2, y, "dense+multicrop", scales)
    a, b = prof["fusion"]
    for label in ("dense", "multicrop", "dense+multicrop"):
        (pa, y), (pb, _) = post[(a, label)], post[(b, label)]
        record(("fusion", label), fuse_posteriors([pa, pb]), y, label, "each net's own")
    return results


# ---------------------------------------------------------------------------
# Tables and the document
# ---------------------------------------------------------------------------

def stats(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def cell(values):
    m, s = stats(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def per_seed(all_results, key, metric="top1"):
    return [res[key][metric] for res in all_results]


def paper_cells(key):
    p = PAPER.get(key)
    return (f"{p[0]:.1f}", f"{p[1]:.1f}") if p else ("—", "—")


def table(all_results, rows, header_first):
    """rows: [(first column text, result key)] -> Markdown; rows not measured are left out."""
    lines = [f"| {header_first} | paper top-1 | paper top-5 | minivgg top-1 | minivgg top-5 "
             f"| per seed (top-1) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for text, key in rows:
        if key not in all_results[0]:
            continue
        t1, t5 = per_seed(all_results, key), per_seed(all_results, key, "top5")
        pt1, pt5 = paper_cells(key)
        lines.append(f"| {text} | {pt1} | {pt5} | {cell(t1)} | {cell(t5)} | "
                     f"{', '.join(f'{v:.1f}' for v in t1)} |")
    return "\n".join(lines)


def lower(all_results, a, b):
    """Mean top-1 of a minus mean top-1 of b, and the number of seeds where a < b."""
    ta, tb = per_seed(all_results, a), per_seed(all_results, b)
    return float(np.mean(ta) - np.mean(tb)), sum(x < y for x, y in zip(ta, tb))


def verdict(diff_wins, n, want_lower=True, what=""):
    """'reproduces': the mean moves the paper's way and every seed agrees; 'partly
    reproduces': the mean does and at least half the seeds agree; else 'does not
    reproduce'."""
    diff, wins = diff_wins
    ok = (diff < 0) if want_lower else (diff >= 0)
    agree = wins if want_lower else n - wins
    word = ("reproduces" if ok and agree == n else
            "partly reproduces" if ok and 2 * agree >= n else "does not reproduce")
    return word, f"{what}: mean difference {diff:+.1f} points top-1; {agree} of {n} seeds agree"


def findings(all_results, prof):
    """[(the paper's finding, verdict, measured, why it can differ at this scale)]."""
    n = len(all_results)
    out = []

    def compare(claim, a, b, what, why, want_lower=True):
        if a in all_results[0] and b in all_results[0]:
            out.append((claim, *verdict(lower(all_results, a, b), n, want_lower, what), why))

    compare("LRN does not help (A-LRN is not better than A)", ("A-LRN", "single"),
            ("A", "single"), "A-LRN minus A",
            f"LRN rescales each activation by its neighbours across channels; with "
            f"{max(1, round(64 * prof['width_mult']))} to {max(1, round(512 * prof['width_mult']))}"
            f" channels (the paper's nets: 64 to 512) it has fewer neighbours to act on, and a "
            f"difference of a few points can hide in the spread between seeds.",
            want_lower=False)
    for deep, layers in (("D", 16), ("E", 19)):
        compare(f"Error falls with depth ({deep}, {layers} weight layers, started from A, "
                f"is better than A, 11)", (deep, "single"), ("A", "single"), f"{deep} minus A",
                "At 32x32 the receptive fields of the deeper nets are far larger than the "
                "image (pool5 of D sees 212 pixels), the nets are 8 times narrower than the "
                "paper's, and the deeper nets train for a short time on top of A's.")
    compare("3x3 beats 1x1 in the same places (D better than C)", ("D", "single"),
            ("C", "single"), "D minus C",
            "On 32x32 inputs blocks 4 and 5 work on 4x4 and 2x2 maps, where the context a "
            "3x3 layer adds over a 1x1 layer is mostly zero padding.")
    compare("1x1 layers' extra non-linearity helps (C better than B)", ("C", "single"),
            ("B", "single"), "C minus B",
            "On ImageNet the difference was 0.6 points top-1; a difference that small can "
            "hide in the seed-to-seed spread of a few hundred test images.")
    if ("D-glorot", "single") in all_results[0]:
        g = per_seed(all_results, ("D-glorot", "single"))
        learnt = sum(v < LEARNT for v in g)
        diff = float(np.mean(g) - np.mean(per_seed(all_results, ("D", "single"))))
        word = ("reproduces" if learnt == n else "partly reproduces" if learnt else
                "does not reproduce")
        out.append((f"Deep nets train from Glorot's initialisation without A's layers (D with "
                    f"Glorot learns: below {LEARNT:.0f}% top-1, chance being 90%)", word,
                    f"D with Glorot below {LEARNT:.0f}% in {learnt} of {n} seeds; D with "
                    f"Glorot minus D from A: mean difference {diff:+.1f} points top-1",
                    "Here D with Glorot gets the steps D gets after A, not A's steps too. "
                    "Without batch normalisation a plain net first sits at chance while its "
                    "output shrinks to the class prior (training.md), and Glorot's scale "
                    "shrinks the signal at every ReLU (why_3x3.md), so a deep net started "
                    "from it may need more steps than that to leave chance."))
    compare("Scale jittering in training helps (D: S in [36, 72] better than S = 36)",
            ("D-jit", "single"), ("D", "single"), "jittered minus fixed",
            "The toy objects already vary in size (25-90% of the image); jittering adds "
            "scale variation to a problem that has plenty, and a net trained on more varied "
            "inputs can need more steps than the budget gives it.")
    compare("Several test scales beat one (D jittered: Q = {36, 54, 72} better than 54)",
            ("D-jit", "multi"), ("D-jit", "single"), "three Q minus one Q",
            "Averaging over scales helps when the net has learnt the objects at those "
            "scales; a net far from converged gains less.")
    compare("Dense and multi-crop together beat dense alone (D jittered)",
            ("D-jit", "dense+multicrop"), ("D-jit", "dense"), "both minus dense",
            "At Q = 36 and 54 the dense score map of a 32x32 net has one cell: dense "
            "evaluation classifies the whole image once, and multi-crop samples it with 25 "
            "windows, so the two views differ more than on ImageNet's large images.")
    a, b = prof["fusion"]
    compare(f"Fusing two nets beats the better one ({a} + {b}, dense + multi-crop)",
            ("fusion", "dense+multicrop"),
            min(((a, "dense+multicrop"), (b, "dense+multicrop")),
                key=lambda k: np.mean(per_seed(all_results, k))),
            "fusion minus the better net",
            "Averaging two nets helps when they err on different images and are about "
            "equally good; a much weaker partner pulls the average towards its errors.")
    return out


def machine_line():
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    return (f"{platform.machine()} CPU, {os.cpu_count()} logical cores, no GPU; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"numpy {np.__version__}"), load


def plateau_text(prof):
    parts = []
    for budget, who in (("base", "A and A-LRN"), ("deep", "the other nets")):
        pat, ep = prof[f"{budget}_patience"], prof[f"{budget}_epochs"]
        parts.append(f"for {who} the plateau rule cannot fire within the run (patience "
                     f"{pat} >= {ep} epochs)" if pat + 1 >= ep else
                     f"for {who} the lr is divided by 10 after {pat + 1} epochs without a gain")
    text = "; ".join(parts) + "."
    text = text[0].upper() + text[1:]
    if prof["base_patience"] + 1 >= prof["base_epochs"]:
        text += (" At this budget a drop while a net still sits at chance stalls it for good "
                 "(training.md), so the schedule is left out; the learning-rate drops are "
                 "shown on a longer run in [pictures.md](pictures.md#training-curves-with-the-"
                 "learning-rate-drops).")
    return text


def jit_label(name):
    return name.replace("-jit", f", S in [{JITTER_S.replace(':', ', ')}]")


def write_doc(path, all_results, histories, meta, fig_paths):
    prof = meta["profile"]
    seeds = meta["seeds"]
    rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(path)))  # noqa: E731
    a, b = prof["fusion"]
    L = []
    L.append("# The paper's findings at toy scale\n")
    L.append(f"Written by `{meta['command']}` on {meta['date']}, {meta['wall_min']:.1f} minutes "
             f"of wall time, on the project's machine ({meta['machine']}; load average "
             f"{meta['load_start']} at the start and {meta['load_end']} at the end: other "
             f"jobs shared the two cores). Every minivgg number on this page was measured in "
             f"that run; every paper number is **transcribed from the paper** (Tables 3-6, "
             f"ILSVRC-2012 validation set, [paper_results.md](paper_results.md)). The two "
             f"measure different things and are set side by side for the *direction* of each "
             f"comparison, not its size: the paper's nets have 133-144 M parameters, trained "
             f"for weeks on 1.3 M ImageNet images at 224x224 and were tested on 1000 classes; "
             f"these have {meta['params_range']} parameters, trained for minutes on "
             f"{prof['train_size']:,} {meta['data_desc']} at 32x32 and are tested on 10 "
             f"classes (chance: 90% top-1, 50% top-5).\n")
    L.append("## Set-up\n")
    L.append(f"- Data: `{meta['data']}`, {prof['train_size']:,} training and "
             f"{prof['val_size']} validation images per seed. The plateau rule watches the "
             f"validation split; the one- and three-scale rows are measured on its first "
             f"{prof['eval_images']} images, the dense / multi-crop / fusion rows on its first "
             f"{prof['multicrop_images']} (one image is {100 / prof['eval_images']:.2f} and "
             f"{100 / prof['multicrop_images']:.2f} points; at 50% error the sampling error "
             f"of one figure is about ±{100 * (0.25 / prof['eval_images']) ** 0.5:.1f} and "
             f"±{100 * (0.25 / prof['multicrop_images']) ** 0.5:.1f} points).")
    widths = ", ".join(str(max(1, round(c * prof["width_mult"]))) for c in (64, 128, 256, 512))
    L.append(f"- Nets: Table 1's configurations at width {prof['width_mult']} (conv widths "
             f"{widths}), FC-{prof['fc_width']}, 10 classes, 32x32 crops.")
    L.append(f"- Training: examples/train_vgg.py's Trainer with these values "
             f"(SGD, momentum 0.9, weight decay 5e-4, batch {prof['batch_size']}, lr "
             f"{prof['lr']}, FC bias 0.1, flips and colour shift), dropout {prof['dropout']}. "
             f"A and A-LRN from He (kaiming) initialisation, {prof['base_epochs']} epochs "
             f"({prof['base_epochs'] * prof['train_size'] // prof['batch_size']:,} steps); "
             f"B-E started from A's conv1_1, conv2_1, conv3_1, conv3_2 and fc6-fc8 (the rest "
             f"He-initialised) for {prof['deep_epochs']} more epochs "
             f"({prof['deep_epochs'] * prof['train_size'] // prof['batch_size']:,} steps); the "
             f"Glorot nets from Glorot's initialisation alone, for the same "
             f"{prof['deep_epochs']} epochs. " + plateau_text(prof))
    L.append(f"- Scales (the paper's times 32/224): fixed S = {FIXED_S} (256), jittered S in "
             f"[{JITTER_S.replace(':', ', ')}] ([256, 512]); test Q = {Q_SINGLE[FIXED_S]} or "
             f"{Q_SINGLE[JITTER_S]} for one scale, {{{', '.join(map(str, Q_FIXED))}}} or "
             f"{{{', '.join(map(str, Q_JITTER))}}} for three. Every row is dense evaluation "
             f"(with the flip) unless it says otherwise, as in the paper's Tables 3 and 4.")
    L.append(f"- Seeds: {', '.join(map(str, seeds))}; a seed sets the generated data, the "
             f"initialisation, the data order, the augmentation and dropout. Each minivgg cell "
             f"is the mean ± the standard deviation over the seeds, in % error.\n")
    L.append("## What reproduces\n")
    L.append("| the paper's finding | here | measured |")
    L.append("| --- | --- | --- |")
    found = findings(all_results, prof)
    for claim, word, detail, _ in found:
        L.append(f"| {claim} | **{word}** | {detail} |")
    L.append("")
    L.append("A finding *reproduces* when the mean moves the paper's way and every seed "
             "agrees, *partly* when the mean does and at least half the seeds agree. The runs "
             "are short and the escape of a plain VGG from its first plateau is erratic, so "
             "another run (another machine's float rounding, another seed) can move a verdict "
             "by one step; read the per-seed columns below before the verdicts. Why a finding "
             "can come out differently at this scale:\n")
    for claim, word, _, why in found:
        L.append(f"- {claim} ({word}): {why}")
    L.append("")
    L.append("## Depth and initialisation (Table 3: train S fixed, dense at Q = S)\n")
    L.append(table(all_results, [
        ("A, random init", ("A", "single")), ("B, from A", ("B", "single")),
        ("D, from A", ("D", "single")), ("E, from A", ("E", "single")),
        ("B, Glorot, no A", ("B-glorot", "single")), ("D, Glorot, no A", ("D-glorot", "single")),
        ("E, Glorot, no A", ("E-glorot", "single"))], "ConvNet"))
    L.append("\nThe paper gives no error for Glorot-initialised nets; it reports that they "
             "trained without A's layers.\n")
    L.append("## LRN (Table 3)\n")
    L.append(table(all_results, [("A", ("A", "single")), ("A-LRN", ("A-LRN", "single"))],
                   "ConvNet"))
    L.append("\n## 1x1 against 3x3 (Table 3)\n")
    L.append(table(all_results, [("B (blocks 3-5: two 3x3)", ("B", "single")),
                                 ("C (+ one 1x1)", ("C", "single")),
                                 ("D (+ one 3x3)", ("D", "single"))], "ConvNet"))
    L.append("\n## Fixed against jittered training scale (Table 3, one Q)\n")
    L.append(table(all_results, [
        (f"D, S = {FIXED_S} (paper: 256), Q = {Q_SINGLE[FIXED_S]}", ("D", "single")),
        (f"D, S in [{JITTER_S.replace(':', ', ')}] (paper: [256, 512]), Q = "
         f"{Q_SINGLE[JITTER_S]}", ("D-jit", "single")),
    ] + ([(f"E, S = {FIXED_S}, Q = {Q_SINGLE[FIXED_S]}", ("E", "single")),
          (f"E, S in [{JITTER_S.replace(':', ', ')}], Q = {Q_SINGLE[JITTER_S]}",
           ("E-jit", "single"))] if "E-jit" in prof["runs"] else []), "ConvNet"))
    L.append("\n## One against three test scales (Tables 3 and 4)\n")
    rows = []
    for name in ("B", "C", "D", "E", "D-jit", "E-jit"):
        if name not in prof["runs"]:
            continue
        s = RUNS[name][1]
        qs = Q_FIXED if s == FIXED_S else Q_JITTER
        rows += [(f"{jit_label(name)}: Q = {Q_SINGLE[s]}", (name, "single")),
                 (f"{jit_label(name)}: Q = {{{', '.join(map(str, qs))}}}", (name, "multi"))]
    L.append(table(all_results, rows, "ConvNet, test Q"))
    L.append("\n## Dense, multi-crop, both (Table 5)\n")
    rows = []
    for name in dict.fromkeys(("D-jit", "E-jit", a, b)):
        if name in prof["runs"]:
            s = RUNS[name][1]
            qs = ", ".join(map(str, Q_FIXED if s == FIXED_S else Q_JITTER))
            rows += [(f"{jit_label(name)}, Q = {{{qs}}}, dense", (name, "dense")),
                     (f"{jit_label(name)}, multi-crop (150 crops)", (name, "multicrop")),
                     (f"{jit_label(name)}, dense + multi-crop", (name, "dense+multicrop"))]
    L.append(table(all_results, rows, "ConvNet, protocol"))
    L.append("\nThe paper's figures are for S in [256, 512], Q = {256, 384, 512}; it has no "
             "such row for a net trained at a fixed S.\n")
    L.append(f"## Fusion of two nets (Table 6)\n")
    L.append(table(all_results, [
        (f"{jit_label(a)} + {jit_label(b)}, dense", ("fusion", "dense")),
        (f"{jit_label(a)} + {jit_label(b)}, multi-crop", ("fusion", "multicrop")),
        (f"{jit_label(a)} + {jit_label(b)}, dense + multi-crop", ("fusion", "dense+multicrop"))],
        "nets, protocol"))
    L.append("\nThe paper's figures fuse D and E, both trained with S in [256, 512] and tested "
             "at Q = {256, 384, 512}; here each net is tested at its own scales.\n")
    L.append("## Figures\n")
    L.append(f"![errors beside the paper's]({rel(fig_paths['bars'])})\n")
    L.append("*Top-1 error of each comparison, minivgg's mean and spread over the seeds "
             "beside the paper's figure (on its own axis). Drawn by "
             f"`python scripts/make_reproduction_figures.py {meta['results_json_from_root']}`"
             f" (or `python examples/reproduce_paper.py --from-results "
             f"{meta['results_json_from_root']}`, which also rewrites this page).*\n")
    L.append(f"![training curves]({rel(fig_paths['curves'])})\n")
    L.append(f"*Seed {seeds[0]}: training loss and validation top-1 error (single centre crop, "
             "the measure the plateau rule watches) per epoch. The nets started from A are "
             "drawn from A's last epoch on; D with Glorot starts at epoch 1 with the same "
             "number of epochs. `scripts/plot_training_curves.py` draws any run directories "
             "this way, with the learning-rate drops marked.*\n")
    L.append("## Time\n")
    L.append("| net | training time per seed (s, mean; validation not included) |")
    L.append("| --- | ---: |")
    for name in prof["runs"]:
        ts = [sum(r["time_s"] for r in histories[s][name]["history"]) for s in seeds]
        L.append(f"| {name} | {np.mean(ts):.0f} |")
    L.append(f"\nEvaluation: {meta['eval_s']:.0f} s in all. Whole command: "
             f"{meta['wall_min']:.1f} minutes.\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L))


def load_figure_module():
    spec = importlib.util.spec_from_file_location(
        "make_reproduction_figures", os.path.join(ROOT, "scripts", "make_reproduction_figures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--quick", dest="profile", action="store_const", const="quick",
                   help="8x narrower nets, 3,200 images, minutes per seed")
    g.add_argument("--full", dest="profile", action="store_const", const="full",
                   help="4x narrower nets, 12,000 images, longer training")
    g.add_argument("--profile", dest="profile", choices=list(PROFILES),
                   help="a profile by name (tiny: the test suite's)")
    p.add_argument("--data", default="synthetic",
                   help="synthetic (embedded) or imagefolder:DIR (DIR/train, DIR/val or test; "
                        "e.g. the CIFAR-10 JPEGs)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--out", default="runs/reproduce", help="directory for the runs")
    p.add_argument("--doc", default=None,
                   help="Markdown file to write (default: docs/reproduction.md for the "
                        "embedded data, OUT/reproduction.md otherwise)")
    p.add_argument("--results", default=None,
                   help="JSON of the raw results (default: next to --doc, "
                        "docs/reproduction_results.json for the embedded data)")
    p.add_argument("--img-dir", default=None,
                   help="where the figures go (default: docs/img for the embedded data, "
                        "OUT otherwise)")
    p.add_argument("--from-results", default=None, metavar="JSON",
                   help="train and measure nothing: rewrite the document and the figures "
                        "from the results JSON of an earlier run")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    prof = PROFILES[args.profile]
    synthetic = args.data == "synthetic"
    out_root = os.path.join(args.out, args.profile)
    doc = args.doc or (os.path.join(ROOT, "docs", "reproduction.md") if synthetic
                       else os.path.join(out_root, "reproduction.md"))
    results_json = args.results or (os.path.join(ROOT, "docs", "reproduction_results.json")
                                    if synthetic and not args.doc else
                                    os.path.splitext(doc)[0] + "_results.json")
    img_dir = args.img_dir or (os.path.join(ROOT, "docs", "img") if synthetic and not args.doc
                               else os.path.dirname(os.path.abspath(doc)))
    if args.from_results:
        with open(args.from_results, encoding="utf-8") as f:
            dump = json.load(f)
        meta = dump["meta"]
        meta["results_json_from_root"] = os.path.relpath(args.from_results)
        all_results = [{tuple(k.split("|")): v for k, v in r.items()} for r in dump["results"]]
        histories = {int(s): {n: {"history": h} for n, h in hs.items()}
                     for s, hs in dump["histories"].items()}
        figs = load_figure_module().make_figures(args.from_results, img_dir)
        write_doc(doc, all_results, histories, meta, figs)
        print(f"wrote {doc} and {', '.join(figs.values())} from {args.from_results}")
        return 0
    machine, load_start = machine_line()
    t_start = time.perf_counter()
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    train_mod.make_datasets = cached_datasets  # render / decode each seed's data once
    histories, all_results, eval_s = {}, [], 0.0
    seeds = list(range(args.seeds))
    try:
        for seed in seeds:
            out_dir = os.path.join(out_root, f"seed{seed}")
            log(f"seed {seed}: training {len(prof['runs'])} nets in {out_dir}")
            histories[seed] = {}
            for name in prof["runs"]:
                r = recipe_for(name, seed, prof, args, out_dir)
                hist, dt = train_run(r, log)
                histories[seed][name] = {"history": hist, "train_s": dt, "out": r.out}
            t0 = time.perf_counter()
            val = _DATA[(args.data, prof["train_size"], prof["val_size"], Recipe.image_size,
                         seed)][1]
            all_results.append(evaluate_seed(out_dir, val, prof))
            eval_s += time.perf_counter() - t0
            log(f"seed {seed}: evaluated in {time.perf_counter() - t0:.0f} s")
    finally:
        train_mod.make_datasets = _ORIGINAL_MAKE_DATASETS
    _, load_end = machine_line()
    nets = [EvalNet.from_checkpoint(os.path.join(out_root, "seed0", n)).model.num_parameters()
            for n in ("A", "E")]
    meta = {
        "command": "python examples/reproduce_paper.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "machine": machine,
        "load_start": load_start, "load_end": load_end, "profile": prof,
        "profile_name": args.profile, "seeds": seeds, "data": args.data,
        "data_desc": "generated SyntheticShapes images" if synthetic else "images",
        "params_range": f"{nets[0] / 1e3:.0f}K-{nets[1] / 1e3:.0f}K",
        "eval_s": eval_s, "results_json": results_json,
        "wall_min": (time.perf_counter() - t_start) / 60,
    }
    os.makedirs(os.path.dirname(os.path.abspath(results_json)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    meta["results_json"] = os.path.relpath(results_json, os.path.dirname(os.path.abspath(doc)))
    meta["results_json_from_root"] = os.path.relpath(results_json, os.getcwd())
    dump = {"meta": meta, "paper": {f"{k[0]}|{k[1]}": v for k, v in PAPER.items()},
            "results": [{f"{k[0]}|{k[1]}": v for k, v in res.items()} for res in all_results],
            "histories": {str(s): {n: h["history"] for n, h in hs.items()}
                          for s, hs in histories.items()},
            "run_dirs": {str(s): {n: os.path.relpath(h["out"], ROOT) for n, h in hs.items()}
                         for s, hs in histories.items()}}
    with open(results_json, "w", encoding="utf-8") as f:
        json.dump(dump, f, indent=1)
    figs = load_figure_module().make_figures(results_json, img_dir)
    meta["wall_min"] = (time.perf_counter() - t_start) / 60  # figures included
    with open(results_json, "w", encoding="utf-8") as f:
        json.dump(dump, f, indent=1)
    write_doc(doc, all_results, histories, meta, figs)
    log(f"wrote {doc}, {results_json} and {', '.join(figs.values())} "
        f"({meta['wall_min']:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
