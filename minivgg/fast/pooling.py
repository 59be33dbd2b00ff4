"""Max-pooling (§2.1: "max-pooling is performed over a 2x2 pixel window,
with stride 2", after each block of Table 1).

Ties: when several inputs of a window share the maximum, the gradient goes
to the first of them in row-major window order (top-left first), the same
rule as PyTorch's CPU kernel, so results are deterministic and comparable.
Windows that would run past the (padded) input are dropped (floor mode);
padding counts as -infinity. A NaN in a window is its maximum, and the
first NaN gets the gradient (as in the kernel).

The fast tier's twin of minivgg/functional/pooling.py, which keeps the
argmax; this one recomputes the winners in backward instead of storing
them (tests/test_tiers.py holds the two equal, ties and NaNs included).
On cuda and emu devices forward and backward are the kernels of
``kernels/pool.cu`` (backward as a gather, one thread per input pixel).
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..cuda import ops
from ..functional.shapes import conv_output_size, pair as _pair
from ..threads import split, split_copy
from .channels_last import is_channels_last

#: The CPU path works through the channels (the images, for an input laid
#: out channels-last) in chunks of about this many output elements, so
#: that a chunk's temporaries (the row maxima in forward, the masks in
#: backward) are still in cache when they are read back (whole-array
#: passes against chunks: docs/benchmarks.md, "Measurements behind the
#: fast tier's constants").
CHUNK_ELEMENTS = 1 << 16


def _padded(x, ph, pw):
    """x, or a copy padded with -inf (the identity of max) on H and W."""
    if not (ph or pw):
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    fill = -xp.inf if xp.issubdtype(x.dtype, xp.floating) else xp.iinfo(x.dtype).min
    buf = xp.full((c, n, h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype).transpose(1, 0, 2, 3)
    buf[:, :, ph:ph + h, pw:pw + w] = x
    return buf


def _slot(a, i, j, stride, out_hw):
    """The (N, C, OH, OW) strided view of window position (i, j) in ``a``."""
    (sh, sw), (oh, ow) = stride, out_hw
    return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def _chunk_axis(a):
    """The axis the CPU path cuts into chunks: the batch (0) for an input
    with its channels last (a chunk of whole images is then one contiguous
    stretch of memory), else the channels (1)."""
    return 0 if is_channels_last(a) else 1


def _empty_like_layout(shape, dtype, axis, zeros=False):
    """An (N, C, H, W) array laid out channels-last (axis 0) or
    channel-major (axis 1), like the activations around it."""
    n, c, h, w = shape
    make = np.zeros if zeros else np.empty
    if axis == 0:
        return make((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    return make((c, n, h, w), dtype=dtype).transpose(1, 0, 2, 3)


def _copy_to_layout(a, axis):
    """A copy of ``a`` (N, C, H, W) laid out as _empty_like_layout(..., axis)."""
    out = _empty_like_layout(a.shape, a.dtype, axis)
    split_copy(out, a)
    return out


def _chunks(per_unit, c0, c1):
    """Ranges of c0..c1 (images or channels, ``per_unit`` outputs each)
    holding about CHUNK_ELEMENTS outputs each."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_unit))
    return [(a, min(c1, a + step)) for a in range(c0, c1, step)]


def _along(axis, lo, hi):
    """The index of positions lo..hi along ``axis`` (0 or 1) of an (N, C, H, W) array."""
    return (slice(lo, hi),) if axis == 0 else (slice(None), slice(lo, hi))


def _window_max(a, y, kernel, stride):
    """y (N, C, OH, OW) = the maximum of each window of a (N, C, H, W),
    row by row: first the maximum over the KH rows of each window (strided
    views whose rows are contiguous), then over its KW columns."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, y.shape[2:]
    width = sw * (ow - 1) + kw                      # the columns some window reads
    rows = [a[:, :, i:i + sh * (oh - 1) + 1:sh, :width] for i in range(kh)]
    r = rows[0] if kh == 1 else np.maximum(rows[0], rows[1])
    for v in rows[2:]:
        np.maximum(r, v, out=r)
    cols = [r[..., j:j + sw * (ow - 1) + 1:sw] for j in range(kw)]
    if kw == 1:
        np.copyto(y, cols[0])
        return
    np.maximum(cols[0], cols[1], out=y)
    for v in cols[2:]:
        np.maximum(y, v, out=y)


def _route(a, y, gy, gx, kernel, stride, overlap):
    """gx (N, C, H, W) receives gy at the first slot of each window of a
    that holds the maximum y (added to gx where windows overlap, written
    elsewhere); a NaN maximum goes to the window's first NaN."""
    (kh, kw), out_hw = kernel, gy.shape[2:]
    free = None  # where no earlier slot held the maximum (the documented tie rule)
    last = kh * kw - 1
    nan = np.isnan(y)
    nan = nan if nan.any() else None
    for s in range(kh * kw):
        if 0 < s == last:
            # The maximum (or NaN) of a window is in one of its slots: where
            # no earlier slot held it, the last one does.
            won = free
        else:
            v = _slot(a, s // kw, s % kw, stride, out_hw)
            won = v == y
            if nan is not None:  # a NaN maximum: the first NaN of the window wins
                won |= nan & np.isnan(v)
            if free is None:
                free = ~won
            else:
                np.logical_and(won, free, out=won)
                np.logical_xor(free, won, out=free)  # won is a subset of free
        view = _slot(gx, s // kw, s % kw, stride, out_hw)
        if overlap:
            view += gy * won
        else:  # each input position belongs to one window at most
            np.multiply(gy, won, out=view)


class MaxPool2d(Function):
    """x (N, C, H, W) -> y (N, C, OH, OW), the maximum of each window.

    No window is ever copied: each of the KH*KW positions inside a window
    (a "slot") is a strided view of the input. On the CPU, forward takes
    the maximum over each window's rows, then over its columns (KH - 1 and
    KW - 1 elementwise passes), and keeps only references to its input and
    output (arrays the layers around it keep anyway: the fused conv + ReLU
    before it and the convolution after it); backward finds the first slot
    holding each maximum from them. Forward computes no index, so
    evaluation pays for the maximum alone. Both work through the channels
    in cache-sized chunks (CHUNK_ELEMENTS), split over the CPU threads, or
    through the images for an input laid out channels-last, whose output
    and gradient keep that layout. On a kernel device forward stores the
    index (one byte per output).
    """

    def __init__(self, kernel_size=2, stride=None, padding=0):
        self.kernel = _pair(kernel_size, "kernel_size")
        self.stride = _pair(self.kernel if stride is None else stride, "stride")
        self.padding = _pair(padding, "padding")

    def forward(self, x):
        self.x_shape = x.shape
        if self.device.uses_kernels:
            y, self.idx = ops.max_pool_forward(self.device, x, self.kernel, self.stride,
                                               self.padding)
            return y
        (kh, kw), (ph, pw) = self.kernel, self.padding
        n, c = x.shape[:2]
        oh = conv_output_size(x.shape[2], kh, self.stride[0], ph)
        ow = conv_output_size(x.shape[3], kw, self.stride[1], pw)
        a = _padded(x, ph, pw)
        axis = _chunk_axis(a)
        y = _empty_like_layout((n, c, oh, ow), x.dtype, axis)
        per_unit = y.size // y.shape[axis]

        def work(c0, c1):
            for lo, hi in _chunks(per_unit, c0, c1):
                at = _along(axis, lo, hi)
                _window_max(a[at], y[at], self.kernel, self.stride)
        split(work, y.shape[axis], a.size)
        self.a, self.y = a, y
        return y

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.max_pool_backward(self.device, gy, self.idx, self.x_shape, self.kernel,
                                         self.stride, self.padding)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        n, c, h, w = self.x_shape
        oh, ow = gy.shape[2:]
        overlap = sh < kh or sw < kw
        # When the windows tile the input exactly, every input position gets
        # written by one slot, and gx needs no zeros first.
        tiled = (kh, kw) == (sh, sw) and not (ph or pw) and (h, w) == (kh * oh, kw * ow)
        axis = _chunk_axis(self.a)
        if _chunk_axis(gy) != axis:
            # gy from a layer of the other layout (a Winograd dX after a
            # channels-last convolution, or the reverse): one copy of it,
            # a quarter of gx's size, instead of every pass below mixing
            # layouts, which strided reads make several times slower.
            gy = _copy_to_layout(gy, axis)
        gx = _empty_like_layout((n, c, h + 2 * ph, w + 2 * pw), gy.dtype, axis, zeros=not tiled)
        per_unit = gy.size // gy.shape[axis]

        def work(c0, c1):
            for lo, hi in _chunks(per_unit, c0, c1):
                at = _along(axis, lo, hi)
                _route(self.a[at], self.y[at], gy[at], gx[at], self.kernel, self.stride, overlap)
        split(work, gx.shape[axis], gx.size)
        return gx[:, :, ph:ph + h, pw:pw + w]

    def release(self):
        super().release()
        self.idx = self.a = self.y = None
