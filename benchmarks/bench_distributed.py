"""Data-parallel training on this machine's CPUs (§3.3): 1 and 2 MPI ranks.

For the default small profile (VGG-A at 32x32, a quarter of the widths, FC
128, global batch 64) and for the paper's widths at 32x32 (FC 4096, 41 M
parameters, batch 64), it measures with 1 rank and with 2 ranks (each with
half of every batch and half of the cores):

- the time of a training step (forward, backward, averaging, update);
- the time that step spent waiting for the gradient exchange, with the
  exchange overlapped with backward (buckets) and without (one allreduce
  after backward);
- a bare allreduce of the whole gradient buffer.

    python benchmarks/bench_distributed.py [--steps 8] [--write-md docs/benchmarks.md]

It starts ``mpiexec -n 1`` and ``mpiexec -n 2`` on itself (``--worker``).
Two ranks on two cores cannot be faster than one process using both cores
for its GEMMs: what this measures is the cost of the exchange and how much
of it overlapping hides, not a speed-up.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

PROFILES = {
    "small (width 1/4, FC 128)": dict(width_mult=0.25, fc_width=128),
    "paper widths (FC 4096)": dict(width_mult=1.0, fc_width=4096),
}


def worker(args):
    from minivgg.distributed import MPICommunicator
    from minivgg.train import Recipe, Trainer
    comm = MPICommunicator()
    out = {}
    for name, kw in PROFILES.items():
        for overlap in (True, False):
            tmp = tempfile.mkdtemp() if comm.rank == 0 else None
            tmp = comm.broadcast_object(tmp)
            r = Recipe(cfg="A", train_size=64 * (args.steps + 2), val_size=64, batch_size=64,
                       out=tmp, progress=False, overlap=overlap, seed=0, **kw)
            t = Trainer(r, comm=comm, log=lambda *a: None)
            t._setup()
            batches = iter(t.train_loader)
            x, y = next(batches)
            t.train_step(x, y)  # warm-up
            t.sync.finish_seconds = 0.0
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                t.train_step(x, y)
            step = (time.perf_counter() - t0) / args.steps
            waited = t.sync.finish_seconds / args.steps
            grad = t.optimizer.buffers().grad
            comm.barrier()
            t1 = time.perf_counter()
            for _ in range(3):
                comm.allreduce_mean(grad)
            bare = (time.perf_counter() - t1) / 3
            res = comm.world.gather((step, waited, bare))
            if comm.rank == 0:
                out[f"{name}|{overlap}"] = {
                    "step_s": max(v[0] for v in res), "wait_s": max(v[1] for v in res),
                    "allreduce_s": max(v[2] for v in res), "params": int(grad.size)}
                shutil.rmtree(tmp, ignore_errors=True)
    if comm.rank == 0:
        print("RESULT " + json.dumps(out))


def launch(ranks, steps):
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = beside if os.path.exists(beside) else shutil.which("mpiexec")
    res = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__),
                          "--worker", "--steps", str(steps)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    if res.returncode != 0:
        raise SystemExit(f"mpiexec -n {ranks} failed:\n{res.stderr[-3000:]}")
    line = next(l for l in res.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--write-md", default=None)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    from common import command_line, load_average, machine, today, write_section
    load_before = load_average()
    results = {n: launch(n, args.steps) for n in (1, 2)}
    lines = [f"Machine: {machine(load=False)}; load average before {load_before}, after "
             f"{load_average()}. Date: {today()}. Command: `{command_line()}`.", "",
             "| model | parameters | ranks | exchange | step (ms) | waiting for the exchange "
             "(ms) | bare allreduce of all gradients (ms) |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name in PROFILES:
        for n in (1, 2):
            for overlap in (True, False):
                r = results[n][f"{name}|{overlap}"]
                how = "-" if n == 1 else ("overlapped (buckets)" if overlap else "after backward")
                if n == 1 and not overlap:
                    continue
                lines.append(f"| {name} | {r['params'] / 1e6:.2f} M | {n} | {how} | "
                             f"{1e3 * r['step_s']:.1f} | {1e3 * r['wait_s']:.1f} | "
                             f"{1e3 * r['allreduce_s']:.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.write_md:
        write_section(args.write_md, "Data parallelism on the CPU (MPI)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
