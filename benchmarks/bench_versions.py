"""Two (or more) versions of minivgg side by side: did a change make the
training step slower, or faster?

    python benchmarks/bench_versions.py 47ccc55 HEAD                  # two commits
    python benchmarks/bench_versions.py --dirs /src/old /src/new      # two checkouts
    python benchmarks/bench_versions.py A B --threads 1,2 --rounds 3 --cases 32,224

Each commit is written out with ``git archive`` into a temporary folder (the
working tree is not touched). Each measurement is a fresh process that imports
that version's minivgg and times VGG-A training steps (forward, backward, SGD
with momentum 0.9 and weight decay 5e-4, 10 classes) on random inputs: the best
of N steps after two warm-up steps, freed memory kept in the process as
minivgg's Trainer keeps it. The versions alternate within a round, their order
reversed every other round, so a drift of the machine's speed during the run
falls on all of them alike. Reported: the best over the rounds, and each
version's time over the first's.

Cases (``--cases``, comma-separated): default (the default example's model:
widths x0.25, FC 128, 32x32, batch 64), 32 (full width, FC 4096, 32x32, batch
64), 224 (full width, FC 4096, 224x224, batch 8), or SIZE:BATCH:FC:STEPS:WIDTH.

Run it on an otherwise idle machine.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (OPENBLAS_OVERRIDES, command_line, load_average, machine, today,  # noqa: E402
                    write_section)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {"default": (32, 64, 128, 20, 0.25), "32": (32, 64, 4096, 5, 1.0),
         "224": (224, 8, 4096, 3, 1.0)}

# Run in a fresh process with one version's minivgg first on sys.path; it uses
# only names every version since the first fast tier has.
CHILD = r"""
import sys, time
import numpy as np
import minivgg
from minivgg import Tensor, functional as F, memory
from minivgg.models import vgg
from minivgg.optim import SGD
from minivgg.threads import set_threads
size, batch, fc, steps = (int(v) for v in sys.argv[1:5])
width, threads = float(sys.argv[5]), int(sys.argv[6])
memory.keep_freed_memory()
set_threads(threads)
minivgg.manual_seed(0)
model = vgg("A", num_classes=10, input_size=size, fc_width=fc, width_mult=width,
            init="kaiming", seed=0)
opt = SGD(model.parameters(), 1e-4, 0.9, 5e-4)
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
y = rng.integers(0, 10, batch)
def step():
    loss = F.softmax_cross_entropy(model(Tensor(x)), y)
    opt.zero_grad(); loss.backward(); opt.step()
step(); step()
walls = []
for _ in range(steps):
    t0 = time.perf_counter(); step(); walls.append(time.perf_counter() - t0)
print(min(walls))
"""


def parse_case(text):
    if text in CASES:
        return text, CASES[text]
    try:
        size, batch, fc, steps, width = text.split(":")
        spec = (int(size), int(batch), int(fc), int(steps), float(width))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"case {text!r}: expected one of {', '.join(CASES)} or SIZE:BATCH:FC:STEPS:WIDTH "
            f"(e.g. 32:64:128:20:0.25)") from None
    if min(spec[:4]) < 1 or spec[4] <= 0:
        raise argparse.ArgumentTypeError(f"case {text!r}: every number must be positive")
    return text, spec


def archive(commit, into):
    """``git archive`` of ``commit`` into the folder ``into``; its short hash."""
    try:
        short = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", commit], check=True,
                               capture_output=True, text=True).stdout.strip()
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"bench_versions.py: {commit!r} is not a commit of {ROOT}: "
                         f"{e.stderr.strip()}") from None
    os.makedirs(into)
    tar = subprocess.Popen(["git", "-C", ROOT, "archive", short], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", into], stdin=tar.stdout, check=True)
    if tar.wait() != 0:
        raise SystemExit(f"bench_versions.py: git archive {short} failed")
    return short


def step_time(src, spec, threads):
    size, batch, fc, steps, width = spec
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env["PYTHONPATH"] = src
    res = subprocess.run([sys.executable, "-c", CHILD, str(size), str(batch), str(fc),
                          str(steps), str(width), str(threads)], cwd=src, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench_versions.py: the step failed in {src}:\n{res.stderr[-2000:]}")
    return float(res.stdout.split()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commits", nargs="*", help="two or more commits of this repository")
    p.add_argument("--dirs", nargs="+", default=[], help="checkouts to compare instead of "
                                                         "commits")
    p.add_argument("--cases", default="default,32,224", help="comma-separated (see above)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--write-md", default=None, metavar="PATH")
    args = p.parse_args(argv)
    if bool(args.commits) == bool(args.dirs):
        p.error("give two or more commits, or --dirs with two or more checkouts")
    names = args.commits or args.dirs
    if len(names) < 2:
        p.error(f"nothing to compare: {len(names)} version given, expected two or more")
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    try:
        cases = [parse_case(c) for c in args.cases.split(",") if c]
        threads = [int(t) for t in args.threads.split(",") if t]
    except (argparse.ArgumentTypeError, ValueError) as e:
        p.error(str(e))
    if not threads or min(threads) < 1:
        p.error(f"--threads: positive counts expected, got {args.threads!r}")
    tmp = tempfile.mkdtemp(prefix="bench_versions_")
    try:
        if args.commits:
            srcs, labels = [], []
            for i, c in enumerate(args.commits):
                labels.append(archive(c, os.path.join(tmp, str(i))))
                srcs.append(os.path.join(tmp, str(i)))
        else:
            missing = [d for d in args.dirs if not os.path.isdir(os.path.join(d, "minivgg"))]
            if missing:
                p.error(f"not a minivgg checkout (no minivgg/ in it): {', '.join(missing)}")
            srcs, labels = [os.path.abspath(d) for d in args.dirs], list(args.dirs)
        load_before = load_average()
        best = {}
        for r in range(args.rounds):
            for name, spec in cases:
                for t in threads:
                    order = range(len(srcs)) if r % 2 == 0 else reversed(range(len(srcs)))
                    for v in order:
                        s = step_time(srcs[v], spec, t)
                        key = (name, t, v)
                        best[key] = min(best.get(key, s), s)
                        print(f"round {r + 1} | case {name} | {t} thread(s) | {labels[v]} | "
                              f"{s:.4f} s/step | load {load_average()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    head = (["case", "threads"] + [f"{lab} s/step" for lab in labels]
            + [f"{lab} / {labels[0]}" for lab in labels[1:]])
    rows = []
    for name, spec in cases:
        for t in threads:
            times = [best[(name, t, v)] for v in range(len(srcs))]
            rows.append([f"{name} ({spec[0]}x{spec[0]}, batch {spec[1]}, FC {spec[2]}, "
                         f"widths x{spec[4]:g})", str(t)] + [f"{x:.4g}" for x in times]
                        + [f"{x / times[0]:.2f}" for x in times[1:]])
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    text = (f"Measured by `benchmarks/bench_versions.py` on {today()}; machine: "
            f"{machine(load=False)}; load average before the run {load_before}, after "
            f"{load_average()}.\n\nCommand: `{command_line(argv)}`\n\nVGG-A training steps "
            f"(forward, backward, SGD), each version in fresh processes, alternated over "
            f"{args.rounds} round(s); best over the rounds of each round's best step, in "
            f"seconds; a ratio below 1: faster than {labels[0]}.\n\n{table}\n")
    print("\n" + text)
    if args.write_md:
        write_section(args.write_md, "Versions side by side", text)
        print(f"wrote the '## Versions side by side' section of {args.write_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
