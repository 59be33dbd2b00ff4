"""How many CPU threads minivgg's work uses (``--threads``).

Two kinds of threads do the CPU work of a step: the BLAS library's (the
GEMMs) and minivgg's own copy threads (im2col's big copies, see
fast/conv.py). Both default to one per core. When the cores are
shared, by data-parallel ranks on one machine or by other programs, too
many threads contend for them and everything slows down far more than the
share of the cores would explain: ``set_threads(n)`` caps both at ``n``.
BLAS is capped through threadpoolctl, which works after NumPy is loaded
(environment variables such as OMP_NUM_THREADS do not).

``--threads 0`` (the default) chooses by itself, before each epoch: from
how many CPUs other programs kept busy during the previous epoch
(``OtherWork``), it takes what they left free, at least one thread and at
most its share of the cores (ranks of one run on one machine split them). A
BLAS that keeps two threads on two cores that other programs also want
spends most of its time waiting for the slower thread (measured in
docs/benchmarks.md, "Threads on a shared machine").
"""
import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

_limit = None      # None: one thread per core
_blas_limiter = None
_pool = None


def cores():
    """CPUs this process may run on (the affinity mask, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads():
    """The number of threads minivgg's CPU work may use now."""
    return _limit or cores()


def pool():
    """The shared pool of ``threads()`` worker threads for minivgg's own CPU
    work (big copies, Winograd transforms); rebuilt when the count changes."""
    global _pool
    n = threads()
    if _pool is None or _pool._max_workers != n:
        _pool = ThreadPoolExecutor(n, thread_name_prefix="minivgg")
    return _pool


def split(fn, total, size, min_size=1 << 15):
    """Run fn(a, b) over [0, total) cut into one range per thread, on the
    shared pool, when the work is worth a hand-off (``size``, its elements,
    at least ``min_size``); else fn(0, total) here. Each range runs in one
    thread, so fn may keep per-thread scratch; NumPy releases the GIL in
    its copies and ufuncs, so the ranges really run in parallel."""
    n = threads()
    if n < 2 or size < min_size or total < n:
        fn(0, total)
        return
    bounds = [total * i // n for i in range(n + 1)]
    jobs = [pool().submit(fn, a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    for j in jobs:
        j.result()


def split_copy(dst, src, min_size=1 << 15):
    """dst[...] = src for NumPy arrays, cut along the first axis of dst
    longer than one into one range per thread (see split): the strided
    copies of im2col, Winograd's gathers and the layout changes."""
    import numpy as np
    axis = 0 if dst.shape[0] > 1 or dst.ndim == 1 else 1
    lead = (slice(None),) * axis

    def part(a, b):
        np.copyto(dst[lead + (slice(a, b),)], src[lead + (slice(a, b),)])
    split(part, dst.shape[axis], dst.size, min_size)


def set_threads(n):
    """Use at most ``n`` threads for BLAS and for minivgg's copies (None or 0: all cores)."""
    global _limit, _blas_limiter
    if n is not None and (isinstance(n, bool) or int(n) != n or n < 0):
        raise ValueError(f"threads must be a whole number >= 0 (0: one per core), got {n!r}")
    _limit = int(n) or None if n is not None else None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it, only minivgg's own threads are capped
        return
    if _blas_limiter is not None:
        _blas_limiter.restore_original_limits()
        _blas_limiter = None
    if _limit is not None:
        _blas_limiter = threadpool_limits(limits=_limit, user_api="blas")


def _cpu_times():
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class OtherWork:
    """How many CPUs other programs kept busy since ``mark()``.

    The machine's busy time (/proc/stat) minus this process's own CPU time,
    over the wall time since the mark: an average over the whole stretch
    (an epoch), with no sampling pause and no feedback from this process's
    own threads.
    """

    def __init__(self):
        self.mark()

    def mark(self):
        self._t0, self._cpu0, self._own0 = time.monotonic(), _cpu_times(), time.process_time()

    def busy_cpus(self, min_seconds=0.05):
        """CPUs busy with other work since the mark, or None if unknown."""
        wall = time.monotonic() - self._t0
        cpu = _cpu_times()
        if cpu is None or self._cpu0 is None or wall < min_seconds:
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        machine = (cpu[0] - self._cpu0[0]) / hz
        own = time.process_time() - self._own0
        return max(0.0, (machine - own) / wall)


def auto_threads(other_work=None, share=1):
    """Threads for the next stretch of work: the cores other programs left
    free (``other_work.busy_cpus()``), split among ``share`` processes that
    run this code on the machine; at least 1, at most cores / share."""
    limit = max(1, cores() // share)
    busy = None if other_work is None else other_work.busy_cpus()
    if busy is None or share > 1:  # ranks of one run count each other as "other work"
        return limit
    return max(1, min(limit, int(cores() - busy + 0.5)))


def _threads_arg(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--threads must be >= 0 (0: the free cores), "
                                         f"got {text!r}")
    return n


def add_threads_flag(parser):
    """``--threads N`` for a program that is not the trainer (evaluation, classify);
    the program then calls ``apply_threads_flag`` once its inputs are loaded."""
    parser.add_argument("--threads", type=_threads_arg, default=0,
                        help="CPU threads for BLAS and minivgg's copies; 0 (default): the cores "
                             "other programs kept busy while this one loaded its inputs")


def apply_threads_flag(n, other_work):
    """Set ``--threads n``; 0 takes what other programs left free since
    ``other_work`` was marked (``auto_threads``, as the trainer does per
    epoch). Returns the number set."""
    n = n or auto_threads(other_work)
    set_threads(n)
    return n
