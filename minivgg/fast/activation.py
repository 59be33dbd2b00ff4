"""ReLU and dropout (§2.1: "All hidden layers are equipped with the
rectification (ReLU) non-linearity"; §3.1: "dropout regularisation for the
first two fully-connected layers (dropout ratio set to 0.5)").

The fast tier's twins of minivgg/functional/activation.py (tests/test_tiers.py
holds them equal). On cuda and emu devices both run the kernels of
``kernels/activation.cu``.
"""
import numpy as np

from .. import random as mrandom
from ..autograd import Function
from ..cuda import ops
from ..threads import SPLIT_MIN, split

#: NumPy (2.4) runs ``maximum(a, 0)`` through a slower loop than
#: ``maximum(a, zeros)`` with an array of zeros of a's shape, so relu_into's
#: second operand is a kept, read-only array of zeros of up to RELU_ZEROS
#: elements (the measurements: docs/benchmarks.md, "Measurements behind the
#: fast tier's constants").
RELU_ZEROS = 1 << 18
_ZEROS = {}


def _zeros(n, dtype):
    """A read-only array of at least ``n`` zeros of ``dtype``, kept."""
    dtype = np.dtype(dtype)
    z = _ZEROS.get(dtype)
    if z is None or z.size < n:
        z = np.zeros(max(n, 1 << 12), dtype=dtype)
        z.flags.writeable = False
        _ZEROS[dtype] = z
    return z[:n]


#: Elements per task of the elementwise passes below when they are split
#: over the threads; smaller arrays stay on one.
PARALLEL_MIN = None


def relu_into(src, out):
    """out[...] = max(src, 0) for NumPy arrays of one shape (``out`` may be
    ``src``, for in place); a NaN stays NaN, as in maximum. Contiguous
    arrays (rows or columns) go through in slices of RELU_ZEROS elements
    against the kept zeros, split over the threads; others of up to
    RELU_ZEROS elements against zeros of their shape; anything else takes
    NumPy's scalar loop."""
    n, result = src.size, out
    if src.flags.f_contiguous and out.flags.f_contiguous and not src.flags.c_contiguous:
        src, out = src.T, out.T     # the same numbers, read in memory order
    if n <= RELU_ZEROS:
        np.maximum(src, _zeros(n, src.dtype).reshape(src.shape), out=out)
    elif src.flags.c_contiguous and out.flags.c_contiguous:
        a, o = src.reshape(-1), out.reshape(-1)

        def part(s0, s1):
            for s in range(s0 * RELU_ZEROS, min(n, s1 * RELU_ZEROS), RELU_ZEROS):
                e = min(n, s + RELU_ZEROS)
                np.maximum(a[s:e], _zeros(e - s, src.dtype), out=o[s:e])
        split(part, -(-n // RELU_ZEROS), n, PARALLEL_MIN)
    else:
        np.maximum(src, 0, out=out)
    return result


def masked(gy, y):
    """gy * (y > 0), the ReLU's gradient from its output y, laid out as y
    (a new array), in slices along the batch split over the threads."""
    if y.ndim == 0 or y.size < (SPLIT_MIN if PARALLEL_MIN is None else PARALLEL_MIN):
        return gy * (y > 0)
    g = np.empty_like(y, dtype=np.result_type(gy.dtype, y.dtype))

    def part(a, b):
        np.multiply(gy[a:b], y[a:b] > 0, out=g[a:b])
    split(part, g.shape[0], g.size, PARALLEL_MIN)
    return g


def _flat(a):
    """a's elements in C order, a view when a is C-contiguous."""
    return np.ascontiguousarray(a).reshape(-1)


class ReLU(Function):
    """y = max(x, 0), any shape. The gradient at exactly 0 is taken as 0.

    Backward needs only where y > 0, read from the output itself: the next
    layer keeps y anyway, so ReLU stores no mask of its own.
    """

    def forward(self, x):
        if self.device.uses_kernels:
            y = ops.relu_forward(self.device, x)
        else:
            y = relu_into(x, np.empty_like(x))
        self.y = y
        return y

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.relu_backward(self.device, gy, self.y)
        return masked(gy, self.y)

    def release(self):
        super().release()
        self.y = None


class Dropout(Function):
    """Inverted dropout, y = x * keep / (1 - p): the textbook Dropout
    (minivgg/functional/activation.py) with the same keep mask, recomputed
    in backward from its stream key rather than stored, slice by slice of
    the elements (each slice's numbers hashed on their own), the slices
    split over the threads."""

    def __init__(self, p, key):
        self.p, self.key = p, key
        self.threshold = mrandom.drop_threshold(p)
        self.scale = 1.0 / (1.0 - p)

    def _apply(self, x):
        """x * m, m = scale where kept, 0 where dropped; x's shape, C order."""
        flat = _flat(x)
        out = np.empty_like(flat)
        scale = x.dtype.type(self.scale)

        def part(a, b):
            keep = mrandom.uniform24(self.key, b - a, a) >= self.threshold
            np.multiply(flat[a:b], keep.astype(x.dtype) * scale, out=out[a:b])
        split(part, flat.size, flat.size, PARALLEL_MIN)
        return out.reshape(x.shape)

    def forward(self, x):
        if self.device.uses_kernels:
            return ops.dropout(self.device, x, self.key, self.threshold, self.scale)
        return self._apply(x)

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.dropout(self.device, gy, self.key, self.threshold, self.scale,
                               backward=True)
        return self._apply(gy)
