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

Layout. The input is first copied once into "parity planes": the padded
image split into its 4 sub-images of even/odd rows and even/odd columns,
P[i, j][t, s] = xpad[2t + i, 2s + j], each (TY + 1, TX + 1). Element (i, j)
of tile (t, s) is then P[i % 2, j % 2][t + i // 2, s + j // 2]: a shifted
window of one plane. Taking each plane's rows whole, as a flat run of
NR * (TX + 1) numbers, makes a shift by one tile column a shift by one
element, so every addition of the transforms runs over one long contiguous
stretch (NumPy is 3-4x slower on the short rows of a strided view). The
price is one extra tile per row, s = TX, whose values are garbage: the
GEMMs carry it (1/TX more work) and the output transform drops it.

Backward, exact for the algorithm above:

* dX of a stride-1 convolution is the convolution of gy with the flipped,
  transposed kernel (padding 2 - P): the same forward code;
* dW: with dM = A dY A^T (per tile, from gy), dU[ab] = dM[ab] @ V[ab]^T,
  16 GEMMs of K x T x C, and dW = G^T dU G.

Float32 error: the transforms have coefficients 0, +-1/2 and +-1, so the
result differs from the direct convolution by a few float32 roundings of
the tile sums; tests/test_winograd.py states and checks the bound. Only
the CPU (NumPy) path uses this module; see functional/conv.py for when.

Shape letters: N, C, H, W, K, OH, OW as in functional/__init__.py;
T tiles, TY x TX tiles per image (TY = OH/2, TX = OW/2).
"""
import numpy as np

from ..threads import pool, threads

#: B^T (input transform), G (filter transform), A^T (output transform) of F(2x2, 3x3).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

#: Tiles per block are chosen so that a block's transformed input and output,
#: 16 * (C + K) * tiles elements, stay near this size (float32: 8 MiB).
BLOCK_ELEMENTS = 1 << 21

_PARALLEL_MIN = 1 << 15  # elements per block below which the transforms stay on one thread


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


def weight_transform(w):
    """U = G w G^T per filter: w (K, C, 3, 3) -> U (16, K, C), U[4a + b] = (G w G^T)[a, b].

    One product with the 16x9 matrix kron(G, G) on the (9, K*C) filter taps.
    """
    k, c = w.shape[:2]
    taps = np.ascontiguousarray(w.reshape(k * c, 9).T)           # (9, K*C)
    return (np.kron(G, G).astype(w.dtype) @ taps).reshape(16, k, c)


def weight_transform_adjoint(du):
    """dW = G^T dU G: dU (16, K, C) -> dW (K, C, 3, 3); the adjoint of weight_transform."""
    _, k, c = du.shape
    taps = np.kron(G, G).T.astype(du.dtype) @ du.reshape(16, k * c)   # (9, K*C)
    return np.ascontiguousarray(taps.T).reshape(k, c, 3, 3)


def _split(fn, total, size):
    """Run fn(a, b) over [0, total) cut into one range per thread (when worth it)."""
    n = threads()
    if n < 2 or size < _PARALLEL_MIN or total < n:
        fn(0, total)
        return
    bounds = np.linspace(0, total, n + 1).astype(int)
    jobs = [pool().submit(fn, a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    for j in jobs:
        j.result()


def to_planes(x, ph, pw, rows, cols):
    """x (N, C, H, W) -> P (C, N, 2, 2, ROWS, COLS), the parity planes of x
    zero-padded by (PH, PW): P[c, n, i, j, t, s] = xpad[n, c, 2t + i, 2s + j],
    zero wherever that falls outside x."""
    n, c, h, w = x.shape
    buf = np.empty((c, n, 2, 2, rows, cols), dtype=x.dtype)
    xc = x.transpose(1, 0, 2, 3)

    def fill(a, b):
        for i in (0, 1):
            r_first = (i - ph) % 2                       # first row of x in plane row-parity i
            t0 = (r_first + ph - i) // 2
            nr = max(0, min(len(range(r_first, h, 2)), rows - t0))
            for j in (0, 1):
                c_first = (j - pw) % 2
                s0 = (c_first + pw - j) // 2
                nc = max(0, min(len(range(c_first, w, 2)), cols - s0))
                plane = buf[a:b, :, i, j]
                plane[:, :, :t0] = 0
                plane[:, :, t0 + nr:] = 0
                plane[:, :, t0:t0 + nr, :s0] = 0
                plane[:, :, t0:t0 + nr, s0 + nc:] = 0
                plane[:, :, t0:t0 + nr, s0:s0 + nc] = \
                    xc[a:b, :, r_first:r_first + 2 * nr:2, c_first:c_first + 2 * nc:2]
    _split(fill, c, buf.size)
    return buf


def _input_tiles(planes, i0, i1, r0, r1, out, a, b):
    """out (16, C, NI, L) channels a..b = B^T d B of the tiles in rows r0..r1
    of images i0..i1, L = NR * (TX + 1) tiles per image (the last of each
    row garbage); planes (C, N, 2, 2, TY + 1, TX + 1) from to_planes."""
    ni, length = i1 - i0, out.shape[-1]
    cb = b - a
    u = np.empty((4, 2, cb, ni, length + 1), dtype=planes.dtype)
    u[..., length] = 0          # read only by the garbage tile of the last row
    for j in (0, 1):            # rows, B^T d, on each column parity j
        d = [planes[a:b, i0:i1, i % 2, j, r0 + i // 2:r1 + i // 2].reshape(cb, ni, length)
             for i in range(4)]
        np.subtract(d[0], d[2], out=u[0, j, ..., :length])
        np.add(d[1], d[2], out=u[1, j, ..., :length])
        np.subtract(d[2], d[1], out=u[2, j, ..., :length])
        np.subtract(d[1], d[3], out=u[3, j, ..., :length])
    o = out[:, a:b]
    for i in range(4):          # columns, (B^T d) B: column k of a tile is parity k % 2, shift k // 2
        c0, c1 = u[i, 0, ..., :length], u[i, 1, ..., :length]
        c2, c3 = u[i, 0, ..., 1:], u[i, 1, ..., 1:]
        np.subtract(c0, c2, out=o[4 * i])
        np.add(c1, c2, out=o[4 * i + 1])
        np.subtract(c2, c1, out=o[4 * i + 2])
        np.subtract(c1, c3, out=o[4 * i + 3])


def _output_tiles(m, y, i0, i1, r0, r1, bias, relu, a, b):
    """y[a:b, i0:i1, 2r0:2r1] (K, NI, 2NR, OW) = A^T m A (+ bias, then ReLU)
    for output channels a..b; m (16, K, NI, L) as from _input_tiles."""
    mk = m[:, a:b]
    p = np.empty((8,) + mk.shape[1:], dtype=m.dtype)   # p[4i + j] = (A^T m)[i, j]
    for j in range(4):
        np.add(mk[j], mk[4 + j], out=p[j])
        p[j] += mk[8 + j]
        np.subtract(mk[4 + j], mk[8 + j], out=p[4 + j])
        p[4 + j] -= mk[12 + j]
    if bias is not None:        # column 1 enters both outputs of a row exactly once
        p[1] += bias[a:b, None, None]
        p[5] += bias[a:b, None, None]
    kb, ni, nr = b - a, i1 - i0, r1 - r0
    tx = y.shape[3] // 2
    t = np.empty(mk.shape[1:], dtype=m.dtype)
    tiles = t.reshape(kb, ni, nr, tx + 1)[..., :tx]
    for i in range(2):
        q = p[4 * i:4 * i + 4]
        for j in range(2):
            if j == 0:
                np.add(q[0], q[1], out=t)
                t += q[2]
            else:
                np.subtract(q[1], q[2], out=t)
                t -= q[3]
            dst = y[a:b, i0:i1, 2 * r0 + i:2 * r1:2, j::2]
            if relu:
                np.maximum(tiles, 0, out=dst)
            else:
                np.copyto(dst, tiles)


#: At least this many tiles per block: below it the 16 GEMMs run well below
#: BLAS's rate (measured: K = C = 512 at 126 tiles, 180 GFLOP/s; at 256, 220).
MIN_BLOCK_TILES = 256


def _blocks(n, ty, txe, per_tile):
    """(i0, i1, r0, r1): images i0..i1, tile rows r0..r1, about
    max(BLOCK_ELEMENTS / per_tile, MIN_BLOCK_TILES) tiles each (whole images
    when they fit); TXE tiles per row."""
    tiles = max(BLOCK_ELEMENTS // per_tile, MIN_BLOCK_TILES)
    rows = max(1, tiles // txe)
    if rows >= ty:
        step = rows // ty
        return [(i, min(n, i + step), 0, ty) for i in range(0, n, step)]
    return [(i, i + 1, r, min(ty, r + rows)) for i in range(n) for r in range(0, ty, rows)]


def conv3x3(x, w, padding=(1, 1), b=None, relu=False):
    """Winograd convolution: x (N, C, H, W), w (K, C, 3, 3), b (K,) or None
    -> y (K, N, OH, OW) (channel-major; view it as (N, K, OH, OW) with
    transpose(1, 0, 2, 3)), max(y, 0) if ``relu``. Needs applies(...)."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    ph, pw = padding
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    ty, tx = oh // 2, ow // 2
    dtype = np.result_type(x.dtype, w.dtype)
    u = weight_transform(w.astype(dtype, copy=False))
    planes = to_planes(x.astype(dtype, copy=False), ph, pw, ty + 1, tx + 1)
    y = np.empty((k, n, oh, ow), dtype=dtype)
    bias = None if b is None else b.astype(dtype, copy=False)
    for i0, i1, r0, r1 in _blocks(n, ty, tx + 1, 16 * (c + k)):
        shape = (i1 - i0, (r1 - r0) * (tx + 1))
        v = np.empty((16, c) + shape, dtype=dtype)
        _split(lambda a, z: _input_tiles(planes, i0, i1, r0, r1, v, a, z), c, v.size)
        m = np.matmul(u, v.reshape(16, c, -1)).reshape((16, k) + shape)
        _split(lambda a, z: _output_tiles(m, y, i0, i1, r0, r1, bias, relu, a, z), k, m.size)
    return y


def _grad_tiles(gplanes, i0, i1, r0, r1, out, a, z):
    """out (16, K, NI, L) channels a..z = A dY A^T per 2x2 tile of gy, from
    gplanes (K, N, 2, 2, TY, TX + 1), the parity planes of gy (its column
    s = TX zero, so the garbage tiles get a zero gradient)."""
    ni, length = i1 - i0, out.shape[-1]
    kb = z - a
    g = [[gplanes[a:z, i0:i1, i, j, r0:r1].reshape(kb, ni, length) for j in (0, 1)]
         for i in (0, 1)]
    o = out[:, a:z]
    # Rows of A dY: g0, g0 + g1, g0 - g1, -g1 (for each column parity j).
    s = np.empty((2, 2, kb, ni, length), dtype=gplanes.dtype)
    for j in (0, 1):
        np.add(g[0][j], g[1][j], out=s[0, j])
        np.subtract(g[0][j], g[1][j], out=s[1, j])
    for i, (e, f) in enumerate(((g[0][0], g[0][1]), (s[0, 0], s[0, 1]), (s[1, 0], s[1, 1]))):
        np.copyto(o[4 * i], e)                 # columns: e, e + f, e - f, -f
        np.add(e, f, out=o[4 * i + 1])
        np.subtract(e, f, out=o[4 * i + 2])
        np.negative(f, out=o[4 * i + 3])
    e, f = g[1][0], g[1][1]                    # row 3 is -g1
    np.negative(e, out=o[12])
    np.add(e, f, out=o[13])
    np.negative(o[13], out=o[13])
    np.subtract(f, e, out=o[14])
    np.copyto(o[15], f)


def weight_grad(x, gy, padding=(1, 1)):
    """dW of conv3x3: x (N, C, H, W), gy (K, N, OH, OW) -> (K, C, 3, 3)."""
    n, c, h, wd = x.shape
    k = gy.shape[0]
    ph, pw = padding
    oh, ow = gy.shape[2:]
    ty, tx = oh // 2, ow // 2
    dtype = np.result_type(x.dtype, gy.dtype)
    planes = to_planes(x.astype(dtype, copy=False), ph, pw, ty + 1, tx + 1)
    gplanes = to_planes(gy.astype(dtype, copy=False).transpose(1, 0, 2, 3), 0, 0, ty, tx + 1)
    du = np.zeros((16, k, c), dtype=dtype)
    part = np.empty_like(du)
    for i0, i1, r0, r1 in _blocks(n, ty, tx + 1, 16 * (c + k)):
        shape = (i1 - i0, (r1 - r0) * (tx + 1))
        v = np.empty((16, c) + shape, dtype=dtype)
        _split(lambda a, z: _input_tiles(planes, i0, i1, r0, r1, v, a, z), c, v.size)
        dm = np.empty((16, k) + shape, dtype=dtype)
        _split(lambda a, z: _grad_tiles(gplanes, i0, i1, r0, r1, dm, a, z), k, dm.size)
        np.matmul(dm.reshape(16, k, -1), v.reshape(16, c, -1).transpose(0, 2, 1), out=part)
        du += part
    return weight_transform_adjoint(du)
