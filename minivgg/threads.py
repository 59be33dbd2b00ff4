"""How many CPU threads minivgg's work uses.

Two kinds of threads do the CPU work of a step: the BLAS library's (the
GEMMs) and minivgg's own copy threads (im2col's big copies, see
functional/conv.py). Both default to one per core. When the cores are
shared, by data-parallel ranks on one machine or by other programs, too
many threads contend for them and everything slows down far more than the
share of the cores would explain: ``set_threads(n)`` caps both at ``n``.
BLAS is capped through threadpoolctl, which works after NumPy is loaded
(environment variables such as OMP_NUM_THREADS do not).
"""
import os
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
