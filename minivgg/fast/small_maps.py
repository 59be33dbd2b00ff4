"""Convolutions on maps so small that every output pixel sees every input
pixel, on the CPU: VGG's last block on a 32x32 image (§2.1's 3x3 filters,
padding 1, on 2x2 maps), or any 1x1 map.

There a convolution is a fully-connected layer whose weight matrix repeats
the filter's taps. With a 3x3 filter and padding 1 on a 2x2 map, output
pixel (i, j) reads input pixel (a, b) through tap (a - i + 1, b - j + 1),
which always exists, so

    Y (N, OH*OW*K) = X (N, H*W*C) @ MT^T,
    MT[(i, j, k), (a, b, c)] = w[k, c, a - i + PH, b - j + PW]

with X the input and Y the output laid out channels-last, (N, H, W, C) and
(N, OH, OW, K) flattened per image: no columns are built and no layout is
changed. The product does 4 x 4 = 16 multiply-adds per (c, k) on a 2x2 map,
where im2col does 4 x 9 = 36 (20 of them on the padding's zeros) and
Winograd F(2x2, 3x3) also 16, but in 16 small GEMMs between transforms. On
a 1x1 map only the centre tap is left: a 1x1 convolution. The condition
(stride 1): H + PH <= KH and OH - 1 <= PH, the same across.

Backward, with G the gradient masked by the ReLU, (N, OH*OW*K):

* dX = G @ MT, channels-last like the input;
* dMT = G^T @ X would hold dW[k, c, t] in each of its blocks that use tap
  t (the centre tap of a 2x2 map is in four of them, a corner tap in one):
  each tap's sum is one GEMM over those blocks' slices of G and X, stacked;
  db = the sum of G's rows.

MT is (OH*OW*K) x (H*W*C): 16 copies of the (K x C) filter slices on a 2x2
map, built once per call from the filters laid out (K, KH, KW, C), where
each slice is a run of rows. fast/select.py decides where this path is
used (while MT has at most SMALL_MAP_MAX_ELEMENTS numbers).

Shape letters: N, C, H, W, K, KH, KW, OH, OW as in minivgg/functional/__init__.py.
"""
import numpy as np

from ..threads import SPLIT_MIN, parallel, split, split_copy
from . import products
from .activation import relu_into
from .channels_last import masked_gradient

#: Elements below which the passes here stay on one thread.
PARALLEL_MIN = None

#: Below this many images the forward product is formed turned round,
#: (MT @ X^T)^T, and copied back to rows: OpenBLAS is faster with the big
#: matrix as the left operand when the other is short, equal from about 256
#: images and slower beyond (docs/benchmarks.md, "Measurements behind the
#: fast tier's constants").
TURNED_BELOW = 256


def applies(x_shape, w_shape, stride, padding):
    """True when every output pixel of this convolution sees every input
    pixel (stride 1): the whole map fits in each window, H + PH <= KH, and
    every window reaches the first pixel, OH - 1 <= PH (and across)."""
    (h, wd), (kh, kw), (ph, pw) = x_shape[2:], w_shape[2:], padding
    oh, ow = h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1
    return (tuple(stride) == (1, 1) and oh >= 1 and ow >= 1 and h + ph <= kh
            and wd + pw <= kw and oh - 1 <= ph and ow - 1 <= pw)


def matrix_size(x_shape, w_shape, padding):
    """Elements of MT: (OH*OW*K) x (H*W*C)."""
    (_, c, h, wd), (k, _, kh, kw), (ph, pw) = x_shape, w_shape, padding
    return (h + 2 * ph - kh + 1) * (wd + 2 * pw - kw + 1) * k * h * wd * c


def _taps(h, wd, oh, ow, ph, pw):
    """(i, j, a, b, tap row, tap column) for every output (i, j) and input (a, b)."""
    return [(i, j, a, b, a - i + ph, b - j + pw)
            for i in range(oh) for j in range(ow) for a in range(h) for b in range(wd)]


def matrix(w, h, wd, padding, dtype):
    """MT (OH*OW*K, H*W*C) of w (K, C, KH, KW) on an H x W map, in ``dtype``."""
    k, c, kh, kw = w.shape
    ph, pw = padding
    oh, ow = h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1
    wr = np.empty((k, kh, kw, c), dtype=dtype)
    split_copy(wr, w.transpose(0, 2, 3, 1), PARALLEL_MIN)       # (K, KH, KW, C)
    mt = np.empty((oh, ow, k, h, wd, c), dtype=dtype)
    taps = _taps(h, wd, oh, ow, ph, pw)

    def copy(t0, t1):
        for i, j, a, b, u, v in taps[t0:t1]:
            mt[i, j, :, a, b, :] = wr[:, u, v]
    split(copy, len(taps), mt.size, PARALLEL_MIN)
    return mt.reshape(oh * ow * k, h * wd * c)


def _rows(a):
    """a (N, C, H, W), any layout, as (N, H*W*C): a view when a is channels-last."""
    return a.transpose(0, 2, 3, 1).reshape(a.shape[0], -1)


def conv(x, w, padding=(1, 1), b=None, relu=False, mt=None):
    """x (N, C, H, W) any layout, w (K, C, KH, KW), b (K,) or None -> y
    (N, OH, OW, K), contiguous (channels last), max(y, 0) if ``relu``.
    ``mt``: matrix(w, ...) when the caller keeps it (for backward).
    Needs applies(...)."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    oh, ow = h + 2 * padding[0] - kh + 1, wd + 2 * padding[1] - kw + 1
    dtype = np.result_type(x.dtype, w.dtype)
    mt = matrix(w, h, wd, padding, dtype) if mt is None else mt
    rows = _rows(x.astype(dtype, copy=False))
    y = np.empty((n, oh * ow * k), dtype=dtype)
    if n < TURNED_BELOW:
        products.matmul_turned(mt, rows.T, y)
    else:
        products.matmul(rows, mt.T, y)
    y = y.reshape(n, oh, ow, k)
    bias = None if b is None else b.astype(dtype, copy=False)

    def finish(a, z):
        if bias is not None:
            y[a:z] += bias
        if relu:
            relu_into(y[a:z], y[a:z])
    if bias is not None or relu:
        split(finish, n, y.size, PARALLEL_MIN)
    return y


def grads(x, w, gy, padding, y=None, need_x=True, need_w=True, need_b=True, mt=None):
    """(dX (N, H, W, C) contiguous or None, dW (K, C, KH, KW) or None, db (K,)
    or None) from gy (N, K, OH, OW), any layout, masked by ``y > 0`` when
    ``y`` (the ReLU's output) is given; ``mt`` as in conv().

    dW[:, :, t] is one product for each tap t: the (N, K) slices of G of
    the outputs that reach their input through t, stacked, times the
    (N, C) slices of X of those inputs, stacked the same way (the blocks of
    dMT = G^T @ X that hold tap t, summed inside the GEMM)."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    ph, pw = padding
    oh, ow = gy.shape[2:]
    dtype = np.result_type(x.dtype, w.dtype, gy.dtype)
    g = masked_gradient(gy, y).astype(dtype, copy=False)              # (N, OH, OW, K)
    gx = gw = None
    if need_x:
        mt = matrix(w, h, wd, padding, dtype) if mt is None else mt
        gx = products.matmul(g.reshape(n, -1), mt, np.empty((n, h * wd * c), dtype=dtype))
        gx = gx.reshape(n, h, wd, c)
    if need_w:
        xl = x.astype(dtype, copy=False).transpose(0, 2, 3, 1)      # (N, H, W, C)
        by_tap = {}
        for i, j, a, b, u, v in _taps(h, wd, oh, ow, ph, pw):
            by_tap.setdefault((u, v), []).append((i, j, a, b))
        by_tap = list(by_tap.items())
        gw = np.empty((k, c, kh, kw), dtype=dtype)
        for u in range(kh):         # the taps no output uses (on a map smaller than the kernel)
            for v in range(kw):
                if (u, v) not in dict(by_tap):
                    gw[:, :, u, v] = 0

        def tap(t):     # each tap's product on a thread of its own
            (u, v), pairs = by_tap[t]
            gs = np.concatenate([g[:, i, j] for i, j, _, _ in pairs])
            xs = np.concatenate([xl[:, a, b] for _, _, a, b in pairs])
            gw[:, :, u, v] = gs.T @ xs
        if n * k * c * len(by_tap) >= (SPLIT_MIN if PARALLEL_MIN is None else PARALLEL_MIN):
            parallel(tap, len(by_tap))
        else:
            for t in range(len(by_tap)):
                tap(t)
    gb = g.reshape(-1, k).sum(axis=0) if need_b else None
    return gx, gw, gb
