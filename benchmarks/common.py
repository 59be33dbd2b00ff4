"""Shared pieces of the benchmark scripts: machine description, timing, and
writing one section of docs/benchmarks.md."""
import datetime
import os
import platform
import re
import shlex
import sys
import time


def cpu_name():
    """The CPU model (platform.processor() is empty on most Linux systems)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average(default="n/a"):
    """The 1, 5 and 15 minute load averages as "a, b, c", or ``default`` where unavailable."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return default


# Set by some machines' administrators because older OpenBLAS builds crash or
# compute wrong results on their processors; a current NumPy's OpenBLAS runs
# its own (faster) choice of kernels correctly without them.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_line():
    """NumPy's BLAS, the kernels it runs, and any OPENBLAS_CORETYPE override."""
    try:
        from threadpoolctl import threadpool_info
        libs = [f"{d['internal_api']} {d.get('version')} ({d.get('architecture')} kernels)"
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        libs = ["unknown"]
    env = os.environ.get("OPENBLAS_CORETYPE")
    return (f"NumPy's BLAS: {', '.join(libs)}" +
            (f", OPENBLAS_CORETYPE={env} set in the environment" if env
             else ", kernels of OpenBLAS's own choice"))


def machine(load=True):
    """One line: CPU, cores, OS, Python and library versions, NumPy's BLAS
    kernels, load average.

    load=False leaves the load average out (for scripts that report their own,
    e.g. before and after the run)."""
    import numpy as np
    parts = [f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} logical CPUs",
             f"{platform.system()} {platform.release()}", f"Python {platform.python_version()}",
             f"numpy {np.__version__}"]
    try:
        import torch
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    parts.append(blas_line())
    avg = load_average(None) if load else None
    if avg is not None:
        parts.append(f"load average at start {avg}")
    return "; ".join(parts)


def thread_counts_arg(text):
    """``--threads`` of the benchmarks: comma-separated counts, 0 for the
    machine's default (one per core); by default "0,1", the default first."""
    try:
        counts = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        counts = [-1]
    if not counts or any(c < 0 for c in counts):
        import argparse
        raise argparse.ArgumentTypeError(f"--threads takes counts >= 0 separated by commas "
                                         f"(0: one per core), got {text!r}")
    from minivgg.threads import cores
    out = []
    for c in counts:
        c = c or cores()
        if c not in out:
            out.append(c)
    return out


def threads_label(n):
    return f"{n} thread" + ("s" if n != 1 else "")


def use_threads(n, torch=None):
    """n threads for minivgg (its team and BLAS) and, if given, PyTorch."""
    from minivgg.threads import set_threads
    set_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def add_freed_memory_flag(p):
    """--release-freed-memory, as the step benchmarks spell it."""
    p.add_argument("--release-freed-memory", action="store_true",
                   help="leave glibc's allocator as it is (by default freed memory is kept in "
                        "the process, as minivgg's Trainer does, for both frameworks)")


def today():
    return datetime.date.today().isoformat()


def command_line(argv=None):
    """The command that ran this script, ``argv`` (default sys.argv) shell-quoted.

    Where the OpenBLAS overrides are absent, the command says to unset them:
    that reproduces the run on a machine that sets them, and is harmless on
    one that does not."""
    cmd = "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else argv))
    if not any(v in os.environ for v in OPENBLAS_OVERRIDES):
        cmd = "env " + " ".join(f"-u {v}" for v in OPENBLAS_OVERRIDES) + " " + cmd
    return cmd


def best_time(fn, repeats=3, warmup=1):
    """Smallest wall time of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def interleaved_best(fns, repeats=5, warmup=1):
    """Best wall time of each function, their runs interleaved (a, b, a, b, ...).

    On a shared or virtual machine the speed drifts over seconds; alternating
    the contestants exposes both to the same drift, so their ratio is fairer
    than timing one after the other.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def interleaved_best_cpu(fns, repeats=5, warmup=1):
    """Like interleaved_best, but also the best CPU time of this process per
    function: ``(wall, cpu)``, two lists.

    With one thread, the CPU time is what a call costs one core, whatever
    else the machine is doing: on a shared machine the wall time also counts
    the slices other programs take from that core.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    wall, cpu = [float("inf")] * len(fns), [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[i] = min(wall[i], time.perf_counter() - t0)
            cpu[i] = min(cpu[i], time.process_time() - c0)
    return wall, cpu


def write_section(path, heading, text):
    """Replace (or append) the '## heading' section of the Markdown file ``path``."""
    old = "# Benchmarks\n"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = f"## {heading}\n\n" + text.strip("\n") + "\n\n"
    new = (pattern.sub(lambda m: section, old, count=1) if pattern.search(old)
           else old.rstrip("\n") + "\n\n" + section)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(new.rstrip("\n") + "\n")
