"""Keeping freed memory in the process, so that big arrays cost no page faults.

A training step on the CPU allocates and frees the same big arrays every
time: each layer's output and gradient, 3 to 103 MB each for VGG at
224x224, batch 8. glibc's malloc serves every block above its mmap
threshold (128 KiB, rising by itself to at most 32 MiB) with fresh pages
from the kernel and hands them back when the block is freed, so every step
pays a page fault for every 4 KiB (or 2 MiB) of them again, and the kernel
zeroes each page first. On the project's virtual machine that was 0.15 s of
system time per VGG-A step at 224x224, batch 8 (18,000 faults a step).

``keep_freed_memory()`` raises both thresholds (``mallopt``): blocks come
from malloc's heap, and freed ones stay in the process for the next step
to reuse. It changes the whole process's allocator (a setting of the C
library, not of NumPy), and the process keeps its peak memory until it
exits; so the library never does it on import. ``Trainer`` calls it when
``Recipe.keep_freed_memory`` is on (the default), as do the command-line
programs and the benchmarks; ``release_freed_memory()`` puts the
thresholds back to glibc's defaults. Elsewhere than glibc (macOS, musl)
both are no-ops that return False.
"""
import ctypes

__all__ = ["keep_freed_memory", "release_freed_memory", "keeping"]

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest value mallopt takes (an int): blocks up to 2 GiB come from the heap.
_KEEP = 2 ** 31 - 1
#: glibc's documented defaults for both thresholds.
_DEFAULT = 128 * 1024

_state = {"keeping": False}


def _glibc():
    """The C library when it is glibc (it has mallopt and says its version), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def _set(mmap_threshold, trim_threshold):
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1 and ok
    return ok


def keep_freed_memory():
    """Serve blocks up to 2 GiB from malloc's heap and never hand freed
    memory back to the kernel. Returns True when glibc took both settings."""
    _state["keeping"] = _set(_KEEP, _KEEP)
    return _state["keeping"]


def release_freed_memory():
    """glibc's default thresholds again (128 KiB, fixed): big blocks are
    mapped and unmapped as before. Returns True when glibc took them."""
    ok = _set(_DEFAULT, _DEFAULT)
    if ok:
        _state["keeping"] = False
        _glibc().malloc_trim(0)    # and hand back what is free now
    return ok


def keeping():
    """True while keep_freed_memory() is in effect in this process."""
    return _state["keeping"]
