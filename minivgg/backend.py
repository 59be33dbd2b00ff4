"""Backend switch: NumPy on the CPU, CuPy on the GPU.

Every op asks ``get_array_module(x)`` once and uses the returned module
(``xp``) for all array work, so the same forward/backward code runs on both
backends. CuPy is optional: when it is missing, everything here still imports
and ``cupy_available()`` is False.
"""
import numpy as np

try:  # pragma: no cover - depends on the machine
    import cupy as _cupy
    try:
        _CUPY_OK = _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        _CUPY_OK = False
except Exception:  # ImportError, or a broken CUDA install
    _cupy = None
    _CUPY_OK = False


def cupy_available():
    """True when CuPy imports and sees at least one GPU."""
    return _CUPY_OK


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_cupy_array(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def as_numpy(a):
    """A NumPy copy (or the array itself) of a NumPy/CuPy array or scalar."""
    if is_cupy_array(a):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def as_cupy(a):
    """Move an array to the current GPU; raises if CuPy is unusable."""
    if not _CUPY_OK:
        raise RuntimeError("CuPy with a working GPU is required to move arrays to the GPU; "
                           "install the 'gpu' extra on a machine with CUDA")
    return _cupy.asarray(a)


def to_device(a, device):
    """Move an array to ``device`` ('cpu' or 'cuda')."""
    if device == "cpu":
        return as_numpy(a)
    if device in ("cuda", "gpu"):
        return as_cupy(a)
    raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")
