"""im2col + GEMM with the channels last, on the CPU: the convolutions of
§2.1 that neither Winograd nor the whole-map GEMM takes (batches below
256 output pixels or 2^25 multiply-adds, configuration C's 1x1 layers,
and whatever select.CONV = "im2col-channels-last" forces here).

The textbook functional/conv.py, and fast/conv.py, lay the columns out
channel-major, one row per (c, i, j)
and one column per output pixel. Building that matrix copies rows of OW
numbers: 8 to 32 on the maps of a 32x32 input, where NumPy's strided copy
spends more time starting rows than moving numbers, and its product has
only K = 16..128 rows, where OpenBLAS runs well below its peak. Here the
input is laid out (N, H, W, C) instead, and each output pixel gets a *row*
of the column matrix:

    col[(n, oh, ow), (i, j, c)] = xpad[n, oh + i, ow + j, c]
    y (N*OH*OW, K)              = col @ Wm,   Wm[(i, j, c), k] = w[k, c, i, j]

A row of ``col`` is KH runs of KW*C contiguous numbers (the KW neighbouring
pixels' channels are next to each other in memory), 48 to 384 numbers in
a VGG layer of 16 to 128 channels, and the product has N*OH*OW rows and K
columns, the shape BLAS runs fastest. The result is the output with its
channels last, handed on as an (N, K, OH, OW) view: the next layer reads
it in the same layout for free.

Backward, with g = gy masked by the ReLU, laid out (N, OH, OW, K):

* dW = col^T @ g, with col rebuilt block by block from x (as in conv.py);
  db = the sum of g's rows, taken from the same blocks while in cache;
* dX is the convolution of g with the spatially flipped, in/out-transposed
  kernel and padding KH - 1 - P: this module's forward again, its output
  channels-last too.

Blocks of whole images (bands of output rows for a big image) keep each
block's columns near blocks.CHUNK_ELEMENTS, so they are written and read
back in cache. Only stride 1 and padding <= KH - 1 are taken (every VGG
convolution, 1x1 included: a row of a 1x1 layer's columns is one pixel's C
channels); fast/select.py decides where this layout is used
(CHANNELS_LAST_MIN_CHANNELS, _MIN_PIXELS, _MAX_WEIGHTS).

Shape letters: N, C, H, W, K, KH, KW, OH, OW as in minivgg/functional/__init__.py.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..threads import over_blocks, ranges, split, split_copy, sum_in_order
from .activation import relu_into
from .blocks import MIN_BLOCKS, cpu_blocks as _cpu_blocks
from .winograd import scratch

_PARALLEL_MIN = None  # elements below which copies stay on one thread (None: threads.SPLIT_MIN)


def applies(x_shape, w_shape, stride, padding):
    """True when this module computes the convolution: stride 1 and a
    padding that leaves dX a convolution (0 <= P <= K - 1 on both axes)."""
    (kh, kw), (ph, pw) = w_shape[2:], padding
    return tuple(stride) == (1, 1) and 0 <= ph <= kh - 1 and 0 <= pw <= kw - 1


def is_channels_last(a):
    """True when ``a`` (N, C, H, W) has its channels innermost in memory
    (as this module's outputs do), so that a (N, H, W, C) view of it is contiguous."""
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


def padded(x, ph, pw, key, rows=None, cols=None, row0=0, min_size=None, mask=None):
    """x (N, C, H, W), any layout, zero-padded by (PH, PW) and laid out
    channels-last in a kept scratch buffer (N, ROWS, COLS, C): buf[:, t, s]
    = xpad[:, :, row0 + t, s] (by default all of xpad; Winograd asks for a
    band of rows, which may also cut x). A view of x itself when x is
    channels-last and nothing is padded or cut. The copy is split over
    threads from ``min_size`` elements (default: this module's _PARALLEL_MIN).
    With ``mask`` (x's shape), x * (mask > 0) (a ReLU's gradient masked as it
    is copied: the same numbers as masking first)."""
    n, c, h, w = x.shape
    rows = h + 2 * ph if rows is None else rows
    cols = w + 2 * pw if cols is None else cols
    xl = x.transpose(0, 2, 3, 1)
    ml = None if mask is None else mask.transpose(0, 2, 3, 1)
    if ph == pw == row0 == 0 and (rows, cols) == (h, w) and xl.flags.c_contiguous and ml is None:
        return xl
    buf = scratch(key, (n, rows, cols, c), x.dtype)
    lo, hi = max(0, ph - row0), max(0, min(rows, h + ph - row0))    # rows of buf inside x
    ww = min(w, cols - pw)

    def images(a, b):       # the zeros around them and their pixels, image by image
        buf[a:b, :lo] = 0
        buf[a:b, hi:] = 0
        if hi > lo:
            buf[a:b, lo:hi, :pw] = 0
            buf[a:b, lo:hi, pw + ww:] = 0
            src = xl[a:b, row0 + lo - ph:row0 + hi - ph, :ww]
            if ml is None:
                np.copyto(buf[a:b, lo:hi, pw:pw + ww], src)
            else:
                np.multiply(src, ml[a:b, row0 + lo - ph:row0 + hi - ph, :ww] > 0,
                            out=buf[a:b, lo:hi, pw:pw + ww])
    split(images, n, buf.size, min_size or _PARALLEL_MIN)
    return buf


def _block_columns(xpad, blk, kh, kw, oh, ow):
    """(first output row of CPU block ``blk`` = (i0, i1, r0, r1) of
    blocks.cpu_blocks in the (N*OH*OW, K) result, col), col (M, KH*KW*C)
    the block's columns in this thread's scratch buffer:
    col[(n, r, s), (i, j, c)] = xpad[i0 + n, r0 + r + i, s + j, c]."""
    i0, i1, r0, r1 = blk
    c = xpad.shape[3]
    ckk = kh * kw * c
    s_n, s_h, s_w, s_c = xpad.strides
    nb, rows = i1 - i0, r1 - r0
    col = scratch("clcol", (nb * rows * ow, ckk), xpad.dtype)
    # The KW neighbours' channels are adjacent in xpad: one run of KW*C.
    view = as_strided(xpad[i0:, r0:], (nb, rows, ow, kh, kw * c), (s_n, s_h, s_w, s_h, s_c),
                      writeable=False)
    split_copy(col.reshape(nb, rows, ow, kh, kw * c), view, _PARALLEL_MIN)
    return (i0 * oh + r0) * ow, col


def weight_matrix(w, dtype):
    """Wm (KH*KW*C, K), Wm[(i, j, c), k] = w[k, c, i, j], in ``dtype``."""
    k, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0), dtype=dtype).reshape(kh * kw * c, k)


def conv(x, w, padding=(1, 1), b=None, relu=False):
    """x (N, C, H, W) any layout, w (K, C, KH, KW), b (K,) or None -> y
    (N, OH, OW, K), contiguous (channels last), max(y, 0) if ``relu``.
    Needs applies(...)."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    ph, pw = padding
    oh, ow = h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1
    dtype = np.result_type(x.dtype, w.dtype)
    wm = weight_matrix(w, dtype)
    bias = None if b is None else b.astype(dtype, copy=False)
    y = np.empty((n, oh, ow, k), dtype=dtype)
    y2 = y.reshape(n * oh * ow, k)
    xpad = padded(x.astype(dtype, copy=False), ph, pw, "clpad")
    blocks = _cpu_blocks(n, oh, ow, kh * kw * c, k)

    def run(j):
        a, col = _block_columns(xpad, blocks[j], kh, kw, oh, ow)
        block = y2[a:a + col.shape[0]]
        np.matmul(col, wm, out=block)
        if bias is not None:
            block += bias
        if relu:
            relu_into(block, block)
    over_blocks(run, len(blocks))
    return y


def masked_gradient(gy, y=None):
    """gy (N, K, OH, OW), any layout -> g (N, OH, OW, K) contiguous, times
    (y > 0) when ``y``, the ReLU's output, is given (one pass, split over
    the CPU threads)."""
    n, k, oh, ow = gy.shape
    gl = gy.transpose(0, 2, 3, 1)
    if y is None:
        return np.ascontiguousarray(gl)
    yl = y.transpose(0, 2, 3, 1)
    g = np.empty(gl.shape, dtype=gy.dtype)

    def part(a, b):
        np.multiply(gl[a:b], yl[a:b] > 0, out=g[a:b])
    split(part, n, g.size, _PARALLEL_MIN)
    return g


def weight_bias_grad(x, g, w_shape, padding, bias):
    """dW (K, C, KH, KW) and db (K,) (None unless ``bias``) from x (N, C,
    H, W) and g (N, OH, OW, K) contiguous: dW = col^T @ g over the blocks
    of the columns, db the sum of g's rows."""
    k, c, kh, kw = w_shape
    oh, ow = g.shape[1:3]
    dtype = np.result_type(x.dtype, g.dtype)
    g2 = g.reshape(-1, k)
    xpad = padded(x.astype(dtype, copy=False), *padding, "clpad")
    blocks = _cpu_blocks(x.shape[0], oh, ow, kh * kw * c, k)
    # Blocks in fixed groups, each summed into a partial sum of its own, the
    # partial sums added in order: the same numbers on any number of threads.
    groups = ranges(len(blocks), MIN_BLOCKS)
    accs = [np.zeros((kh * kw * c, k), dtype=dtype) for _ in groups]
    gbs = [np.zeros(k, dtype=dtype) if bias else None for _ in groups]

    def run(gi):
        for blk in blocks[slice(*groups[gi])]:
            a, col = _block_columns(xpad, blk, kh, kw, oh, ow)
            block = g2[a:a + col.shape[0]]
            accs[gi] += col.T @ block
            if bias:
                gbs[gi] += block.sum(axis=0)
    over_blocks(run, len(groups))
    acc = sum_in_order(accs, accs[0])
    gw = np.ascontiguousarray(acc.reshape(kh, kw, c, k).transpose(3, 2, 0, 1))
    return gw, (sum_in_order(gbs, gbs[0]) if bias else None)


def input_grad(g, w, padding):
    """dX (N, H, W, C) contiguous from g (N, OH, OW, K) contiguous: the
    convolution of g with the flipped, transposed kernel, padding KH-1-P."""
    kh, kw = w.shape[2:]
    w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)      # (C, K, KH, KW)
    return conv(g.transpose(0, 3, 1, 2), w_t, (kh - 1 - padding[0], kw - 1 - padding[1]))
