"""Devices: where a tensor's data lives and which code computes on it.

Three kinds of device:

``cpu``
    NumPy arrays, NumPy code (the reference implementation of every op).
``cuda`` (``cuda:0``, ``cuda:1``, ...)
    CuPy arrays on an NVIDIA GPU; the ops run the CUDA kernels of
    ``kernels/*.cu`` (compiled with NVRTC through ``cupy.RawModule``) and
    cuBLAS for the matrix products.
``emu``
    NumPy arrays, but the ops run the *same* CUDA kernels, compiled by g++
    with a small header that emulates the CUDA built-ins, launched by the
    same Python code as on a GPU (see ``minivgg/cuda/emulator.py``). It
    lets a machine without a GPU check, read and step through every kernel.

An ``emu`` array is an ordinary NumPy array, so the type of an array cannot
tell the emulator from the CPU: every ``Tensor`` carries its ``Device``
explicitly, and each op picks its implementation from that tag
(``device.uses_kernels``), never from a global "current device".

CuPy is optional and imported lazily: importing minivgg never needs it, and
asking for ``cuda`` without it (or without a GPU) raises ``DeviceError``
saying what to install.
"""
import contextlib
import os
import shutil
import sys

import numpy as np


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or a device
    operation failed (out of memory, a failed kernel launch)."""


_CUPY_INSTALL_HINT = (
    "install the 'gpu' extra: pip install -e \".[gpu]\" (CuPy for CUDA 13, cupy-cuda13x; "
    "for a CUDA 12 driver install cupy-cuda12x instead). Without a GPU, --device emu runs the "
    "same CUDA kernels on the CPU")


def _import_cupy():
    """The cupy module, or DeviceError explaining how to get it."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install
        raise DeviceError(f"the cuda device needs CuPy, which could not be imported ({e}); "
                          f"{_CUPY_INSTALL_HINT}") from None
    return cupy


def _loaded_cupy():
    """cupy if some code already imported it, else None (no import here)."""
    return sys.modules.get("cupy")


def cupy_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        return _import_cupy().cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def is_cupy_array(a):
    cp = _loaded_cupy()
    return cp is not None and isinstance(a, cp.ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    This tells which *array library* to call, not which device: an ``emu``
    array is a NumPy array. Ops choose kernels from ``Tensor.device``.
    """
    cp = _loaded_cupy()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def as_numpy(a):
    """A NumPy copy (or the array itself) of a NumPy/CuPy array or scalar.

    A CuPy array is copied on its own device's current stream, so the copy
    waits for the work that computed it (a copy queued on another device's
    stream would not); the host waits for the copy. A CUDA error of earlier
    work surfaces here, as a DeviceError (see ``Device.sync_point``)."""
    if is_cupy_array(a):
        dev = device_of_array(a)
        with dev.context(), dev.sync_point("reading an array on the host"):
            return a.get()
    return np.asarray(a)


def is_cuda_error(exc):
    """True for errors raised by CuPy or CUDA (out of memory included)."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("cupy", "cupy_backends")) or "OutOfMemory" in type(exc).__name__


class Device:
    """One device: ``Device("cpu")``, ``Device("cuda", 0)``, ``Device("emu")``.

    Use ``device(spec)`` to get one: it checks that the device exists and
    returns the same object for the same spec.
    """

    def __init__(self, kind, index=0):
        self.kind, self.index = kind, int(index)
        self._kernels = None
        # Kernel launches since the host last waited for this device: a CUDA
        # error of any of them surfaces only at the next synchronisation.
        self._launched = [0, None, None]   # count, first kernel, last kernel

    # -- identity --------------------------------------------------------------
    def __str__(self):
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind

    def __repr__(self):
        return f"device({str(self)!r})"

    def __eq__(self, other):
        if isinstance(other, str):
            return (self.kind, self.index) == parse_device(other)
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self):
        return hash((self.kind, self.index))

    # -- what runs on it -----------------------------------------------------------
    @property
    def xp(self):
        """The array library: numpy (cpu, emu) or cupy (cuda)."""
        return _import_cupy() if self.kind == "cuda" else np

    @property
    def uses_kernels(self):
        """True when ops run the CUDA kernels (cuda, and emu on the CPU)."""
        return self.kind != "cpu"

    @property
    def kernels(self):
        """The kernel library of this device (``minivgg.cuda``); None on the CPU."""
        if self.kind == "cpu":
            return None
        if self._kernels is None:
            from .cuda import kernel_library
            self._kernels = kernel_library(self)
        return self._kernels

    # -- arrays ------------------------------------------------------------------------
    def owns(self, a):
        """True when array ``a`` can live on this device (NumPy for cpu/emu,
        CuPy on the same GPU for cuda)."""
        if self.kind == "cuda":
            return is_cupy_array(a) and a.device.id == self.index
        return isinstance(a, (np.ndarray, np.generic))

    def asarray(self, a, dtype=None, copy=False):
        """``a`` on this device: copied when it lives elsewhere, or when ``copy``."""
        if self.kind == "cuda":
            cp = self.xp
            elsewhere = is_cupy_array(a) and a.device.id != self.index
            if elsewhere:
                # A copy between GPUs runs on this device's stream, which is not
                # ordered with the other device's: wait for the work that wrote ``a``.
                written = cp.cuda.Event(disable_timing=True)
                with a.device:
                    written.record()
            with cp.cuda.Device(self.index):
                if elsewhere:
                    cp.cuda.get_current_stream().wait_event(written)
                if copy or elsewhere:
                    return cp.array(a, dtype=dtype, copy=True)
                return cp.asarray(a, dtype=dtype)
        host = as_numpy(a)
        return np.array(host, dtype=dtype, copy=True) if copy else np.asarray(host, dtype=dtype)

    def context(self):
        """A context manager making this device current (a no-op off the GPU)."""
        if self.kind == "cuda":
            return self.xp.cuda.Device(self.index)
        return contextlib.nullcontext()

    def synchronize(self):
        """Wait for the device's queued work (for timing and error reporting)."""
        if self.kind == "cuda":
            with self.sync_point("synchronizing"):
                self.xp.cuda.Device(self.index).synchronize()

    # -- errors of asynchronous work ----------------------------------------------------
    def note_launch(self, kernel):
        """Remember a kernel launched on this device (for sync_point's message)."""
        n, first, _ = self._launched
        self._launched = [n + 1, first or kernel, kernel]

    @contextlib.contextmanager
    def sync_point(self, what):
        """Around a call where the host waits for this device.

        Kernels run asynchronously: a kernel that fails (an illegal memory
        access, say) is reported by CUDA at the next call that waits for the
        device, wherever that is, as a bare CUDA error. Here it becomes a
        DeviceError saying which launches it can come from, and how to stop
        at the failing op instead (CUDA_LAUNCH_BLOCKING=1 makes every launch
        wait, so the error is raised inside the op, which names itself)."""
        try:
            yield
        except Exception as e:
            if not is_cuda_error(e):
                raise
            n, first, last = self._launched
            since = (f"{n} kernel launch(es) since the host last waited for it, the first "
                     f"{first} and the last {last}" if n else "no kernel launched since the "
                     "host last waited for it")
            raise DeviceError(f"a CUDA error on {self} surfaced while {what}: "
                              f"{type(e).__name__}: {e}. Kernels run asynchronously, so it "
                              f"comes from earlier work on the device ({since}); rerun with "
                              f"CUDA_LAUNCH_BLOCKING=1 to stop at the op that fails") from e
        else:
            self._launched = [0, None, None]


_DEVICES = {}


def parse_device(spec):
    """'cuda:1' -> ('cuda', 1); ValueError for an unknown spec. Checks nothing else."""
    text = str(spec).strip().lower()
    kind, _, idx = text.partition(":")
    if kind == "gpu":
        kind = "cuda"
    if kind not in ("cpu", "cuda", "emu") or (idx and (kind != "cuda" or not idx.isdigit())):
        raise ValueError(f"unknown device {spec!r}; expected 'cpu', 'cuda', 'cuda:N' or 'emu'")
    return kind, int(idx or 0)


def device(spec="cpu"):
    """The ``Device`` for ``spec`` ('cpu', 'cuda', 'cuda:N', 'emu' or a Device).

    Checks the device can be used before returning it: 'cuda' needs CuPy and
    a GPU, 'emu' needs g++. Raises DeviceError saying what to install.
    """
    if isinstance(spec, Device):
        return spec
    kind, index = parse_device(spec)
    key = (kind, index)
    if key not in _DEVICES:
        if kind == "cuda":
            _check_cuda(index)
        elif kind == "emu":
            _check_emu()
        _DEVICES[key] = Device(kind, index)
    return _DEVICES[key]


CPU = device("cpu")


def _check_cuda(index):
    cp = _import_cupy()
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:
        raise DeviceError(f"CuPy is installed but cannot use a GPU ({e}). Check that "
                          f"nvidia-smi sees one and that the driver supports the CUDA version "
                          f"of the CuPy wheel (cupy-cuda13x needs a CUDA 13 driver; use "
                          f"cupy-cuda12x for CUDA 12). Without a GPU, --device emu runs the "
                          f"same kernels on the CPU") from None
    if count == 0:
        raise DeviceError("CuPy sees no GPU (getDeviceCount() == 0); check CUDA_VISIBLE_DEVICES "
                          "and nvidia-smi, or use --device emu to run the kernels on the CPU")
    if index >= count:
        raise DeviceError(f"device cuda:{index} was asked for but only {count} GPU(s) are "
                          f"visible (cuda:0 .. cuda:{count - 1})")


def _check_emu():
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise DeviceError(f"the emu device compiles the CUDA kernels with a C++ compiler, and "
                          f"{cxx!r} was not found; install g++ (apt install g++) or set CXX")


def set_tf32(dev, enabled):
    """Let float32 matrix products on a cuda device use TF32 tensor cores
    (10-bit mantissa inputs, float32 accumulation) or not (the default:
    full float32, as on the CPU). Off the GPU only ``False`` makes sense."""
    dev = device(dev)
    if dev.kind != "cuda":
        if enabled:
            raise ValueError(f"TF32 is a GPU matrix-product mode; device {dev} has none")
        return
    dev.xp  # imports cupy
    from cupy._core import _routines_linalg as linalg
    with dev.context():
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled
                                else linalg.COMPUTE_TYPE_DEFAULT)


def device_of_array(a):
    """The device an array lives on when nothing else says (cuda:N or cpu)."""
    if is_cupy_array(a):
        return device(f"cuda:{a.device.id}")
    return CPU


def to_device(a, dev):
    """Move an array to device ``dev`` (a spec or a Device)."""
    return device(dev).asarray(a)
