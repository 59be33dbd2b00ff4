"""Launching a kernel: one checked path shared by the GPU and the emulator.

``KernelLibrary.launch(base, dtype, n, *args)`` picks the entry point for
``dtype`` (``relu_fwd`` -> ``relu_fwd_f32``), checks every argument against
the kernel's C signature, sizes a 1-D grid of BLOCK-thread blocks for n
work items (the kernels are grid-stride loops, so the grid is capped) and
hands the launch to the backend: ``cupy.RawModule`` on a GPU, the g++-built
library on the emulator. Because both go through the same check, an
argument bug found on the emulator is the argument bug the GPU would have
had silently (CuPy passes whatever it is given, and ignores strides).
"""
import numpy as np

from .. import profiler
from .source import entry_name, signatures

#: Threads per block.
BLOCK = 256
#: At most this many blocks; the grid-stride loops cover the rest. Enough
#: to fill a large GPU (an H200 has 132 SMs x 2048 threads = 1056 blocks of 256).
MAX_BLOCKS = 8192


class KernelArgumentError(TypeError):
    """A kernel was launched with an argument that does not match its C signature."""


def grid_size(n, block=BLOCK):
    """Blocks for n work items: ceil(n / block), at least 1, at most MAX_BLOCKS."""
    return max(1, min(-(-n // block), MAX_BLOCKS))


class KernelLibrary:
    """The kernels of one device. Subclasses implement ``_launch``."""

    def __init__(self, device):
        self.device = device
        self.launches = 0          # counted, for tests and profiles

    def launch(self, base, dtype, n, *args, block=BLOCK):
        """Run kernel ``base`` for ``dtype`` over n work items with ``args``."""
        name = entry_name(base, dtype)
        sig = signatures().get(name)
        if sig is None:
            raise KeyError(f"no kernel named {name} in kernels/*.cu")
        self.check_args(sig, args)
        if n <= 0:
            return
        grid = grid_size(int(n), block)
        self.launches += 1
        prof = profiler.active()
        if prof is None:
            self._launch(sig, grid, block, args)
        else:
            with prof.span(f"kernel {name}"):
                self._launch(sig, grid, block, args)

    def check_args(self, sig, args):
        """Raise KernelArgumentError unless ``args`` match ``sig`` exactly."""
        if len(args) != len(sig.params):
            raise KernelArgumentError(f"{sig.describe()} takes {len(sig.params)} arguments, "
                                      f"got {len(args)}")
        for i, (p, a) in enumerate(zip(sig.params, args)):
            where = f"{sig.name} argument {i} ({p.name})"
            if p.pointer:
                if not hasattr(a, "shape") or isinstance(a, np.generic):
                    raise KernelArgumentError(f"{where}: expected a {p.describe()}, got "
                                              f"{type(a).__name__}")
                if not self.device.owns(a):
                    raise KernelArgumentError(f"{where}: the array is not on {self.device}")
                if a.dtype != p.dtype:
                    raise KernelArgumentError(f"{where}: expected dtype {p.dtype}, got {a.dtype}")
                if not a.flags.c_contiguous:
                    raise KernelArgumentError(f"{where}: the array must be C-contiguous (kernels "
                                              f"see a raw pointer, not strides); got strides "
                                              f"{a.strides} for shape {a.shape}")
                if not p.const and not getattr(a.flags, "writeable", True):
                    raise KernelArgumentError(f"{where}: the kernel writes this array, which is "
                                              f"read-only")
            else:
                if not isinstance(a, np.generic) or a.dtype != p.dtype:
                    got = f"np.{a.dtype}" if isinstance(a, np.generic) else type(a).__name__
                    raise KernelArgumentError(f"{where}: expected np.{p.dtype}(...), got {got}; "
                                              f"pass scalars as explicit NumPy types")

    def _launch(self, sig, grid, block, args):
        raise NotImplementedError
