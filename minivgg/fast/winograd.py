"""Winograd F(2x2, 3x3): the 3x3 stride-1 convolutions of VGG (§2.1) with
2.25x fewer multiplications (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016, measured there on VGG).

A 2x2 tile of output pixels depends on a 4x4 tile d of the (padded) input.
With the constant matrices below,

    y_tile = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise)

is the correlation of d with the 3x3 filter g, using 16 multiplications
instead of 2*2*9 = 36. Summed over input channels, the elementwise product
becomes, for each of the 16 positions (a, b) of the 4x4 transformed tile,
one matrix product over all T tiles of the batch:

    U[ab] (K, C) = (G w G^T)[a, b]       the transformed filters
    V[ab] (C, T) = (B^T d B)[a, b]       the transformed input tiles
    M[ab] (K, T) = U[ab] @ V[ab]         16 GEMMs of K x C x T
    y            = A^T M A                 per tile, then bias and ReLU

T = N * OH/2 * OW/2, so the 16 GEMMs do 16*K*C*T = 4*K*C*N*OH*OW
multiply-adds where im2col + GEMM does 9*K*C*N*OH*OW. The transforms cost
a few additions per element; they are written as whole-array NumPy
additions (no per-tile loop) over cache-sized blocks of tiles, so each
block is transformed, multiplied and transformed back while it is still in
cache.

Layout. Each block's input is first copied into "parity planes": the
padded image split into its 4 sub-images of even/odd rows and even/odd
columns, P[i, j][t, s] = xpad[2t + i, 2s + j], with the batch last:
(TY + 1, TX + 1, N) each. Element (i, j) of tile (t, s) is then
P[i % 2, j % 2][t + i // 2, s + j // 2]: a shifted window of one plane,
whose rows are runs of TX * N contiguous numbers. Every addition of the
transforms thus runs over long contiguous stretches (NumPy is much slower
on the short rows of a strided view, and tiles never need a copy of their
own), at the price of a transposing copy into the planes and one out of
the output tiles.

Backward, exact for the algorithm above:

* dX of a stride-1 convolution is the convolution of gy with the flipped,
  transposed kernel (padding 2 - P): the same forward code;
* dW: with dM = A dY A^T (per tile, from gy), dU[ab] = dM[ab] @ V[ab]^T,
  16 GEMMs of K x T x C, and dW = G^T dU G.

Float32 error: the transforms have coefficients 0, +-1/2 and +-1, so the
result differs from the direct convolution by a few float32 roundings of
the tile sums; tests/fast/test_winograd.py states and checks the bound.
Only the fast tier's CPU path uses this module; fast/select.py decides
where (WINOGRAD_SIZES, WINOGRAD_MIN_MACS).

Shape letters: N, C, H, W, K, OH, OW as in minivgg/functional/__init__.py;
T tiles, TY x TX tiles per image (TY = OH/2, TX = OW/2).
"""
import math
import threading

import numpy as np

from ..threads import over_blocks, ranges, split, sum_in_order
from .activation import relu_into

#: B^T (input transform), G (filter transform), A^T (output transform) of F(2x2, 3x3).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

#: Tiles per block are chosen so that a block's transformed input and output,
#: 16 * (C + K) * tiles elements, stay near this size (float32: 8 MiB).
BLOCK_ELEMENTS = 1 << 21

_PARALLEL_MIN = None  # elements below which the passes stay on one thread (None: threads.SPLIT_MIN)


def applies(x_shape, w_shape, stride, padding):
    """True when F(2x2, 3x3) computes this convolution: a 3x3 kernel,
    stride 1, padding 0..2, and an even output size (whole 2x2 tiles)."""
    if tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1):
        return False
    ph, pw = padding
    if not (0 <= ph <= 2 and 0 <= pw <= 2):
        return False
    oh, ow = x_shape[2] + 2 * ph - 2, x_shape[3] + 2 * pw - 2
    return oh >= 2 and ow >= 2 and oh % 2 == 0 and ow % 2 == 0


#: Filters per step of filter_transform and its adjoint: 16384 filters'
#: taps and halves are 1.9 MiB (float32, F(4x4)), in the core's cache
#: alongside the block of U being written.
FILTER_COLUMNS = 16384


#: The filters are cut into at least this many chunks of FILTER_MIN_COLUMNS
#: or more where there are enough of them (64 x 64 filters: 8 of 512), so
#: that the threads share the transform of a small layer too.
FILTER_MIN_CHUNKS = 8
FILTER_MIN_COLUMNS = 2048


def _filter_width(total):
    """Filters per chunk of filter_transform: FILTER_COLUMNS, or fewer to
    make FILTER_MIN_CHUNKS chunks (shapes only, like every cut here)."""
    return max(1, min(FILTER_COLUMNS, max(FILTER_MIN_COLUMNS, -(-total // FILTER_MIN_CHUNKS))))


def _filter_chunks(total, lo, hi):
    """(s, e): the filters of chunks lo..hi of _filter_width(total) each."""
    width = _filter_width(total)
    for s in range(lo * width, min(total, hi * width), width):
        yield s, min(total, s + width)


def sandwich(m, d, out):
    """out[:, :, x] = m @ d[:, :, x] @ m^T for every column x: d (Q, Q, X),
    m (P, Q) -> out (P, P, X), as two BLAS passes of m, over the tiles'
    rows (into a kept scratch), then over their columns; the form of every
    Winograd transform on the CPU (tiles, filters and their adjoints), on
    cache-sized column ranges."""
    q, p = d.shape[0], m.shape[0]
    half = scratch("sandwich", (q, p, d.shape[2]), out.dtype)    # half[j] = m @ d[:, j]
    np.matmul(m, d.transpose(1, 0, 2), out=half)
    np.matmul(m, half.transpose(1, 0, 2), out=out)
    return out


def filter_transform(w, g):
    """U = g w g^T for every filter: w (K, C, 3, 3), g (A, 3) -> U (A*A, K, C),
    U[A*a + b, k, c] = (g w[k, c] g^T)[a, b] (both Winograd modules'
    filter transforms; A = 4 for F(2x2), 6 for F(4x4)).

    FILTER_COLUMNS filters at a time: their 9 taps copied into rows (a
    transposed copy, so that BLAS reads unit strides), then two passes of g,
    over the taps' rows, then over their columns, in cache: faster than one
    product of kron(g, g) with the taps read in place (docs/benchmarks.md,
    "Measurements behind the fast tier's constants")."""
    k, c = w.shape[:2]
    a = g.shape[0]
    g = g.astype(w.dtype)
    taps = w.reshape(k * c, 9)
    u = np.empty((a, a, k * c), dtype=w.dtype)

    def chunks(lo, hi):
        for s, e in _filter_chunks(k * c, lo, hi):
            t = scratch("ftaps", (3, 3, e - s), w.dtype)       # t[i, j] = w[..., i, j]
            np.copyto(t, taps[s:e].reshape(e - s, 3, 3).transpose(1, 2, 0))
            sandwich(g, t, u[:, :, s:e])
    split(chunks, -(-k * c // _filter_width(k * c)), u.size, _PARALLEL_MIN)
    return u.reshape(a * a, k, c)


def filter_transform_adjoint(du, g):
    """dW = g^T dU g for every filter: dU (A*A, K, C), g (A, 3) -> dW (K, C,
    3, 3); filter_transform's steps run backward (the two passes of g^T,
    then the taps copied back to filter-major order)."""
    k, c = du.shape[1:]
    a = g.shape[0]
    gt = np.ascontiguousarray(g.T.astype(du.dtype))
    d = du.reshape(a, a, k * c)
    dw = np.empty((k * c, 9), dtype=du.dtype)

    def chunks(lo, hi):
        for s, e in _filter_chunks(k * c, lo, hi):
            t = sandwich(gt, d[:, :, s:e], scratch("ftaps", (3, 3, e - s), du.dtype))
            np.copyto(dw[s:e].reshape(e - s, 3, 3).transpose(1, 2, 0), t)
    split(chunks, -(-k * c // _filter_width(k * c)), dw.size, _PARALLEL_MIN)
    return dw.reshape(k, c, 3, 3)


def weight_transform(w):
    """U = G w G^T per filter: w (K, C, 3, 3) -> U (16, K, C), U[4a + b] = (G w G^T)[a, b]."""
    return filter_transform(w, G)


def flipped_weight_transform(w):
    """U of the kernel of dX = conv(gy, rot180(w) with K and C swapped):
    w (K, C, 3, 3) -> (16, C, K). Turning a 3x3 filter by 180 degrees
    is g w[::-1, ::-1] g^T = (g J) w (g J)^T with J the reversal, so this is
    weight_transform with the columns of G reversed: no copy of the filters
    or of U (a permuted copy of U had cost more than half the transform);
    each matrix is then transposed (a view)."""
    return filter_transform(w, G[:, ::-1]).transpose(0, 2, 1)


def weight_transform_adjoint(du):
    """dW = G^T dU G: dU (16, K, C) -> dW (K, C, 3, 3); the adjoint of weight_transform."""
    return filter_transform_adjoint(du, G)


_SCRATCH = threading.local()


def scratch(key, shape, dtype):
    """An uninitialised array for a temporary of the transforms, whose memory
    is kept (per thread and key) from one call to the next.

    A fresh NumPy array of a few MB gets pages the kernel must map and zero
    on first touch: in a training step at 32x32 that was 10,000 page faults
    and a quarter of the CPU time of a 64 -> 128 layer. Kept buffers grow
    to the largest block seen, a few tens of MB.
    """
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buf = bufs.get(key)
    if buf is None or buf.nbytes < nbytes:
        buf = bufs[key] = np.empty(nbytes, dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _split(fn, total, size):
    """Run fn(a, b) over [0, total) cut into one range per thread (when worth it)."""
    split(fn, total, size, _PARALLEL_MIN)


def _span(t0, count, parity, pad, size):
    """Plane positions t0..t0+count of one parity hold xpad[2t + parity], x
    index 2t + parity - pad; return (first local position inside x, how many,
    first x index)."""
    lo = max(t0, -(-(pad - parity) // 2))
    hi = min(t0 + count, (size - 1 + pad - parity) // 2 + 1)
    return lo - t0, max(0, hi - lo), 2 * lo + parity - pad


def to_planes(x, ph, pw, rows, cols, row0=0, key=None):
    """x (N, C, H, W) -> P (C, 2, 2, ROWS, COLS, N), the parity planes of x
    zero-padded by (PH, PW), plane rows row0..row0+ROWS:
    P[c, i, j, t, s, n] = xpad[n, c, 2(row0 + t) + i, 2s + j], zero wherever
    that falls outside x. With ``key``, P is that scratch buffer."""
    n, c, h, w = x.shape
    shape = (c, 2, 2, rows, cols, n)
    buf = np.empty(shape, dtype=x.dtype) if key is None else scratch(key, shape, x.dtype)
    planes = buf.transpose(0, 5, 1, 2, 3, 4)      # indexed as (C, N, 2, 2, ROWS, COLS)
    xc = x.transpose(1, 0, 2, 3)

    def fill(a, b):
        for i in (0, 1):
            t0, nr, r = _span(row0, rows, i, ph, h)
            for j in (0, 1):
                s0, nc, q = _span(0, cols, j, pw, w)
                plane = planes[a:b, :, i, j]
                plane[:, :, :t0] = 0
                plane[:, :, t0 + nr:] = 0
                plane[:, :, t0:t0 + nr, :s0] = 0
                plane[:, :, t0:t0 + nr, s0 + nc:] = 0
                plane[:, :, t0:t0 + nr, s0:s0 + nc] = xc[a:b, :, r:r + 2 * nr:2, q:q + 2 * nc:2]
    _split(fill, c, buf.size)
    return buf


# The transforms along one axis, on lists of arrays (views) that hold tile
# positions 0..3 (or 0..1) for many tiles at once.

def _bt(d, out):
    """B^T along the list d[0..3] into out[0..3]: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def _at(m, out0, out1):
    """A^T along the list m[0..3]: out0 = m0 + m1 + m2, out1 = m1 - m2 - m3."""
    np.add(m[0], m[1], out=out0)
    out0 += m[2]
    np.subtract(m[1], m[2], out=out1)
    out1 -= m[3]


def _a(e, f, out):
    """A along the pair (e, f) into out[0..3]: e, e + f, e - f, -f."""
    np.copyto(out[0], e)
    np.add(e, f, out=out[1])
    np.subtract(e, f, out=out[2])
    np.negative(f, out=out[3])


#: Tiles per block are chosen so that a block's transformed input and output,
#: 16 * (C + K) * tiles elements, stay near this size (float32: 8 MiB), but
#: at least MIN_BLOCK_TILES: below that the 16 GEMMs run well below BLAS's
#: rate (docs/benchmarks.md, "Measurements behind the fast tier's constants").
BLOCK_ELEMENTS = 1 << 21
MIN_BLOCK_TILES = 256
#: A layer's tiles are cut into at least this many blocks where each keeps
#: MIN_BLOCK_TILES, for the threads to share (a constant, not the thread
#: count: the blocks decide how dW's sums round).
MIN_BLOCKS = 8
#: weight_grad's partial sums of dU (one per group of blocks) hold at most
#: this many numbers together (float32: 32 MiB).
GROUP_ELEMENTS = 1 << 23


def _blocks(n, ty, tx, per_tile, block_elements=None, min_tiles=None, pieces=1):
    """(i0, i1, r0, r1): images i0..i1 and tile rows r0..r1 of each block,
    whole images when one fits, else bands of tile rows of one image.
    A block holds about ``block_elements`` (default BLOCK_ELEMENTS) over
    ``per_tile`` tiles, at least ``min_tiles`` (default MIN_BLOCK_TILES);
    a batch of whole images is cut into ``pieces`` blocks at least where
    each keeps ``min_tiles``, the images spread evenly: blocks enough for
    the threads to share a small layer. The blocks depend on the shapes
    alone, never on the thread count."""
    block_elements = BLOCK_ELEMENTS if block_elements is None else block_elements
    min_tiles = MIN_BLOCK_TILES if min_tiles is None else min_tiles
    tiles = max(block_elements // per_tile, min_tiles)
    if ty * tx <= tiles:
        # Whole images: as few blocks as the size allows, at least ``pieces``
        # where each keeps min_tiles, the images spread evenly over them.
        count = max(-(-n // (tiles // (ty * tx))), min(pieces, n, n * ty * tx // min_tiles))
        return [(a, b, 0, ty) for a, b in ranges(n, count)]
    rows = max(1, tiles // tx)
    return [(i, i + 1, r, min(ty, r + rows)) for i in range(n) for r in range(0, ty, rows)]


def _input_tiles(planes, out, a, b):
    """out (16, C, NR, TX, NI)[:, a:b] = B^T d B of every tile of the planes
    (C, 2, 2, NR + 1, TX + 1, NI)."""
    nr, tx = out.shape[2:4]
    u = scratch("u", (4, 2, b - a) + planes.shape[3:], planes.dtype)[:, :, :, :nr]
    for j in (0, 1):            # rows, of each column parity j
        _bt([planes[a:b, i % 2, j, i // 2:i // 2 + nr] for i in range(4)],
            [u[i, j] for i in range(4)])
    o = out[:, a:b]
    for i in range(4):          # columns: column k of a tile is parity k % 2, shift k // 2
        _bt([u[i, k % 2, :, :, k // 2:k // 2 + tx] for k in range(4)], o[4 * i:4 * i + 4])


def _output_tiles(m, y, blk, bias, relu, a, b):
    """y[a:b, i0:i1, 2r0:2r1] = A^T m A (+ bias, then ReLU) for output
    channels a..b; m (16, K, NR, TX, NI) a block's tiles."""
    mk = m[:, a:b]
    p = scratch("p", (8,) + mk.shape[1:], m.dtype)    # p[4i + j] = (A^T m)[i, j]
    for j in range(4):
        _at(mk[j::4], p[j], p[4 + j])
    if bias is not None:        # column 1 enters both outputs of a row exactly once
        p[1] += bias[a:b, None, None, None]
        p[5] += bias[a:b, None, None, None]
    i0, i1, r0, r1 = blk
    t = scratch("t", (2,) + mk.shape[1:], m.dtype)
    for i in range(2):
        _at(p[4 * i:4 * i + 4], t[0], t[1])
        for j in range(2):
            dst = y[a:b, i0:i1, 2 * r0 + i:2 * r1:2, j::2]
            tiles = t[j].transpose(0, 3, 1, 2)          # (K, NI, NR, TX)
            if relu:
                relu_into(tiles, dst)
            else:
                np.copyto(dst, tiles)


def conv3x3(x, w, padding=(1, 1), b=None, relu=False, u=None):
    """Winograd convolution: x (N, C, H, W), w (K, C, 3, 3), b (K,) or None
    -> y (N, K, OH, OW), a view of a (K, N, OH, OW) array (channel-major),
    max(y, 0) if ``relu``. Needs applies(...).
    ``u`` (16, K, C): the transformed filters, when already at hand (then
    ``w`` may be None)."""
    n, c, h, wd = x.shape
    k = w.shape[0] if u is None else u.shape[1]
    ph, pw = padding
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    tx = ow // 2
    dtype = np.result_type(x.dtype, (w if u is None else u).dtype)
    x = x.astype(dtype, copy=False)
    u = weight_transform(w.astype(dtype, copy=False)) if u is None else u.astype(dtype, copy=False)
    y = np.empty((k, n, oh, ow), dtype=dtype)
    bias = None if b is None else b.astype(dtype, copy=False)
    blocks = _blocks(n, oh // 2, tx, 16 * (c + k), pieces=MIN_BLOCKS)

    def run(j):
        i0, i1, r0, r1 = blk = blocks[j]
        planes = to_planes(x[i0:i1], ph, pw, r1 - r0 + 1, tx + 1, row0=r0, key="planes")
        shape = (r1 - r0, tx, i1 - i0)
        v = scratch("v", (16, c) + shape, dtype)
        _split(lambda a, z: _input_tiles(planes, v, a, z), c, v.size)
        m = scratch("m", (16, k) + shape, dtype)
        products16(u, v.reshape(16, c, -1), m.reshape(16, k, -1))
        _split(lambda a, z: _output_tiles(m, y, blk, bias, relu, a, z), k, m.size)
    over_blocks(run, len(blocks))
    return y.transpose(1, 0, 2, 3)


def products16(a, b, out):
    """out[p] = a[p] @ b[p] for every position p of the transformed tile
    (both Winograd modules), the positions split over the threads (one
    BLAS call each, on one thread)."""
    def part(p0, p1):
        np.matmul(a[p0:p1], b[p0:p1], out=out[p0:p1])
    split(part, a.shape[0], out.size, _PARALLEL_MIN)


def _grad_tiles(gplanes, out, a, z):
    """out (16, K, NR, TX, NI)[:, a:z] = A dY A^T per 2x2 tile of gy, from
    its parity planes gplanes (K, 2, 2, NR, TX, NI)."""
    g = gplanes[a:z]
    o = out[:, a:z]
    # Rows of A dY: g0, g0 + g1, g0 - g1, -g1 (for each column parity j).
    s = scratch("s", (2, 2) + o.shape[1:], out.dtype)
    for j in (0, 1):
        np.add(g[:, 0, j], g[:, 1, j], out=s[0, j])
        np.subtract(g[:, 0, j], g[:, 1, j], out=s[1, j])
    _a(g[:, 0, 0], g[:, 0, 1], o[0:4])
    _a(s[0, 0], s[0, 1], o[4:8])
    _a(s[1, 0], s[1, 1], o[8:12])
    _a(g[:, 1, 0], g[:, 1, 1], o[12:16])   # row 3 is -g1: negate it
    np.negative(o[12:16], out=o[12:16])


def weight_grad(x, gy, padding=(1, 1)):
    """dW of conv3x3: x (N, C, H, W), gy (N, K, OH, OW), any layouts -> (K, C, 3, 3)."""
    n, c, h, wd = x.shape
    k = gy.shape[1]
    ph, pw = padding
    oh, ow = gy.shape[2:]
    tx = ow // 2
    dtype = np.result_type(x.dtype, gy.dtype)
    x = x.astype(dtype, copy=False)
    gy = gy.astype(dtype, copy=False)
    blocks = _blocks(n, oh // 2, tx, 16 * (c + k), pieces=MIN_BLOCKS)
    # Blocks in fixed groups, each summed into a partial dU of its own, the
    # partial sums added in order: the same numbers on any number of threads.
    groups = ranges(len(blocks), max(1, min(MIN_BLOCKS, GROUP_ELEMENTS // (16 * k * c))))
    dus = [np.zeros((16, k, c), dtype=dtype) for _ in groups]

    def run(g):
        part = scratch("du", (16, k, c), dtype)
        for i0, i1, r0, r1 in blocks[slice(*groups[g])]:
            planes = to_planes(x[i0:i1], ph, pw, r1 - r0 + 1, tx + 1, row0=r0, key="planes")
            gplanes = to_planes(gy[i0:i1], 0, 0, r1 - r0, tx, row0=r0, key="gplanes")
            shape = (r1 - r0, tx, i1 - i0)
            v = scratch("v", (16, c) + shape, dtype)
            _split(lambda a, z: _input_tiles(planes, v, a, z), c, v.size)
            dm = scratch("m", (16, k) + shape, dtype)
            _split(lambda a, z: _grad_tiles(gplanes, dm, a, z), k, dm.size)
            products16(dm.reshape(16, k, -1), v.reshape(16, c, -1).transpose(0, 2, 1), part)
            dus[g] += part
    over_blocks(run, len(groups))
    return weight_transform_adjoint(sum_in_order(dus, dus[0]))
