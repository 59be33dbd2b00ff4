"""Winograd F(4x4, 3x3): VGG's 3x3 stride-1 convolutions with 4x fewer
multiplications than the direct method (F(2x2, 3x3) in winograd.py saves
2.25x). Same algorithm, bigger tiles (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016):

A 4x4 tile of output pixels depends on a 6x6 tile d of the padded input.
With the constant matrices BT (6x6), G (6x3) and AT (4x6) below,

    y_tile = AT [ (G g G^T) * (BT d BT^T) ] AT^T        (* elementwise)

is the correlation of d with the 3x3 filter g: 36 multiplications for 16
outputs instead of 16 * 9 = 144. Summed over input channels, each of the
36 positions of the transformed tile is one matrix product over all T
tiles:

    U (36, K, C) = kron(G, G) @ w         the transformed filters
    V (36, T, C) = kron(BT, BT) @ D       D (36, T, C): the 6x6 input tiles
    M (36, T, K) = V @ U^T                36 GEMMs of T x C x K
    Y (16, T, K) = kron(AT, AT) @ M       the 4x4 output tiles

Written for a tile as a vector of 36 numbers (row-major), each 2-D
transform is one matrix, the Kronecker product of the 1-D matrix with
itself (kron(BT, BT) above; ``kron`` builds them, and the tests hold the
code to them). The code applies the 1-D matrix twice instead, to the
tiles' rows and then to their columns (``transform``): two BLAS products
with a 6x6 (4x6) matrix over a few thousand tiles at a time, 12 (15)
multiply-adds per number made instead of 36, and the half-done tiles stay
in cache. The F(2x2) module writes its transforms as NumPy additions instead.
The 36 GEMMs do 36*K*C*T = 2.25*K*C*N*OH*OW multiply-adds against
9*K*C*N*OH*OW for im2col + GEMM; the transforms cost 12 per element of V
and 15 per output value, where the GEMMs cost C (K for dW) per element:
they weigh most on the thinnest layers this module takes (from 8
channels, select.WINOGRAD_SIZES).

Tiles start every 4 pixels; T = N * TY * TX with TY = ceil(OH / 4): an
output size that is not a multiple of 4 gets a last row (column) of tiles
that reaches past the edge, over zeros, whose surplus outputs are dropped.

Layout: channels last. A block's input is copied, zero-padded, into an
(N, H, W, C) scratch; element (i, j) of every tile is then an array of
runs of C contiguous numbers, so gathering D and scattering Y (into the
(N, OH, OW, K) output) copy runs of C and K numbers instead of single
ones, and the 36 GEMMs have a row per tile and K columns, the shape BLAS
runs fastest (the same module laid out channel-major, with a column per
tile, was slower: docs/benchmarks.md, "Measurements behind the fast tier's
constants").

Backward, exact for the algorithm above:

* dX of a stride-1 convolution is the convolution of gy with the flipped,
  transposed kernel (padding 2 - P): the same forward code. Turning the
  image round instead of the kernel, it is also rot180 of the convolution
  of rot180(gy) with the kernel transposed (its in and out channels
  swapped, not flipped), whose transformed filters are forward's U read
  transposed: conv2d keeps U from forward and backward makes no filter
  transform for dX (``conv3x3(..., flip=True)``; flipped_weight_transform
  serves callers without U);
* dW: with dM = kron(A, A)^T @ dY (per 4x4 tile of gy, zero past the
  edge), dU = dM^T @ V (36 GEMMs of K x T x C), and dW = kron(G, G)^T @ dU;
  V is forward's when conv2d kept it (``v_out``; small layers), else
  made again block by block; db is dM's row _BIAS_POS (below) summed over
  the tiles.

Float32 error: G has entries 1/4, 1/6, 1/12, 1/24 and BT, AT entries up
to 8, so the rounding error is about 10x that of F(2x2, 3x3); the bound
is stated and checked in tests/fast/test_winograd4.py, and float64 gradchecks
pass through this module (with finite-difference steps of 1e-4).

Shape letters: N, C, H, W, K, OH, OW as in minivgg/functional/__init__.py;
T tiles, TY x TX tiles per image.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..threads import over_blocks, ranges, split, split_copy, sum_in_order
from . import winograd
from .activation import relu_into
from .channels_last import padded
from .winograd import scratch

#: BT (input transform), G (filter transform), AT (output transform) of
#: F(4x4, 3x3), from the interpolation points 0, 1, -1, 2, -2 and infinity.
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)

M_OUT, A_IN = 4, 6      # output tile 4x4, input tile 6x6

#: Column 1 of AT is all ones: M[7] (row 1, column 1 of the tile) reaches
#: every one of the 16 outputs exactly once, so the bias is added there.
_BIAS_POS = 1 * A_IN + 1

#: A block's transformed tiles, 36 * (C + K) * tiles elements, are kept
#: near this size (float32: 4 MiB), so that each block is gathered,
#: transformed, multiplied and transformed back while still in cache
#: (twice this size was slower: docs/benchmarks.md, "Measurements behind the
#: fast tier's constants").
BLOCK_ELEMENTS = 1 << 20
MIN_BLOCK_TILES = 64
#: The 36 GEMMs of every block read all of U (36 * K * C numbers). Up to
#: this size (float32: 8 MiB) U stays in the last-level cache from one
#: block to the next; beyond it (256 x 256 filters and up) it comes from
#: memory each time, and blocks hold at least LARGE_U_TILES tiles so that
#: the multiplications outweigh that read (docs/benchmarks.md,
#: "Measurements behind the fast tier's constants").
CACHED_U_ELEMENTS = 1 << 21
LARGE_U_TILES = 512

_KRON = {}


def kron(name, dtype):
    """kron(BT, BT) ("B", 36x36), kron(G, G) ("G", 36x9) or kron(AT, AT)
    ("A", 16x36) in ``dtype``, cached: the transforms as one matrix each,
    what ``transform`` computes in two passes."""
    key = (name, np.dtype(dtype))
    if key not in _KRON:
        m = {"B": BT, "G": G, "A": AT}[name]
        _KRON[key] = np.kron(m, m).astype(dtype)
    return _KRON[key]


#: Columns of a tile matrix per pass of ``transform``: 36 rows of 4096
#: float32 numbers are 576 KiB, so both passes run in the core's cache.
TRANSFORM_COLUMNS = 4096
#: The 1-D matrices of transform, by name.
_SMALL = {"B": BT, "A": AT, "AT": AT.T}


def transform(name, d, out):
    """out (P*P, X) = kron(L, L) @ d (Q*Q, X) for L (P, Q) = BT ("B"), AT
    ("A") or AT^T ("AT", the adjoint of "A"): each column of d is a QxQ
    tile (row-major) and becomes L tile L^T. Computed as two passes of L,
    over the tiles' rows, then over their columns, on TRANSFORM_COLUMNS
    columns at a time: 2Q (6 for F(4x4)) multiply-adds per element per
    pass instead of Q*Q (36) for the Kronecker matrix, and the middle
    result stays in cache (faster than kron(name) @ d: docs/benchmarks.md,
    "Measurements behind the fast tier's constants"). Split over the CPU
    threads."""
    p, q = _SMALL[name].shape
    d3, o3 = d.reshape(q, q, -1), out.reshape(p, p, -1)

    def part(a, b):
        cols = slice(a * TRANSFORM_COLUMNS, b * TRANSFORM_COLUMNS)
        _transform_part(name, d3[:, :, cols], o3[:, :, cols])
    split(part, -(-d.shape[1] // TRANSFORM_COLUMNS), out.size, winograd._PARALLEL_MIN)


def _transform_part(name, d3, o3):
    """transform on this thread: d3 (Q, Q, X) -> o3 (P, P, X)."""
    m = _SMALL[name].astype(o3.dtype)
    for s in range(0, d3.shape[2], TRANSFORM_COLUMNS):
        cols = slice(s, s + TRANSFORM_COLUMNS)
        winograd.sandwich(m, d3[:, :, cols], o3[:, :, cols])


def applies(x_shape, w_shape, stride, padding):
    """True when this module computes the convolution: a 3x3 kernel, stride
    1, padding 0..2, and an output of at least 4x4 (smaller ones would be
    mostly surplus)."""
    if tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1):
        return False
    ph, pw = padding
    if not (0 <= ph <= 2 and 0 <= pw <= 2):
        return False
    return x_shape[2] + 2 * ph - 2 >= M_OUT and x_shape[3] + 2 * pw - 2 >= M_OUT


def weight_transform(w):
    """U = G w G^T per filter: w (K, C, 3, 3) -> U (36, K, C)."""
    return winograd.filter_transform(w, G)


def flipped_weight_transform(w):
    """U of the kernel of dX = conv(gy, rot180(w) with K and C swapped):
    w (K, C, 3, 3) -> (36, C, K): weight_transform with the columns of G
    reversed (as winograd.flipped_weight_transform), which spares a copy of
    the flipped filters."""
    return winograd.filter_transform(w, G[:, ::-1]).transpose(0, 2, 1)


def weight_transform_adjoint(du):
    """dW = G^T dU G: dU (36, K, C) -> dW (K, C, 3, 3); the adjoint of weight_transform."""
    return winograd.filter_transform_adjoint(du, G)


def _tiles(nt, out_size):
    """Tiles along an axis of ``out_size`` outputs: ceil(out_size / 4)."""
    return -(-out_size // nt)


def _transformed_tiles(xp, rows, tx, size, name, out):
    """out (P*P, N*ROWS*TX*C) = transform(name) of the (SIZE x SIZE) tiles of
    the first ROWS tile rows of the padded images xp (N, ROWS', COLS, C),
    tiles every 4 pixels: column (n, t, s, c) of the tiles is
    D[SIZE*i + j] = xp[n, 4t + i, 4s + j, c]. The tiles are gathered (runs
    of C contiguous numbers) and transformed a chunk of about
    TRANSFORM_COLUMNS columns at a time, whole images or a few tile rows of
    one, so that D never leaves the cache (a whole block's D gathered first
    and then transformed had to be read back from memory)."""
    n, c = xp.shape[0], xp.shape[3]
    sn, sr, sq, sc = xp.strides
    view = as_strided(xp, (size, size, n, rows, tx, c),
                      (sr, sq, sn, M_OUT * sr, M_OUT * sq, sc), writeable=False)
    per_row = tx * c
    # Whole images per chunk when one fits, else tile rows of one image:
    # the blocks of winograd._blocks with C columns per tile.
    chunks = winograd._blocks(n, rows, tx, c, TRANSFORM_COLUMNS, 1)
    p = _SMALL[name].shape[0]
    o3 = out.reshape(p, p, -1)

    def work(a, b):
        for n0, n1, t0, t1 in chunks[a:b]:
            d = scratch("w4d", (size, size, n1 - n0, t1 - t0, tx, c), xp.dtype)
            np.copyto(d, view[:, :, n0:n1, t0:t1])
            lo = (n0 * rows + t0) * per_row
            _transform_part(name, d.reshape(size, size, -1), o3[:, :, lo:lo + d[0, 0].size])
    split(work, len(chunks), out.size, winograd._PARALLEL_MIN)


def _input_tiles(x, blk, padding, tx, out, mask=None):
    """out (36, tiles, C) = kron(BT, BT) @ D for the tiles of block ``blk``
    (images i0..i1, tile rows r0..r1) of x (N, C, H, W) padded by
    ``padding``: the padded band's 6x6 tiles, gathered and transformed;
    x times (mask > 0) where a ``mask`` (x's shape) is given."""
    i0, i1, r0, r1 = blk
    rows = r1 - r0
    xp = padded(x[i0:i1], padding[0], padding[1], "w4xpad", M_OUT * rows + 2, M_OUT * tx + 2,
                M_OUT * r0, winograd._PARALLEL_MIN, None if mask is None else mask[i0:i1])
    _transformed_tiles(xp, rows, tx, A_IN, "B", out.reshape(36, -1))


#: A layer's tiles are cut into at least this many blocks where each still
#: holds the least tiles above, so that a small layer (the width-0.25
#: model's, at 32x32) has blocks for the threads to share. A constant, not
#: the thread count: the blocks decide how the products round.
MIN_BLOCKS = 2


def _blocks(n, ty, tx, c, k):
    """The blocks of winograd._blocks for C input and K output channels,
    sized by this module's constants."""
    least = LARGE_U_TILES if 36 * c * k > CACHED_U_ELEMENTS else MIN_BLOCK_TILES
    return winograd._blocks(n, ty, tx, 36 * (c + k), BLOCK_ELEMENTS, least, MIN_BLOCKS)


def _starts(blocks, tx):
    """The first tile of each block in the layer's order of tiles."""
    starts, first = [], 0
    for i0, i1, r0, r1 in blocks:
        starts.append(first)
        first += (i1 - i0) * (r1 - r0) * tx
    return starts


def block_count(x_shape, k, padding=(1, 1)):
    """How many blocks conv3x3 cuts x (N, C, H, W) into for K outputs."""
    n, c, h, wd = x_shape
    ty, tx = _tiles(M_OUT, h + 2 * padding[0] - 2), _tiles(M_OUT, wd + 2 * padding[1] - 2)
    return len(_blocks(n, ty, tx, c, k))


def tile_count(x_shape, padding=(1, 1)):
    """T, the 4x4 output tiles of a batch: N * ceil(OH / 4) * ceil(OW / 4)."""
    n, _, h, wd = x_shape
    return n * _tiles(M_OUT, h + 2 * padding[0] - 2) * _tiles(M_OUT, wd + 2 * padding[1] - 2)


def conv3x3(x, w, padding=(1, 1), b=None, relu=False, u=None, flip=False, v_out=None,
            mask=None):
    """Winograd F(4x4, 3x3) convolution: x (N, C, H, W) any layout, w (K,
    C, 3, 3), b (K,) or None -> y (N, K, OH, OW), a view of an (N, OH, OW,
    K) array (channels last), max(y, 0) if ``relu``. Needs applies(...).
    ``u`` (36, K, C): the transformed filters, when already at hand (then
    ``w`` may be None). ``flip``: rot180(conv(rot180(x))) instead, x read
    and y written turned round by 180 degrees (dX from forward's U, below).
    ``v_out`` (36, T, C): where to leave the transformed input tiles V, for
    weight_grad to use again (tile_count gives T). ``mask`` (x's shape):
    the convolution of x * (mask > 0) instead (a ReLU's gradient, masked as
    each block is copied in)."""
    if flip:
        x = x[:, :, ::-1, ::-1]
        mask = None if mask is None else mask[:, :, ::-1, ::-1]
    n, c, h, wd = x.shape
    k = w.shape[0] if u is None else u.shape[1]
    ph, pw = padding
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    ty, tx = _tiles(M_OUT, oh), _tiles(M_OUT, ow)
    dtype = np.result_type(x.dtype, (w if u is None else u).dtype)
    x = x.astype(dtype, copy=False)
    u = weight_transform(w.astype(dtype, copy=False)) if u is None else u.astype(dtype, copy=False)
    bias = None if b is None else b.astype(dtype, copy=False)
    y = np.empty((n, oh, ow, k), dtype=dtype)
    yw = y[:, ::-1, ::-1] if flip else y        # where the tiles go
    ut = u.transpose(0, 2, 1)                   # BLAS reads U^T in place, no copy
    blocks = _blocks(n, ty, tx, c, k)
    starts = _starts(blocks, tx)

    def run(j):
        blk = blocks[j]
        i0, i1, r0, r1 = blk
        nb, rows = i1 - i0, r1 - r0
        tiles = nb * rows * tx
        v = (scratch("w4v", (36, tiles, c), dtype) if v_out is None
             else v_out[:, starts[j]:starts[j] + tiles])
        # From the padded input rows this block's tiles read (a band of one
        # image, or whole images), so the scratch stays block-sized.
        _input_tiles(x, blk, padding, tx, v, mask)
        m = scratch("w4m", (36, tiles, k), dtype)
        winograd.products16(v, ut, m)
        if bias is not None:
            m[_BIAS_POS] += bias
        t = scratch("w4y", (M_OUT, M_OUT, nb, rows, tx, k), dtype)
        transform("A", m.reshape(36, -1), t.reshape(16, -1))
        _scatter(t, yw[i0:i1], r0, oh, ow, relu)
    over_blocks(run, len(blocks))
    return y.transpose(0, 3, 1, 2)


def _scatter(t, y, r0, oh, ow, relu):
    """y[n, 4(r0 + r) + i, 4s + j, :] = t[i, j, n, r, s, :] (ReLU'd first,
    in t), dropping what falls past the edge: the whole tiles in one
    strided copy of runs of K contiguous numbers, the tiles cut by the edge
    position by position."""
    nb, rows, tx = t.shape[2:5]
    if relu:
        relu_into(t, t)
    full_r = max(0, min(rows, (oh - M_OUT * r0) // M_OUT))     # tile rows wholly inside
    full_c = min(tx, ow // M_OUT)
    if full_r and full_c:
        v = y[:, M_OUT * r0:M_OUT * (r0 + full_r), :M_OUT * full_c]
        s_n, s_h, s_w, s_k = v.strides
        tiles = as_strided(v, (nb, full_r, M_OUT, full_c, M_OUT, v.shape[3]),
                           (s_n, M_OUT * s_h, s_h, M_OUT * s_w, s_w, s_k))
        split_copy(tiles, t[:, :, :, :full_r, :full_c].transpose(2, 3, 0, 4, 1, 5),
                   winograd._PARALLEL_MIN)
    if full_r == rows and full_c == tx:
        return
    for i in range(M_OUT):          # the tiles past the edge
        y0 = M_OUT * r0 + i
        nr = min(rows, _tiles(M_OUT, oh - y0)) if y0 < oh else 0
        for j in range(M_OUT):
            nc = _tiles(M_OUT, ow - j) if j < ow else 0
            if nr == 0 or nc == 0:
                continue
            dst = y[:, y0:y0 + M_OUT * (nr - 1) + 1:M_OUT, j::M_OUT]
            if nr > full_r:         # the last tile row, every column
                np.copyto(dst[:, full_r:nr], t[i, j, :, full_r:nr, :nc])
            if nc > full_c:         # the last tile column, the rows above
                np.copyto(dst[:, :full_r, full_c:nc], t[i, j, :, :full_r, full_c:nc])


def weight_grad(x, gy, padding=(1, 1), v=None, bias=False, mask=None):
    """dW of conv3x3: x (N, C, H, W), gy (N, K, OH, OW), any layouts -> (K, C, 3, 3).
    ``v``: forward's transformed input tiles (conv3x3's ``v_out``), used
    instead of transforming x again. With ``bias``, (dW, db): db (K,) is
    the sum of dM's row _BIAS_POS, which adds up each tile's 16 gradients
    once (the adjoint of the bias's way in), so gy is not read again for it.
    ``mask`` (gy's shape): the gradients of gy * (mask > 0) instead (a ReLU's,
    masked as each block of gy is copied in)."""
    n, c, h, wd = x.shape
    k = gy.shape[1]
    oh, ow = gy.shape[2:]
    ty, tx = _tiles(M_OUT, oh), _tiles(M_OUT, ow)
    dtype = np.result_type(x.dtype, gy.dtype)
    x = x.astype(dtype, copy=False)
    gy = gy.astype(dtype, copy=False)
    blocks = _blocks(n, ty, tx, c, k)
    starts = _starts(blocks, tx)
    groups = ranges(len(blocks), _groups(len(blocks), 36 * k * c))
    dus = [np.empty((36, k, c), dtype=dtype) for _ in groups]
    dbs = [np.zeros(k, dtype=dtype) if bias else None for _ in groups]

    def run(g):
        du, db = dus[g], dbs[g]
        part = None     # the next blocks' share, added to the group's first
        for j in range(*groups[g]):
            i0, i1, r0, r1 = blk = blocks[j]
            nb, rows = i1 - i0, r1 - r0
            tiles = nb * rows * tx
            gp = padded(gy[i0:i1], 0, 0, "w4gpad", M_OUT * rows, M_OUT * tx, M_OUT * r0,
                        winograd._PARALLEL_MIN, None if mask is None else mask[i0:i1])
            if v is None:
                vb = scratch("w4v", (36, tiles, c), dtype)
                _input_tiles(x, blk, padding, tx, vb)
            else:   # the same blocks as forward's, so the same tiles
                vb = v[:, starts[j]:starts[j] + tiles].astype(dtype, copy=False)
            dm = scratch("w4m", (36, tiles, k), dtype)
            _transformed_tiles(gp, rows, tx, M_OUT, "AT", dm.reshape(36, -1))
            if bias:
                db += dm[_BIAS_POS].sum(axis=0)
            if j == groups[g][0]:      # dU = dM^T V per position
                winograd.products16(dm.transpose(0, 2, 1), vb, du)
            else:
                part = scratch("w4du", (36, k, c), dtype) if part is None else part
                winograd.products16(dm.transpose(0, 2, 1), vb, part)
                du += part
    over_blocks(run, len(groups))
    du = sum_in_order(dus, dus[0])
    dw = weight_transform_adjoint(du)
    return (dw, sum_in_order(dbs, dbs[0])) if bias else dw


#: The partial sums of dU that weight_grad's groups of blocks keep at most
#: hold this many numbers together (float32: 32 MiB).
GROUP_ELEMENTS = 1 << 23


def _groups(blocks, du_size):
    """How many groups of consecutive blocks weight_grad sums dU over, each
    into a partial sum of its own, added in order at the end: MIN_BLOCKS at
    most, as many as GROUP_ELEMENTS allows, one at least. It depends on the
    shapes alone, so dW's rounding does not depend on the thread count."""
    return max(1, min(blocks, MIN_BLOCKS, GROUP_ELEMENTS // du_size))
