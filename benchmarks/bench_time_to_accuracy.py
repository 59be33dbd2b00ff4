"""Time to accuracy: one cell of the reproduction (§3.1's recipe on real images)
trained by minivgg and by an independent PyTorch twin, on the same data.

    python benchmarks/bench_time_to_accuracy.py --data imagefolder:DIR [--target 40] \\
        [--profile cifar] [--cell A] [--seed 0] [--write-md docs/benchmarks.md]

The cell is the one examples/reproduce_paper.py trains (``--profile``, ``--cell``,
``--seed``): its training images, held-out validation images, network, init scheme,
SGD with momentum and weight decay, learning-rate schedule (the profile's fixed drop,
the plateau rule) and epochs. minivgg trains it with its own Trainer; the twin is a
PyTorch network built here from Table 1 with ``torch.nn`` (He / Glorot / Gaussian
init drawn by PyTorch's own generator, ``torch.optim.SGD``, the same schedule), fed
the very same batches by minivgg's DataLoader (same seeded order, crops, flips and
colour shifts). Each runs in a fresh process at its library's default thread count
(minivgg: ``--threads 0``, its own choice per epoch; PyTorch: ``torch.get_num_threads()``).

Both validate every ``--eval-every`` steps and at each epoch end (single centre crop,
the Trainer's measure) with the clock stopped; the clock counts the steps and the
loading of their batches. Reported: the training time each needed to first reach
``--target`` % validation top-1 error, the final validation error, and the final
top-1 error on the profile's test images (single centre crop). The two nets start
from different random draws, so their final errors differ by about the spread between
seeds of the reproduction (docs/reproduction.md), not by zero.
"""
import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

FRAMEWORKS = ("minivgg", "torch")

#: How the measurement is made: the opening of the section --write-md writes (the same
#: text as the description of the benchmark in docs/benchmarks.md).
METHOD = """\
`benchmarks/bench_time_to_accuracy.py` measures minivgg's speed on a real job rather than
on one step: it trains one cell of the reproduction (docs/reproduction.md; by default net
A, seed 0, of `examples/reproduce_paper.py --profile cifar`) twice, once with minivgg's
Trainer and once with an independent PyTorch twin of the same network and recipe, and
reports the training time each needed to first reach a fixed validation error (40% top-1
by default, `--target`), with both final errors.

- Same data: both are fed by minivgg's DataLoader with the cell's training sample, held-out
  validation images, transforms and seed, so they see the same batches in the same order.
- Same recipe: Table 1's network at the profile's width, He initialisation (drawn by each
  library's own generator, so the two nets start from different weights), SGD with momentum
  0.9 and weight decay 5e-4, the profile's learning rate with its one fixed division by 10,
  the §3.1 plateau rule, the same epochs. The twin is checked against minivgg in
  `tests/test_bench_time_to_accuracy.py` (minivgg's weights copied into it give minivgg's
  logits).
- Each library at its default thread count, each in a fresh process: minivgg with
  `--threads 0` (its own choice per epoch), PyTorch with `torch.get_num_threads()`.
- The clock counts the training steps and the loading of their batches; it stops while
  the net is validated (every `--eval-every` steps, 50 by default, and at each epoch end,
  single centre crop) and while checkpoints are written.

Because the two nets start from different random weights, their final errors are
expected to differ by about the spread between seeds of the same cell in
docs/reproduction.md, not to agree to the digit.
"""


def load_reproduce():
    """examples/reproduce_paper.py as a module, without the one-thread BLAS
    default it sets for its own runs (this benchmark wants each library's default)."""
    saved = {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                            "MKL_NUM_THREADS")}
    spec = importlib.util.spec_from_file_location(
        "reproduce_paper", os.path.join(ROOT, "examples", "reproduce_paper.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    return mod


class Clock:
    """Training time: runs from a mark to the end of each step; validation and
    setup between a step's end and the next mark are not counted."""

    def __init__(self):
        self.total, self.mark = 0.0, None

    def start(self):
        self.mark = time.perf_counter()

    def step_done(self):
        now = time.perf_counter()
        self.total += now - self.mark
        self.mark = now


def cell_setup(args):
    """(reproduce_paper module, profile, Recipe, lr drop epoch, train set, val set,
    test set) of the benchmarked cell."""
    rp = load_reproduce()
    prof = rp.PROFILES[args.profile]
    own = [n for n in prof["runs"] if rp.run_info(n, prof)[3] is None]
    if args.cell not in own:
        raise ValueError(f"--cell {args.cell!r}: choose a net of the {args.profile} profile "
                         f"trained from a random initialisation: {', '.join(own)}")
    cell = rp.Cell(args.cell, args.seed)
    ns = argparse.Namespace(data=args.data, device="cpu", threads=0)  # minivgg's default
    recipe = rp.recipe_for(cell, prof, ns, args.out)
    spec = rp.cell_spec(cell, prof, args.data)
    train, val = rp.seed_data(args.data, prof, args.seed)
    test, _ = rp.eval_data(args.data, prof, args.seed)
    for ds in (train, val, test):  # decode every image now, outside the clock
        for i in range(len(ds)):
            ds[i]
    return rp, prof, recipe, spec["lr_drop_after"], train, val, test


# ---------------------------------------------------------------------------
# minivgg
# ---------------------------------------------------------------------------

def run_minivgg(args):
    import numpy as np  # first: NumPy's BLAS starts with its default threads

    from minivgg.data import DataLoader, eval_transform, parse_scale
    from minivgg.threads import threads
    from minivgg.train import evaluate_loader

    rp, prof, recipe, drop, train, val, test = cell_setup(args)
    clock, curve = Clock(), []

    class TimedTrainer(rp.CellTrainer):
        def _setup(self):
            super()._setup()
            clock.start()

        def train_step(self, x, y):
            out = super().train_step(x, y)
            clock.step_done()
            step = self.global_step + 1  # the Trainer counts the step after this returns
            if args.eval_every and step % args.eval_every == 0:
                _, top1, _ = evaluate_loader(self.model, self.val_loader)
                curve.append({"step": step, "train_s": clock.total, "val_top1": 100 * top1})
                clock.start()
            return out

        def _end_epoch(self):
            super()._end_epoch()
            row = self.history[-1]
            if not curve or curve[-1]["step"] != row["step"]:
                curve.append({"step": row["step"], "train_s": clock.total,
                              "val_top1": 100 * row["val_top1_err"], "epoch": row["epoch"]})
            else:
                curve[-1]["epoch"] = row["epoch"]
            clock.start()

    used = []

    def on_epoch(row, lr):
        used.append(threads())

    os.makedirs(recipe.out, exist_ok=True)
    with rp.trainer_data(train, val):
        history = rp.train_cell(recipe, drop, on_epoch, log=lambda *a: None,
                                trainer_cls=TimedTrainer)
    # The test images, single centre crop, as the validation measures it.
    from minivgg.evaluate import EvalNet
    net = EvalNet.from_checkpoint(os.path.join(recipe.out, "last.npz"))
    loader = DataLoader(test, 64, eval_transform(recipe.crop, parse_scale(recipe.scale),
                                                 net.mean_rgb), shuffle=False)
    _, test_top1, _ = evaluate_loader(net.model, loader)
    return {"framework": "minivgg", "threads": sorted(set(used)), "curve": curve,
            "final_val_top1": 100 * history[-1]["val_top1_err"],
            "final_test_top1": 100 * test_top1, "epochs": len(history),
            "train_s": clock.total, "steps": history[-1]["step"],
            "params": int(net.model.num_parameters()),
            "mean_rgb": [float(v) for v in np.asarray(net.mean_rgb)]}


# ---------------------------------------------------------------------------
# The PyTorch twin
# ---------------------------------------------------------------------------

def torch_vgg(torch, cfg, width_mult, fc_width, num_classes, crop, dropout, init, init_std,
              fc_bias):
    """Table 1's configuration ``cfg`` in torch.nn, initialised by torch's generator."""
    from minivgg.models.vgg import CONFIGS  # the table (Table 1) only
    nn = torch.nn
    layers, c = [], 3
    for item in CONFIGS[cfg]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "LRN":
            # AlexNet's LRN: torch divides alpha by the window size, the paper does not.
            layers.append(nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0))
        else:
            out, k = item if isinstance(item, tuple) else (item, 3)
            out = max(1, int(round(out * width_mult)))
            layers += [nn.Conv2d(c, out, k, padding=k // 2), nn.ReLU(inplace=True)]
            c = out
    side = crop // 32
    model = nn.Sequential(*layers, nn.Flatten(),
                          nn.Linear(c * side * side, fc_width), nn.ReLU(inplace=True),
                          nn.Dropout(dropout),
                          nn.Linear(fc_width, fc_width), nn.ReLU(inplace=True),
                          nn.Dropout(dropout), nn.Linear(fc_width, num_classes))
    fcs = [m for m in model if isinstance(m, nn.Linear)]
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "kaiming":  # N(0, 2 / fan_in)
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif init == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, init_std)
            nn.init.zeros_(m.bias)
    for m in fcs[:2]:
        nn.init.constant_(m.bias, fc_bias)
    return model


class Plateau:
    """§3.1's rule as minivgg.optim.ReduceLROnPlateau applies it (mode max,
    absolute threshold 1e-4, a cap on the number of reductions)."""

    def __init__(self, patience, max_reductions, threshold=1e-4):
        self.patience, self.cap, self.threshold = patience, max_reductions, threshold
        self.best, self.bad, self.reductions = None, 0, 0

    def step(self, value):
        if self.best is None or value > self.best + self.threshold:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience and self.reductions < self.cap:
            self.bad = 0
            self.reductions += 1
            return True
        return False


def torch_error(torch, model, loader):
    model.eval()
    wrong = seen = 0
    with torch.no_grad():
        for x, y in loader:
            pred = model(torch.from_numpy(x)).argmax(1).numpy()
            wrong += int((pred != y).sum())
            seen += len(y)
    model.train()
    return 100.0 * wrong / seen


def run_torch(args):
    import torch

    from minivgg.data import DataLoader, compute_mean_rgb, eval_transform, parse_scale, \
        train_transform

    default_threads = torch.get_num_threads()  # before anything can change it
    rp, prof, r, drop, train, val, test = cell_setup(args)
    torch.set_num_threads(default_threads)
    torch.manual_seed(r.seed)
    model = torch_vgg(torch, r.cfg, r.width_mult, r.resolved_fc_width(), len(train.classes),
                      r.crop, r.dropout, r.init, r.init_std, r.fc_bias)
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum,
                          weight_decay=r.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    plateau = Plateau(r.patience, r.max_lr_drops)
    mean = compute_mean_rgb(train, None, progress=False)
    scale = parse_scale(r.scale)
    # The Trainer's loaders, argument for argument: the same batches in the same order.
    train_loader = DataLoader(train, r.batch_size, train_transform(r.crop, scale, mean),
                              shuffle=True, seed=r.seed)
    val_loader = DataLoader(val, max(r.batch_size, 64), eval_transform(r.crop, scale, mean),
                            shuffle=False, seed=r.seed)
    test_loader = DataLoader(test, 64, eval_transform(r.crop, scale, mean), shuffle=False)
    clock, curve, step = Clock(), [], 0
    model.train()
    clock.start()
    for epoch in range(r.epochs):
        if 0 < drop == epoch:  # the profile's fixed drop, after epoch ``drop``
            for g in opt.param_groups:
                g["lr"] = r.lr * 0.1
        train_loader.set_epoch(epoch)
        for x, y in train_loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            step += 1
            clock.step_done()
            if args.eval_every and step % args.eval_every == 0:
                curve.append({"step": step, "train_s": clock.total,
                              "val_top1": torch_error(torch, model, val_loader)})
                clock.start()
        err = torch_error(torch, model, val_loader)
        if curve and curve[-1]["step"] == step:
            curve[-1]["epoch"] = epoch + 1
        else:
            curve.append({"step": step, "train_s": clock.total, "val_top1": err,
                          "epoch": epoch + 1})
        if plateau.step(1.0 - err / 100):
            for g in opt.param_groups:
                g["lr"] *= 0.1
        clock.start()
    return {"framework": "torch", "threads": [torch.get_num_threads()], "curve": curve,
            "final_val_top1": curve[-1]["val_top1"],
            "final_test_top1": torch_error(torch, model, test_loader), "epochs": r.epochs,
            "train_s": clock.total, "steps": step,
            "params": int(sum(p.numel() for p in model.parameters())),
            "torch": torch.__version__}


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------

def time_to(curve, target):
    """(training seconds, step) of the first validation at or below ``target`` %, or None."""
    for point in curve:
        if point["val_top1"] <= target:
            return point["train_s"], point["step"]
    return None


def report(results, args):
    """The Markdown table of both runs."""
    lines = [f"| framework | threads | parameters | training time to {args.target:g}% val "
             f"top-1 (s) | at step | total training time (s) | final val top-1 (%) | "
             f"final test top-1 (%) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        hit = time_to(r["curve"], args.target)
        lines.append(f"| {r['framework']} | {'/'.join(map(str, r['threads']))} | "
                     f"{r['params']:,} | {'not reached' if hit is None else f'{hit[0]:.0f}'} | "
                     f"{'—' if hit is None else hit[1]} | {r['train_s']:.0f} | "
                     f"{r['final_val_top1']:.1f} | {r['final_test_top1']:.1f} |")
    hits = [time_to(r["curve"], args.target) for r in results]
    if all(hits):
        lines.append(f"\nminivgg needed {hits[0][0] / hits[1][0]:.2f}x PyTorch's training time "
                     f"to reach {args.target:g}%.")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="cifar10:DIR or imagefolder:DIR")
    p.add_argument("--profile", default="cifar", help="the reproduction profile (default cifar)")
    p.add_argument("--cell", default="A", help="the net (default A)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=40.0,
                   help="validation top-1 error (%%) to reach (default 40)")
    p.add_argument("--eval-every", type=int, default=50,
                   help="validate every N steps (0: at epoch ends only)")
    p.add_argument("--only", choices=FRAMEWORKS, default=None, help="run one framework only")
    p.add_argument("--out", default=None, help="folder for the runs and JSON (default: a "
                                               "temporary folder)")
    p.add_argument("--write-md", default=None, help="replace this section of a Markdown file")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        result = (run_minivgg if args.worker == "minivgg" else run_torch)(args)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return 0
    if not (args.data.startswith("cifar10:") or args.data.startswith("imagefolder:")):
        p.error(f"--data {args.data!r}: real images are needed: cifar10:DIR or imagefolder:DIR")
    if not 0 < args.target < 100:
        p.error(f"--target must be a top-1 error in (0, 100) %, got {args.target}")
    from benchmarks.common import command_line, load_average, machine, today, write_section
    out = args.out or tempfile.mkdtemp(prefix="time_to_accuracy_")
    os.makedirs(out, exist_ok=True)
    load_start = load_average()
    results = []
    for fw in ([args.only] if args.only else FRAMEWORKS):
        path = os.path.join(out, f"{fw}.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", fw, "--json", path,
               "--data", args.data, "--profile", args.profile, "--cell", args.cell,
               "--seed", str(args.seed), "--eval-every", str(args.eval_every),
               "--out", os.path.join(out, fw)]
        print(f"training {args.cell} seed {args.seed} ({args.profile} profile) with {fw} ...",
              flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        with open(path, encoding="utf-8") as f:
            results.append(json.load(f))
        print(f"  {fw}: {time.perf_counter() - t0:.0f} s in all", flush=True)
    table = report(results, args)
    print(table)
    with open(os.path.join(out, "time_to_accuracy.json"), "w", encoding="utf-8") as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("worker", "json")},
                   "results": results}, f, indent=1)
    if args.write_md:
        # The folders of this machine are written DIR and OUT.
        command = command_line(argv and [__file__] + list(argv))
        data = args.data
        for path, name in ((args.data.partition(":")[2], "DIR"), (args.out, "OUT")):
            if path:
                pattern = re.escape(path.rstrip("/")) + r"(?=[/\s`']|$)"
                command, data = re.sub(pattern, name, command), re.sub(pattern, name, data)
        text = (f"{METHOD}\nMeasured by `{command}` (DIR: the folder of the data set) on "
                f"{today()}: {machine(load=False)}; load average {load_start} at the start, "
                f"{load_average()} at the end.\n\nCell {args.cell}, seed {args.seed} of "
                f"`examples/reproduce_paper.py --profile {args.profile}` on `{data}`, "
                f"validated every {args.eval_every} steps (single centre crop, the clock "
                f"stopped).\n\n{table}\n")
        write_section(args.write_md, "Time to accuracy against PyTorch", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
