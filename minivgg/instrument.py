"""What runs around every op's forward and backward, apart from the maths:
the profiler's span (minivgg/profiler.py), and the translation of a CUDA
error into a DeviceError that names the op, the direction and the shapes."""
from . import profiler
from .backend import DeviceError


class around_op:
    """Context manager around ``fn``'s forward or backward (``where``) on
    ``arrays``: times it when a Profiler is running; a CUDA error inside is
    re-raised as DeviceError (out of memory suggests --micro-batch); errors
    of other kinds pass through unchanged."""

    def __init__(self, fn, where, arrays):
        self.fn, self.where, self.arrays = fn, where, arrays
        self.span = None

    def __enter__(self):
        prof = self.prof = profiler.active()
        if prof is not None:
            self.span = prof.span(f"{type(self.fn).__name__}.{self.where}")
            self.span.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.span is not None:
            detail = getattr(self.fn, "profile_detail", None)
            if exc is None and detail is not None and self.prof.detail:
                self.span.name += f" [{detail()}]"
            self.span.__exit__(exc_type, exc, tb)
        if exc is None or not is_cuda_error(exc):
            return False
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays if hasattr(a, "shape"))
        dev = getattr(self.fn, "device", "the GPU")
        msg = f"{type(self.fn).__name__} {self.where} on {dev} with arrays of shape {shapes}: "
        if "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
            msg += (f"out of memory ({exc}); use a smaller batch or split it with "
                    f"--micro-batch N (gradients are accumulated, the update is the same)")
        else:
            msg += f"{type(exc).__name__}: {exc}"
        raise DeviceError(msg) from exc


def is_cuda_error(exc):
    """True for an exception raised by CuPy or the CUDA runtime."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("cupy", "cupy_backends")) or "OutOfMemory" in type(exc).__name__
