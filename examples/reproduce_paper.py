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

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minivgg import train as train_mod  # noqa: E402
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

#: Training budgets. "base": nets trained from random weights (A, A-LRN, the Glorot
#: nets); "deep": nets started from A. Epochs of ``train_size`` images.
PROFILES = {
    "quick": dict(width_mult=0.125, fc_width=128, train_size=3200, val_size=500,
                  eval_images=300, multicrop_images=200, base_epochs=12, deep_epochs=6,
                  batch_size=64, lr=0.02, patience=1),
    "full": dict(width_mult=0.25, fc_width=128, train_size=12000, val_size=1000,
                 eval_images=1000, multicrop_images=500, base_epochs=16, deep_epochs=10,
                 batch_size=64, lr=0.02, patience=2),
    # For the test suite: every step of the pipeline in seconds, nothing learnt.
    "tiny": dict(width_mult=0.0625, fc_width=8, train_size=24, val_size=12, eval_images=6,
                 multicrop_images=3, base_epochs=2, deep_epochs=1, batch_size=8, lr=0.01,
                 patience=0),
}

#: name, configuration, training scale, init, started from, budget
RUNS = [
    ("A", "A", FIXED_S, "kaiming", None, "base"),
    ("A-LRN", "A-LRN", FIXED_S, "kaiming", None, "base"),
    ("B", "B", FIXED_S, "kaiming", "A", "deep"),
    ("C", "C", FIXED_S, "kaiming", "A", "deep"),
    ("D", "D", FIXED_S, "kaiming", "A", "deep"),
    ("E", "E", FIXED_S, "kaiming", "A", "deep"),
    ("B-glorot", "B", FIXED_S, "glorot", None, "base"),
    ("D-glorot", "D", FIXED_S, "glorot", None, "base"),
    ("E-glorot", "E", FIXED_S, "glorot", None, "base"),
    ("D-jit", "D", JITTER_S, "kaiming", "A", "deep"),
    ("E-jit", "E", JITTER_S, "kaiming", "A", "deep"),
]

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

def recipe_for(run, seed, prof, args, out_dir):
    name, cfg, scale, init, source, budget = run
    return Recipe(
        cfg=cfg, data=args.data, crop=CROP, scale=scale, batch_size=prof["batch_size"],
        lr=prof["lr"], epochs=prof[f"{budget}_epochs"], init=init,
        init_from=os.path.join(out_dir, source, "last.npz") if source else "",
        fc_width=prof["fc_width"], width_mult=prof["width_mult"], patience=prof["patience"],
        train_size=prof["train_size"], val_size=prof["val_size"], seed=seed,
        out=os.path.join(out_dir, name), progress=False)


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

def evaluation_plan(names):
    """[(run name, protocol label, protocol, scales, image budget key)]."""
    plan = []
    for name in names:
        scale = dict((r[0], r[2]) for r in RUNS)[name]
        qs = Q_FIXED if scale == FIXED_S else Q_JITTER
        plan.append((name, "single", "dense", [Q_SINGLE[scale]], "eval_images"))
        if name in ("B", "C", "D", "E", "D-jit", "E-jit"):
            plan.append((name, "multi", "dense", qs, "eval_images"))
        if name in ("D-jit", "E-jit"):
            plan.append((name, "dense", "dense", qs, "multicrop_images"))
            plan.append((name, "multicrop", "multicrop", qs, "multicrop_images"))
            plan.append((name, "dense+multicrop", "dense+multicrop", qs, "multicrop_images"))
    return plan


def evaluate_seed(out_dir, val, prof, log):
    """{(name, label): {"top1", "top5", "images"}} for one seed, fusion included."""
    nets = {name: EvalNet.from_checkpoint(os.path.join(out_dir, name)) for name, *_ in RUNS}
    results, post = {}, {}
    for name, label, protocol, scales, budget in evaluation_plan([r[0] for r in RUNS]):
        rep = evaluate(nets[name], val, protocol, scales, batch_size=64,
                       limit=min(prof[budget], len(val)), progress=False)
        row = rep.rows[0]
        results[(name, label)] = {"top1": 100 * row.top1, "top5": 100 * row.top5,
                                  "images": row.images, "protocol": protocol,
                                  "scales": scales}
        post[(name, label)] = (rep.posteriors[0], rep.labels)
    for label in ("dense", "multicrop", "dense+multicrop"):
        (pd, y), (pe, _) = post[("D-jit", label)], post[("E-jit", label)]
        fused = fuse_posteriors([pd, pe])
        results[("fusion", label)] = {"top1": 100 * topk_error(fused, y, 1),
                                      "top5": 100 * topk_error(fused, y, 5),
                                      "images": len(y), "protocol": label, "scales": Q_JITTER}
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
    """rows: [(first column text, result key, note)] -> Markdown."""
    lines = [f"| {header_first} | paper top-1 | paper top-5 | minivgg top-1 | minivgg top-5 "
             f"| per seed (top-1) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for text, key in rows:
        t1, t5 = per_seed(all_results, key), per_seed(all_results, key, "top5")
        pt1, pt5 = paper_cells(key)
        lines.append(f"| {text} | {pt1} | {pt5} | {cell(t1)} | {cell(t5)} | "
                     f"{', '.join(f'{v:.1f}' for v in t1)} |")
    return "\n".join(lines)


def lower(all_results, a, b):
    """Mean top-1 of a minus mean top-1 of b, and the seeds where a < b."""
    ta, tb = per_seed(all_results, a), per_seed(all_results, b)
    return float(np.mean(ta) - np.mean(tb)), sum(x < y for x, y in zip(ta, tb))


def verdict(diff_wins, n, want_lower=True, what=""):
    diff, wins = diff_wins
    ok = (diff < 0) if want_lower else (diff >= 0)
    agree = wins if want_lower else n - wins
    word = "reproduces" if ok and agree == n else ("partly reproduces" if ok else
                                                   "does not reproduce")
    return word, f"{what}: mean difference {diff:+.1f} points top-1, in {agree} of {n} seeds"


def findings(all_results):
    n = len(all_results)
    out = []
    d = lower(all_results, ("A-LRN", "single"), ("A", "single"))
    out.append(("LRN does not help (A-LRN is not better than A)",
                *verdict(d, n, want_lower=False, what="A-LRN minus A"),
                "LRN normalises each activation by its neighbours across channels; with 8 to "
                "64 channels and 32x32 images it has little to act on, as on ImageNet."))
    for deep, layers in (("D", 16), ("E", 19)):
        d = lower(all_results, (deep, "single"), ("A", "single"))
        out.append((f"Error falls with depth ({deep}, {layers} layers, better than A, 11; "
                    f"{deep} started from A)", *verdict(d, n, what=f"{deep} minus A"),
                    "At 32x32 the receptive fields of the deeper nets are larger than the "
                    "image (pool5 of D sees 212 pixels), the nets are 8 times narrower than "
                    "the paper's, and the deeper nets get only a short training on top of "
                    "A's."))
    d = lower(all_results, ("D", "single"), ("C", "single"))
    out.append(("3x3 beats 1x1 in the same places (D better than C)",
                *verdict(d, n, what="D minus C"),
                "On 32x32 inputs the last blocks work on 4x4 and 2x2 maps, where the "
                "spatial context a 3x3 layer adds over a 1x1 layer is small."))
    d = lower(all_results, ("C", "single"), ("B", "single"))
    out.append(("1x1 layers' extra non-linearity helps (C better than B)",
                *verdict(d, n, what="C minus B"),
                "The difference on ImageNet was 0.6 points top-1, smaller than the spread "
                "between seeds here."))
    g = per_seed(all_results, ("D-glorot", "single"))
    learnt = sum(v < LEARNT for v in g)
    diff = float(np.mean(g) - np.mean(per_seed(all_results, ("D", "single"))))
    word = ("reproduces" if learnt == n else "partly reproduces" if learnt else
            "does not reproduce")
    out.append(("Deep nets train from Glorot's initialisation without A's layers (D with "
                f"Glorot learns: below {LEARNT:.0f}% top-1, chance being 90%)", word,
                f"D with Glorot below {LEARNT:.0f}% in {learnt} of {n} seeds; D with Glorot "
                f"minus D from A: mean difference {diff:+.1f} points top-1",
                "Without batch normalisation a plain net first sits at chance while its "
                "output shrinks to the class prior (docs/training.md); Glorot's scale "
                "shrinks the signal at every ReLU (docs/why_3x3.md), so a deep net from "
                "Glorot's start may need more steps than this budget to leave chance."))
    d = lower(all_results, ("D-jit", "single"), ("D", "single"))
    out.append(("Scale jittering in training helps (D, S in [36, 72] against S = 36)",
                *verdict(d, n, what="jittered minus fixed"),
                "The toy objects vary in size already (25-90% of the image); jittering adds "
                "scale variation to a problem that has plenty, and costs training speed."))
    d = lower(all_results, ("D-jit", "multi"), ("D-jit", "single"))
    out.append(("Several test scales beat one (D jittered, Q = {36, 54, 72} against 54)",
                *verdict(d, n, what="three Q minus one Q"),
                "Averaging over scales helps when the net was trained over that range of "
                "scales, as the jittered nets were."))
    d = lower(all_results, ("D-jit", "dense+multicrop"), ("D-jit", "dense"))
    out.append(("Dense and multi-crop together beat dense alone (D jittered)",
                *verdict(d, n, what="both minus dense"),
                "At Q = 36 and 54 the dense score map is 1x1: dense evaluation sees the "
                "whole image once, and multi-crop's 25 windows sample it finely."))
    d = lower(all_results, ("fusion", "dense+multicrop"), ("D-jit", "dense+multicrop"))
    out.append(("Fusing D and E beats D alone (dense + multi-crop)",
                *verdict(d, n, what="fusion minus D"),
                "Averaging two nets that err on different images lowers the error; the gain "
                "is largest when both nets are about equally good."))
    return out


def machine_line():
    try:
        load = os.getloadavg()
        load = ", ".join(f"{v:.2f}" for v in load)
    except OSError:
        load = "n/a"
    return (f"{platform.machine()} CPU, {os.cpu_count()} logical cores, no GPU; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"numpy {np.__version__}"), load


def write_doc(path, all_results, histories, meta, fig_paths):
    prof = meta["profile"]
    seeds = meta["seeds"]
    rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(path)))  # noqa: E731
    L = []
    L.append("# The paper's findings at toy scale\n")
    L.append(f"Written by `{meta['command']}` on {meta['date']}, {meta['wall_min']:.1f} minutes "
             f"of wall time, on the project's machine ({meta['machine']}; load average "
             f"{meta['load_start']} at the start, {meta['load_end']} at the end, other jobs "
             f"sharing the two cores). Every minivgg number on this page was measured in that "
             f"run; every paper number is **transcribed from the paper** (Tables 3-6, "
             f"ILSVRC-2012 validation set, [paper_results.md](paper_results.md)). They "
             f"measure different things and are set side by side for their *direction*, not "
             f"their size: the paper's nets have 133-144 M parameters, were trained for weeks "
             f"on 1.3 M ImageNet images at 224x224 and tested on 1000 classes; these have "
             f"{meta['params_range']} parameters, trained for minutes on "
             f"{prof['train_size']:,} {meta['data_desc']} at 32x32 and are tested on 10 "
             f"classes (chance: 90% top-1, 50% top-5).\n")
    L.append("## Set-up\n")
    L.append(f"- Data: `{meta['data']}`: {prof['train_size']:,} training images per seed, "
             f"validation on {prof['val_size']} images (the plateau rule and the tables), "
             f"{prof['eval_images']} images for the one- and three-scale dense rows, "
             f"{prof['multicrop_images']} for the dense / multi-crop / fusion rows.")
    L.append(f"- Nets: Table 1's configurations at width {prof['width_mult']} "
             f"(conv widths {', '.join(str(max(1, round(c * prof['width_mult']))) for c in (64, 128, 256, 512))}), "
             f"FC-{prof['fc_width']}, 10 classes, 32x32 crops.")
    L.append(f"- Training: the §3.1 recipe with the small profile's values (SGD, momentum "
             f"0.9, weight decay 5e-4, batch {prof['batch_size']}, lr {prof['lr']}, "
             f"dropout 0.3, FC bias 0.1, flips and colour shift, lr divided by 10 after "
             f"{prof['patience'] + 1} epochs without a gain, at most 3 times). "
             f"A and A-LRN from He (kaiming) initialisation, {prof['base_epochs']} epochs; "
             f"B-E started from A's conv1_1, conv2_1, conv3_1, conv3_2 and fc6-fc8 (the "
             f"rest He-initialised) for {prof['deep_epochs']} epochs; the Glorot nets from "
             f"Glorot's initialisation alone, {prof['base_epochs']} epochs, like A.")
    L.append(f"- Scales (the paper's divided by 7 = 224/32): fixed S = {FIXED_S} (256), "
             f"jittered S in [{JITTER_S.replace(':', ', ')}] ([256, 512]); test Q = {Q_SINGLE[FIXED_S]} "
             f"or {Q_SINGLE[JITTER_S]} for one scale, {Q_FIXED} or {Q_JITTER} for three.")
    L.append(f"- Seeds: {', '.join(map(str, seeds))} (a seed sets the generated data, the "
             f"initialisation, the data order, the augmentation and dropout). Each cell is "
             f"the mean ± the standard deviation over the seeds, in % error.\n")
    L.append("## What reproduces\n")
    L.append("| the paper's finding | here | measured |")
    L.append("| --- | --- | --- |")
    for claim, word, detail, _ in findings(all_results):
        L.append(f"| {claim} | **{word}** | {detail} |")
    L.append("")
    L.append("Why a finding can fail to show at this scale, finding by finding:\n")
    for claim, word, _, why in findings(all_results):
        L.append(f"- *{claim}* ({word}): {why}")
    L.append("")
    L.append("A finding \"reproduces\" when the mean moves the paper's way and every seed "
             "agrees, \"partly\" when the mean does but some seed does not. With "
             f"{len(seeds)} seeds and differences of a few points, read the per-seed column "
             f"before the verdict.\n")
    L.append("## Depth and initialisation (Table 3, dense evaluation at one Q)\n")
    L.append(table(all_results, [
        ("A, random init", ("A", "single")), ("B, from A", ("B", "single")),
        ("D, from A", ("D", "single")), ("E, from A", ("E", "single")),
        ("B, Glorot, no A", ("B-glorot", "single")), ("D, Glorot, no A", ("D-glorot", "single")),
        ("E, Glorot, no A", ("E-glorot", "single"))], "ConvNet (train S fixed)"))
    L.append("\nThe paper gives no error for its Glorot-initialised nets; it reports that "
             "they trained without A's layers.\n")
    L.append("## LRN (Table 3)\n")
    L.append(table(all_results, [("A", ("A", "single")), ("A-LRN", ("A-LRN", "single"))],
                   "ConvNet"))
    L.append("\n## 1x1 against 3x3 (Table 3)\n")
    L.append(table(all_results, [("B (no third layer)", ("B", "single")),
                                 ("C (1x1 third layer)", ("C", "single")),
                                 ("D (3x3 third layer)", ("D", "single"))], "ConvNet"))
    L.append("\n## Fixed against jittered training scale (Table 3)\n")
    L.append(table(all_results, [
        (f"D, S = {FIXED_S} (paper: 256), Q = {Q_SINGLE[FIXED_S]}", ("D", "single")),
        (f"D, S in [{JITTER_S.replace(':', ', ')}] (paper: [256, 512]), Q = "
         f"{Q_SINGLE[JITTER_S]}", ("D-jit", "single")),
        (f"E, S = {FIXED_S}", ("E", "single")),
        (f"E, S in [{JITTER_S.replace(':', ', ')}]", ("E-jit", "single"))], "ConvNet"))
    L.append("\n## One against three test scales (Tables 3 and 4, dense)\n")
    rows = []
    for name, s in (("B", FIXED_S), ("C", FIXED_S), ("D", FIXED_S), ("E", FIXED_S),
                    ("D-jit", JITTER_S), ("E-jit", JITTER_S)):
        qs = Q_FIXED if s == FIXED_S else Q_JITTER
        lab = name.replace("-jit", f", S in [{JITTER_S.replace(':', ', ')}]")
        rows += [(f"{lab}: Q = {Q_SINGLE[s]}", (name, "single")),
                 (f"{lab}: Q = {{{', '.join(map(str, qs))}}}", (name, "multi"))]
    L.append(table(all_results, rows, "ConvNet, test Q"))
    L.append("\n## Dense, multi-crop, both (Table 5, Q = {36, 54, 72})\n")
    L.append(table(all_results, [
        ("D jittered, dense", ("D-jit", "dense")),
        ("D jittered, multi-crop (150 crops)", ("D-jit", "multicrop")),
        ("D jittered, dense + multi-crop", ("D-jit", "dense+multicrop")),
        ("E jittered, dense", ("E-jit", "dense")),
        ("E jittered, multi-crop", ("E-jit", "multicrop")),
        ("E jittered, dense + multi-crop", ("E-jit", "dense+multicrop"))], "ConvNet, protocol"))
    L.append("\n## Fusion of two nets (Table 6: D and E, S in [256, 512])\n")
    L.append(table(all_results, [
        ("D + E jittered, dense", ("fusion", "dense")),
        ("D + E jittered, multi-crop", ("fusion", "multicrop")),
        ("D + E jittered, dense + multi-crop", ("fusion", "dense+multicrop"))], "nets, protocol"))
    L.append("")
    L.append("## Figures\n")
    L.append(f"![errors against the paper's]({rel(fig_paths['bars'])})\n")
    L.append("*Top-1 error of each comparison, minivgg (mean and spread over seeds) beside "
             "the paper's figure (its own scale). Drawn by "
             "`python scripts/make_reproduction_figures.py` from "
             f"`{rel(meta['results_json'])}`.*\n")
    L.append(f"![training curves]({rel(fig_paths['curves'])})\n")
    L.append(f"*Training curves of seed {seeds[0]}: A from random weights, D started from A, "
             "D from Glorot's initialisation, D with scale jittering. Dotted lines: the plateau "
             "rule divided the learning rate by 10 after that epoch (`scripts/"
             "plot_training_curves.py` draws any run directories this way).*\n")
    L.append("## Time\n")
    L.append("| run | training time per seed (s, mean) |")
    L.append("| --- | ---: |")
    for name, *_ in RUNS:
        ts = [histories[s][name]["train_s"] for s in seeds if histories[s][name]["train_s"]]
        L.append(f"| {name} | {np.mean(ts):.0f} |" if ts else f"| {name} | (reused) |")
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
    p = argparse.ArgumentParser(description=__doc__,
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
    machine, load_start = machine_line()
    t_start = time.perf_counter()
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    train_mod.make_datasets = cached_datasets  # render / decode each seed's data once
    histories, all_results, eval_s = {}, [], 0.0
    seeds = list(range(args.seeds))
    try:
        for seed in seeds:
            out_dir = os.path.join(out_root, f"seed{seed}")
            log(f"seed {seed}: training {len(RUNS)} nets in {out_dir}")
            histories[seed] = {}
            for run in RUNS:
                r = recipe_for(run, seed, prof, args, out_dir)
                hist, dt = train_run(r, log)
                histories[seed][run[0]] = {"history": hist, "train_s": dt, "out": r.out}
            t0 = time.perf_counter()
            val = _DATA[(args.data, prof["train_size"], prof["val_size"], Recipe.image_size,
                         seed)][1]
            all_results.append(evaluate_seed(out_dir, val, prof, log))
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
    dump = {"meta": meta, "paper": {f"{k[0]}|{k[1]}": v for k, v in PAPER.items()},
            "results": [{f"{k[0]}|{k[1]}": v for k, v in res.items()} for res in all_results],
            "histories": {str(s): {n: h["history"] for n, h in hs.items()}
                          for s, hs in histories.items()},
            "run_dirs": {str(s): {n: os.path.relpath(h["out"], ROOT) for n, h in hs.items()}
                         for s, hs in histories.items()}}
    with open(results_json, "w", encoding="utf-8") as f:
        json.dump(dump, f, indent=1)
    figs = load_figure_module().make_figures(results_json, img_dir)
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    meta["wall_min"] = (time.perf_counter() - t_start) / 60
    write_doc(doc, all_results, histories, meta, figs)
    log(f"wrote {doc}, {results_json} and {', '.join(figs.values())} "
        f"({meta['wall_min']:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
