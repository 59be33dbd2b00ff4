"""How many CPU threads minivgg's work uses (``--threads``), and how the
work of one op is shared among them.

The team. minivgg's CPU work is split by minivgg itself: an op cuts its
work into *tasks* (blocks of images, bands of rows, positions of a
Winograd tile, slices of an array) and ``parallel`` runs them on a team of
``threads()`` threads, the calling thread one of them; NumPy releases the
GIL in its copies, ufuncs and BLAS calls, so the tasks really run side by
side. Inside the fast tier's ops BLAS runs every call on one thread
(``serial_blas``): a big product is cut into tasks like the rest, and the
many small products of a layer (Winograd's 36 per block) run side by side
instead of each waking BLAS's own threads.

Determinism. How an op cuts its work depends on the shapes alone, never on
the number of threads; the threads only decide who runs which task, and
sums over tasks are added in task order. OpenBLAS's own threads are left
out because they are not deterministic: it rounds some products
differently with one thread and with two (a 1000 x 1000 x 1000 sgemm, in
OpenBLAS 0.3.31). So a training run gives the same weights bit for bit
whatever ``--threads`` says (tests/test_threads.py).

How many. Both BLAS's threads (for NumPy code outside minivgg's ops) and
minivgg's team default to one per core. When the cores are shared, by
data-parallel ranks on one machine or by other programs, too many threads
contend for them and everything slows down far more than the share of
the cores would explain: ``set_threads(n)`` caps both at ``n``. BLAS is
capped through threadpoolctl, which works after NumPy is loaded
(environment variables such as OMP_NUM_THREADS do not).

``--threads 0`` (the default) chooses by itself, before each epoch: from
how many CPUs other programs kept busy during the previous epoch
(``OtherWork``), it takes what they left free, at least one thread and at
most its share of the cores (ranks of one run on one machine split them). A
team that keeps two threads on two cores that other programs also want
spends most of its time waiting for the slower thread (measured in
docs/benchmarks.md, "Threads on a shared machine").
"""
import argparse
import ctypes
import functools
import os
import threading
import time

_limit = None      # None: one thread per core
_blas_limiter = None
_team = None
_local = threading.local()      # .inside: this thread is running a task of the team


def cores():
    """CPUs this process may run on (the affinity mask, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads():
    """The number of threads minivgg's CPU work may use now."""
    return _limit or cores()


# -- the team -------------------------------------------------------------------------------------

class _Job:
    """One call of ``parallel``: tasks 0..count-1 handed out in order to
    whichever thread asks next (an iterator shared by the threads: the GIL
    makes each ``next`` atomic)."""

    def __init__(self, fn, count):
        self.fn, self.tasks = fn, iter(range(count))
        self.errors = []

    def work(self):
        for i in self.tasks:
            if self.errors:         # a task failed: the others are not started
                break
            try:
                self.fn(i)
            except BaseException as e:  # re-raised by the calling thread
                self.errors.append((i, e))


class _Team:
    """``size - 1`` worker threads that run, with the calling thread, the
    tasks of one job at a time. Each worker sleeps on a lock of its own
    until a job is posted, and hands back a second lock when it is done: no
    Python-level queue, so a job costs a few microseconds to start."""

    def __init__(self, size):
        self.size = size
        self.busy = threading.Lock()        # one job at a time; others run inline
        self.job = None
        self.wake = [threading.Lock() for _ in range(size - 1)]
        self.done = [threading.Lock() for _ in range(size - 1)]
        for lock in self.wake + self.done:
            lock.acquire()
        self.workers = [threading.Thread(target=self._serve, args=(i,), daemon=True,
                                         name=f"minivgg-{i + 1}") for i in range(size - 1)]
        for t in self.workers:
            t.start()

    def _serve(self, i):
        _local.inside = True
        while True:
            self.wake[i].acquire()
            job = self.job
            if job is None:         # close()
                return
            job.work()
            self.done[i].release()

    def run(self, fn, count):
        job = _Job(fn, count)
        helpers = min(self.size - 1, count - 1)
        self.job = job
        for i in range(helpers):
            self.wake[i].release()
        _local.inside = True
        try:
            job.work()
        finally:
            _local.inside = False
            for i in range(helpers):
                self.done[i].acquire()
            self.job = None
        if job.errors:
            raise min(job.errors, key=lambda e: e[0])[1]

    def close(self):
        with self.busy:
            self.job = None
            for lock in self.wake:
                lock.release()


def _reset_after_fork():
    """A forked child (a loader worker) has none of the parent's threads."""
    global _team
    _team = None
    _local.inside = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _current_team():
    global _team
    n = threads()
    if _team is None or _team.size != n:
        if _team is not None:
            _team.close()
        _team = _Team(n)
    return _team


def parallel(fn, count):
    """Run fn(i) for i in 0..count-1, on the team of ``threads()`` threads
    (the calling thread one of them), and return when all are done. Tasks
    start in order of i, each on whichever thread is free; an exception in
    one is re-raised here (that of the lowest i) after the others end.
    Inside a task, or with one thread or one task, everything runs here in
    order: nested calls never wait for each other. fn(i) must write
    disjoint results (or per-thread scratch, see fast/winograd.scratch):
    which thread runs a task must not change a number."""
    if count <= 0:
        return
    if count == 1 or threads() < 2 or getattr(_local, "inside", False):
        for i in range(count):
            fn(i)
        return
    team = _current_team()
    if not team.busy.acquire(blocking=False):   # another program thread holds the team
        for i in range(count):
            fn(i)
        return
    try:
        team.run(fn, count)
    finally:
        team.busy.release()


def ranges(total, count):
    """[(a, b)]: 0..total cut into ``count`` ranges (at most ``total``)
    whose lengths differ by one at most, the longer first."""
    count = max(1, min(count, total))
    q, r = divmod(total, count)
    out, a = [], 0
    for i in range(count):
        b = a + q + (i < r)
        out.append((a, b))
        a = b
    return out


def parallel_ranges(fn, total, count):
    """fn(a, b) over ``ranges(total, count)`` on the team (``parallel``)."""
    parts = ranges(total, count)
    parallel(lambda i: fn(*parts[i]), len(parts))


#: Tasks an op aims for when it cuts work that any cut leaves exact
#: (elementwise passes, copies): a few per thread evens out the threads'
#: speeds without costing much per task.
TASKS_PER_THREAD = 2


def side_by_side(tasks):
    """True when an op with ``tasks`` independent pieces (blocks of a
    layer, of about equal sizes) should run whole pieces on the threads
    side by side, each one start to end in its thread's cache: a few per
    thread, or one or more each; False when there are too few to keep the
    threads evenly busy, and each piece is to be split inside
    instead (its copies, transforms and products cut over the threads).
    Either way the same arithmetic runs, so the choice may depend on the
    thread count."""
    n = threads()
    return tasks >= TASKS_PER_THREAD * n or (tasks >= n and tasks % n == 0)


def over_blocks(run, count):
    """run(j) for the blocks j = 0..count-1 of a layer: whole blocks on the
    threads side by side when there are enough of them (``side_by_side``),
    else one after another, each block's own passes split over the threads
    inside (calls of ``split`` or ``parallel`` in ``run``, which run
    inline in the first case)."""
    if side_by_side(count):
        parallel(run, count)
    else:
        for j in range(count):
            run(j)


def sum_in_order(parts, out=None):
    """out = parts[0] + parts[1] + ... added in that order, element by
    element (so the same numbers whatever the thread count), the elements
    cut over the threads. ``out`` may be parts[0]. parts: arrays of one shape."""
    import numpy as np
    out = np.empty_like(parts[0]) if out is None else out
    in_place = out is parts[0]
    flat = [p.reshape(-1) for p in parts]
    o = out.reshape(-1)

    def part(a, b):
        if not in_place:
            np.copyto(o[a:b], flat[0][a:b])
        for p in flat[1:]:
            o[a:b] += p[a:b]
    split(part, o.size, o.size * len(parts))
    return out


#: Elements below which ``split`` keeps work on the calling thread: a hand-off
#: to another thread, and the GIL it takes back and forth between NumPy's
#: calls, cost more than a pass over fewer numbers gains (measured in
#: docs/benchmarks.md, "Threads: where a training step's time goes").
SPLIT_MIN = 1 << 17


def split(fn, total, size, min_size=None):
    """Run fn(a, b) over [0, total) cut into a few ranges per thread, on the
    team, when the work is worth a hand-off (``size``, its elements, at
    least ``min_size``, by default SPLIT_MIN); else fn(0, total) here. For work whose result does
    not depend on the cut (copies, elementwise passes, per-column
    transforms): the ranges depend on the thread count. Each range runs in
    one thread, so fn may keep per-thread scratch."""
    n = threads()
    if (n < 2 or size < (SPLIT_MIN if min_size is None else min_size) or total < 2
            or getattr(_local, "inside", False)):
        fn(0, total)
        return
    parallel_ranges(fn, total, n * TASKS_PER_THREAD)


def split_copy(dst, src, min_size=None):
    """dst[...] = src for NumPy arrays, cut along the first axis of dst
    longer than one into ranges (see split): the strided copies of im2col,
    Winograd's gathers and the layout changes."""
    import numpy as np
    axis = 0 if dst.shape[0] > 1 or dst.ndim == 1 else 1
    lead = (slice(None),) * axis

    def part(a, b):
        np.copyto(dst[lead + (slice(a, b),)], src[lead + (slice(a, b),)])
    split(part, dst.shape[axis], dst.size, min_size)


# -- BLAS on one thread inside minivgg's ops -------------------------------------------------------

_blas = None        # [(get, set)]: the thread-count functions of NumPy's BLAS libraries
_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = []


def _blas_functions():
    """[(get, set)] for each BLAS library NumPy loaded: OpenBLAS's own C
    functions, called through ctypes (a fraction of a microsecond, so every
    op can switch), else threadpoolctl's methods."""
    global _blas
    if _blas is None:
        _blas = []
        try:
            from threadpoolctl import ThreadpoolController
            libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except Exception:   # threadpoolctl missing or unable to read the libraries
            libs = []
        for c in libs:
            try:
                get = getattr(c.dynlib, c._get_symbol("openblas_get_num_threads"))
                put = getattr(c.dynlib, c._get_symbol("openblas_set_num_threads"))
                put.argtypes, put.restype = [ctypes.c_int], None
                get.argtypes, get.restype = [], ctypes.c_int
            except Exception:   # not OpenBLAS (MKL, BLIS): threadpoolctl's way
                get, put = c.get_num_threads, c.set_num_threads
            _blas.append((get, put))
    return _blas


class _SerialBlas:
    """Context manager: BLAS runs each call on one thread inside it (the
    team does the splitting); the thread counts are put back on leaving
    the outermost one."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                _blas_saved = []
                for get, put in _blas_functions():
                    n = get()
                    if n != 1:
                        put(1)
                        _blas_saved.append((put, n))
            _blas_depth += 1
        return self

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for put, n in _blas_saved:
                    put(n)
        return False


_SERIAL_BLAS = _SerialBlas()


def serial_blas(method=None):
    """``with serial_blas():`` BLAS runs each call on one thread in the
    block; as a decorator, around every call of ``method`` (the fast tier's
    forward and backward)."""
    if method is None:
        return _SERIAL_BLAS

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with _SERIAL_BLAS:
            return method(*args, **kwargs)
    return wrapped


def set_threads(n):
    """Use at most ``n`` threads for BLAS and for minivgg's team (None or 0: all cores)."""
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
