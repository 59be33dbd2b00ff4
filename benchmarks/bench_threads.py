"""Training speed on a shared machine: one epoch of the default run (VGG-A,
32x32, batch 64; 3,200 images here to keep it short) alone, and next to two
other CPU-bound processes, with the thread policy (--threads 0, the default),
with the number of threads fixed to the number of cores (what BLAS does by
itself) and with one thread. The target: loaded at most 3x the idle time (a fair share of
the cores would make it 2x on two cores with two other processes).

    python benchmarks/bench_threads.py [--train-size 3200] [--write-md docs/benchmarks.md]

Run it on an otherwise idle machine: "idle" must be idle.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import command_line, load_average, machine, today, write_section  # noqa: E402

HOG = "while True: pass"


def epoch_seconds(threads, train_size):
    with tempfile.TemporaryDirectory() as out:
        res = subprocess.run(
            [sys.executable, os.path.join(ROOT, "examples", "train_vgg.py"), "--cfg", "A",
             "--epochs", "1", "--train-size", str(train_size), "--val-size", "500",
             "--threads", str(threads), "--no-progress", "--out", out],
            cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        if res.returncode != 0:
            raise SystemExit(res.stderr[-2000:])
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return json.loads(f.readline())["time_s"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-size", type=int, default=3200)
    p.add_argument("--write-md", default=None)
    a = p.parse_args(argv)
    cores = os.cpu_count() or 1
    load = load_average()
    rows = {}
    policies = (("--threads 0 (the policy)", 0), (f"--threads {cores} (fixed)", cores),
                ("--threads 1 (fixed)", 1))
    for policy, threads in policies:
        rows[policy] = [epoch_seconds(threads, a.train_size)]
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        for policy, threads in policies:
            rows[policy].append(epoch_seconds(threads, a.train_size))
    finally:
        for h in hogs:
            h.kill()
    lines = [f"Machine: {machine(load=False)}; load average before {load}. Date: {today()}. "
             f"Command: `{command_line()}`.", "",
             f"One epoch of the default run on {a.train_size:,} images (training time only; "
             f"'against one thread': the one-thread epoch's time over this one's):", "",
             "| threads | idle (s) | against one thread, idle | with 2 busy processes (s) | "
             "loaded / idle |",
             "| --- | ---: | ---: | ---: | ---: |"]
    one = rows["--threads 1 (fixed)"][0]
    for policy, (idle, loaded) in rows.items():
        lines.append(f"| {policy} | {idle:.1f} | {one / idle:.2f}x | {loaded:.1f} | "
                     f"{loaded / idle:.1f}x |")
    text = "\n".join(lines)
    print(text)
    if a.write_md:
        write_section(a.write_md, "Threads on a shared machine", text)


if __name__ == "__main__":
    main()
