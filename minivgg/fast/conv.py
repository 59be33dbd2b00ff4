"""2-D convolution as im2col + GEMM (§2.1: the 3x3 stride-1 pad-1 and the
1x1 convolutions of Table 1), the fast tier's: the same product as the
textbook minivgg/functional/conv.py, in cache-sized blocks, with the bias
and the ReLU fused, and the other CPU algorithms (Winograd, channels-last
columns, the whole-map GEMM) called from here once fast/select.py has
chosen one. tests/test_tiers.py holds every algorithm equal to the textbook
convolution.

Forward lays every receptive field out as a column, ``col`` of shape
(C*KH*KW, N*OH*OW), and multiplies by the (K, C*KH*KW) weight matrix: one
large GEMM per layer. Backward keeps only ``x`` and ``w``:

* dW = gy (K, N*OH*OW) @ col^T (on the CPU col @ gy laid out (N*OH*OW,
  K)), with ``col`` recomputed from ``x`` rather than kept from forward
  (it is KH*KW times larger than ``x``);
* for stride 1, dX is itself a convolution, of ``gy`` with the spatially
  flipped, in/out-transposed kernel and padding KH-1-P: a gather, no
  scatter-add, and the same im2col + GEMM code path as forward;
* for other strides dX goes through col2im (KH*KW strided additions);
* on the CPU dW and db come from one product per block of columns
  (``_weight_bias_grad``); without dX (the first layer, whose input is
  the image) the ReLU mask is applied block by block there too, never to
  the whole gradient.

The result is returned as an (N, K, OH, OW) *view* of the product, never
copied back into NCHW order. On the CPU the product is turned round,
col^T @ W^T, so each output pixel's K channels lie together (channels
last, (N*OH*OW, K)), the layout every CPU convolution leaves (the
channels-last im2col of fast/channels_last.py, the whole-map GEMM of
fast/small_maps.py, Winograd F(4x4) of fast/winograd4.py) and the next one
reads fastest; on a kernel device it stays (K, N*OH*OW), channel-major,
the layout its kernels read.

Every convolution of VGG is followed by a ReLU; ``conv2d(..., relu=True)``
applies it in the same pass as the bias (and its backward masks the
gradient with the output), so the pre-activation is never stored.

On cuda and emu devices im2col, col2im and the bias+ReLU pass are the
kernels of ``kernels/conv.cu`` and the GEMMs are cuBLAS (``cupy.matmul``);
the chunking and the algorithm are the same as here.
"""
import numpy as np

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module
from ..cuda import ops
from ..functional.shapes import conv_output_size, pair as _pair
from ..threads import (over_blocks, parallel, ranges, serial_blas, side_by_side, split_copy,
                       sum_in_order)
from . import channels_last, products, small_maps, winograd, winograd4
from .activation import masked, relu_into
from .blocks import CHUNK_ELEMENTS, MIN_BLOCKS, chunks as _chunks, cpu_blocks as _cpu_blocks  # noqa: F401
from .winograd import scratch

#: The modules behind the algorithm names of select.CONV_ALGORITHMS.
_WINOGRAD = {"winograd2": winograd, "winograd4": winograd4, None: None}

_PARALLEL_MIN = None  # elements below which copies stay on one thread (None: threads.SPLIT_MIN)


def _copy(dst, src):
    """dst[...] = src, split over CPU threads (threads.split_copy) for big NumPy arrays.

    NumPy's strided copy runs on one core while BLAS uses them all; the
    im2col copies are a third of a training step on a 2-core machine, and
    NumPy releases the GIL while copying, so threads really run in parallel.
    """
    if get_array_module(dst) is not np:
        dst[...] = src
    else:
        split_copy(dst, src, _PARALLEL_MIN)
    return dst


def _padded_channel_major(x, ph, pw):
    """x (N, C, H, W) -> zero-padded buffer laid out (C, N, H+2PH, W+2PW)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    xc = x.transpose(1, 0, 2, 3)
    if ph == 0 and pw == 0:
        return xc
    buf = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    _copy(buf[:, :, ph:ph + h, pw:pw + w], xc)
    return buf


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0)):
    """Receptive fields as columns.

    x: (N, C, H, W) -> col: (C*KH*KW, N*OH*OW), rows ordered (c, kh, kw),
    columns ordered (n, oh, ow). Works on any memory layout of ``x``.
    """
    xp = get_array_module(x)
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    if kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0:
        col = xp.empty((c, n, h, w), dtype=x.dtype)
        return _copy(col, x.transpose(1, 0, 2, 3)).reshape(c, n * oh * ow)
    col = xp.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    return _band_columns(_padded_channel_major(x, ph, pw), kh, kw, (sh, sw), 0, oh, ow, col)


def _band_columns(buf, kh, kw, stride, r0, r1, ow, out):
    """The columns of output rows r0..r1 of every image in ``buf``, the
    padded input laid out (C, NB, HP, WP), copied into ``out`` (C*KH*KW,
    NB*(R1-R0)*OW): out[(c, i, j), (n, r, s)] = buf[c, n, SH*(r0 + r) + i,
    SW*s + j]. Returns ``out``."""
    xp = get_array_module(buf)
    (sh, sw), (c, nb) = stride, buf.shape[:2]
    s_c, s_n, s_h, s_w = buf.strides
    view = xp.lib.stride_tricks.as_strided(
        buf[:, :, sh * r0:], shape=(c, kh, kw, nb, r1 - r0, ow),
        strides=(s_c, s_h, s_w, s_n, s_h * sh, s_w * sw))
    _copy(out.reshape(c, kh, kw, nb, r1 - r0, ow), view)
    return out


def col2im(col, x_shape, kh, kw, stride, padding):
    """Adjoint of im2col: col (C*KH*KW, N*OH*OW) -> dx (N, C, H, W).

    Overlapping receptive fields add up; done as KH*KW strided additions into
    a padded buffer (no atomics, deterministic).
    """
    xp = get_array_module(col)
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    col6 = col.reshape(c, kh, kw, n, oh, ow)
    buf = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            buf[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += col6[:, i, j]
    return buf[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)


def _block_columns(x, blk, kh, kw, stride, padding, ow, ones):
    """The column matrix of CPU block ``blk`` = (i0, i1, r0, r1) (images
    and output rows, from _cpu_blocks): (CKK, (I1-I0)*(R1-R0)*OW), with a
    last row of ones below it if ``ones`` (then a product with [W | bias]
    adds the bias, and one with gy sums gy for the bias gradient). Built
    from the padded input rows the block reads, in this thread's scratch
    buffers (fast/winograd.scratch), so blocks run on the threads side by
    side."""
    i0, i1, r0, r1 = blk
    sh, (ph, pw) = stride[0], padding
    c, h, w = x.shape[1:]
    nb, rows = i1 - i0, r1 - r0
    ckk = c * kh * kw
    # The padded rows sh*r0 .. sh*(r1-1)+kh-1 of images i0..i1, (C, NB, ROWS', WP).
    first, span = sh * r0, sh * (rows - 1) + kh
    buf = scratch("c2pad", (c, nb, span, w + 2 * pw), x.dtype)
    lo, hi = max(0, ph - first), max(0, min(span, h + ph - first))   # rows of buf inside x
    buf[:, :, :lo] = 0
    buf[:, :, hi:] = 0
    if hi > lo:
        buf[:, :, lo:hi, :pw] = 0
        buf[:, :, lo:hi, pw + w:] = 0
        _copy(buf[:, :, lo:hi, pw:pw + w],
              x[i0:i1, :, first + lo - ph:first + hi - ph].transpose(1, 0, 2, 3))
    m = nb * rows * ow
    col = scratch("c2col", (ckk + ones, m), x.dtype)
    if ones:
        col[ckk:] = 1
    _band_columns(buf, kh, kw, stride, 0, rows, ow, col[:ckk])
    return col


def _im2col_on(dev):
    """im2col for device ``dev``: the CUDA kernel, or the NumPy version."""
    if dev.uses_kernels:
        return lambda x, kh, kw, stride, padding: ops.im2col(dev, x, kh, kw, stride, padding)
    return im2col


def _conv_gemm(dev, x, w, stride, padding, b=None, relu=False):
    """Convolution as GEMM: y (N, K, OH, OW) (plus bias b, then ReLU if
    ``relu``), a view of the product: (K, N*OH*OW) on a kernel device
    (channel-major), (N*OH*OW, K) on the CPU (channels last, as the CPU's
    other convolutions leave their outputs).

    The batch is cut into chunks (see CHUNK_ELEMENTS); each chunk's columns
    are built and multiplied at once, filling a block of the result. On the
    CPU the chunks are the blocks of _cpu_blocks (an image too big for one
    is cut into bands of rows), each block's product is colᵀ @ Wᵀ (both
    transposed views, no copy; W @ col, turned round after, for a block of
    fewer pixels than filters), the bias comes with the product (a ones row
    below the columns) and the ReLU follows while the block is in cache; on
    a kernel device one fused pass follows the GEMMs.
    """
    xp = get_array_module(x)
    k, _, kh, kw = w.shape
    n = x.shape[0]
    oh = conv_output_size(x.shape[2], kh, stride[0], padding[0])
    ow = conv_output_size(x.shape[3], kw, stride[1], padding[1])
    w2 = w.reshape(k, -1)
    l = oh * ow
    if dev.uses_kernels:
        to_columns = _im2col_on(dev)
        chunks = _chunks(n, w2.shape[1] * l, dev.kind)
        if len(chunks) == 1:
            y2 = xp.matmul(w2, to_columns(x, kh, kw, stride, padding))
        else:
            y2 = xp.empty((k, n * l), dtype=np.result_type(x.dtype, w.dtype))
            for i0, i1 in chunks:
                y2[:, i0 * l:i1 * l] = xp.matmul(w2, to_columns(x[i0:i1], kh, kw, stride,
                                                                padding))
        if b is not None:
            ops.bias_act(dev, y2, b, relu)
        elif relu:
            y2 = ops.relu_forward(dev, y2)
        return y2.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)
    y2 = np.empty((n * l, k), dtype=np.result_type(x.dtype, w.dtype))
    # [W | b] with a row of ones below the columns adds the bias in the
    # product; it costs a copy of W, so a layer with more weights per
    # filter than outputs per channel (a dense evaluation's FC-as-conv
    # layers: 25,088 against 4) adds the bias to each block instead.
    ones = b is not None and w2.shape[1] < n * l
    if ones:
        w2 = np.concatenate([w2, b.reshape(k, 1)], axis=1).astype(y2.dtype, copy=False)
    blocks = _cpu_blocks(n, oh, ow, w2.shape[1] - ones, k)

    def run(j):
        i0, i1, r0, r1 = blocks[j]
        col = _block_columns(x, blocks[j], kh, kw, stride, padding, ow, ones)
        a = i0 * l + r0 * ow                  # the block's first row of the result
        block = y2[a:a + col.shape[1]]
        if block.shape[0] >= k:
            np.matmul(col.T, w2.T, out=block)
        else:   # a few pixels and many filters (FC-as-conv): W @ col is the faster product
            products.matmul_turned(w2, col, block)
        if b is not None and not ones:
            block += b
        if relu:
            relu_into(block, block)
    over_blocks(run, len(blocks))
    return y2.reshape(n, oh, ow, k).transpose(0, 3, 1, 2)


def _weight_bias_grad(x, gy, w_shape, stride, padding, bias, y=None):
    """dW and db (None unless ``bias``) of a CPU im2col convolution in one
    pass over the blocks of _column_blocks: each block of gy (N, K, OH, OW),
    taken channels-last as (pixels, K), is multiplied at once by the
    block's columns, col @ g, whose row of ones gives db. With ``y``, the
    ReLU's output, each block of gy is first masked with y > 0 into a
    cache-sized buffer: a layer without dX (the first) never needs the
    whole masked gradient, which separate passes would write out and read
    back twice."""
    k, c, kh, kw = w_shape
    oh, ow = gy.shape[2:]
    ckk = c * kh * kw
    dtype = np.result_type(x.dtype, gy.dtype)
    gyl = gy.transpose(0, 2, 3, 1)                      # (N, OH, OW, K), views
    yl = None if y is None else y.transpose(0, 2, 3, 1)
    blocks = _cpu_blocks(x.shape[0], oh, ow, ckk, k)
    groups = ranges(len(blocks), MIN_BLOCKS)
    accs = [np.zeros((ckk + bias, k), dtype=dtype) for _ in groups]

    def run(gi):
        for i0, i1, r0, r1 in blocks[slice(*groups[gi])]:
            col = _block_columns(x, (i0, i1, r0, r1), kh, kw, stride, padding, ow, bias)
            g = gyl[i0:i1, r0:r1]
            if yl is not None:
                g = g * (yl[i0:i1, r0:r1] > 0)
            accs[gi] += col @ g.reshape(col.shape[1], k)
    over_blocks(run, len(groups))
    acc = sum_in_order(accs, accs[0])
    return acc[:ckk].T.reshape(w_shape).copy(), (acc[ckk].copy() if bias else None)


def _conv_weight_grad(dev, x, gy2, w_shape, stride, padding):
    """dW (K, C, KH, KW) = gy (K, N*OH*OW) @ col^T, col rebuilt chunk by
    chunk: the kernel devices' path, and the plain reference the CPU's
    _weight_bias_grad and the Winograd modules are tested against."""
    kh, kw = w_shape[2:]
    n = x.shape[0]
    l = gy2.shape[1] // n
    to_columns = _im2col_on(dev)
    gw = None
    for a, b in _chunks(n, l * int(np.prod(w_shape[1:])), dev.kind):
        part = gy2[:, a * l:b * l] @ to_columns(x[a:b], kh, kw, stride, padding).T
        if gw is None:
            gw = part
        else:
            gw += part
    return gw.reshape(w_shape)


#: F(4x4)'s backward applies the ReLU's mask to gy as it copies each block
#: in, instead of writing the masked gradient out whole first.
MASK_WHILE_COPYING = True

#: F(4x4) keeps its transformed input tiles V (36 x T x C numbers) from
#: forward for dW when they have at most this many elements (16 MiB in
#: float32): every layer of VGG at 32x32, batch 64, and the 14x14 layers at
#: 224x224, batch 8; bigger ones are made again in backward, block by block
#: in cache, rather than held for the whole step.
WINOGRAD_KEEP_V = 1 << 22


def _dx_reuses_u(x_shape):
    """True when F(4x4)'s dX is to come from forward's transformed filters
    U (36 x K x C numbers), with gy read and dX written turned round
    (winograd4): where U is at least as large as gy (N x OH x OW x K, with
    OH x OW = H x W at VGG's padding), i.e. 36 C >= N H W. There the filter
    transform it saves outweighs the descending reads and writes, which
    cost more than they save on big maps (the measurements:
    docs/benchmarks.md, "Measurements behind the fast tier's constants")."""
    n, c, h, wd = x_shape
    return 36 * c >= n * h * wd


class Conv2d(Function):
    """y = x * w + b (cross-correlation, as in every DL framework), then
    max(y, 0) when ``relu`` (VGG's conv + ReLU as one op).

    x (N, C, H, W), w (K, C, KH, KW), b (K,) -> y (N, K, OH, OW).
    """

    def __init__(self, stride=1, padding=0, relu=False, algorithm="im2col", dx_algorithm=None):
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.relu = relu
        # chosen by select.choose_conv (forward) and select.winograd_choice (the
        # flipped-kernel convolution that gives a channel-major layer's dX)
        self.algorithm, self.dx_algorithm = algorithm, dx_algorithm
        # F(4x4)'s transformed filters and input tiles, the whole-map matrix
        self.u = self.v = self.mt = None

    @serial_blas
    def forward(self, x, w, b=None):
        self.small = self.algorithm == "whole-map"
        wino = self.wino = _WINOGRAD.get(self.algorithm)
        self.last = self.algorithm == "im2col-channels-last"
        if self.small:  # its matrix is kept for dX
            self.mt = small_maps.matrix(w, x.shape[2], x.shape[3], self.padding,
                                        np.result_type(x.dtype, w.dtype))
            y = small_maps.conv(x, w, self.padding, b, self.relu, self.mt).transpose(0, 3, 1, 2)
        elif wino is not None:
            u = v = None
            dtype = np.result_type(x.dtype, w.dtype)
            if wino is winograd4 and is_grad_enabled():
                if _dx_reuses_u(x.shape):
                    # Its transformed filters are kept: dX reads them again (backward).
                    u = self.u = winograd4.weight_transform(w.astype(dtype, copy=False))
                tiles, c = winograd4.tile_count(x.shape, self.padding), x.shape[1]
                if 36 * tiles * c <= WINOGRAD_KEEP_V:
                    # So are its transformed input tiles, which dW reads again.
                    v = self.v = np.empty((36, tiles, c), dtype)
            if wino is winograd4:
                y = wino.conv3x3(x, w, self.padding, b, self.relu, u=u, v_out=v)
            else:
                y = wino.conv3x3(x, w, self.padding, b, self.relu)
        elif self.last:
            y = channels_last.conv(x, w, self.padding, b, self.relu).transpose(0, 3, 1, 2)
        else:
            y = _conv_gemm(self.device, x, w, self.stride, self.padding, b, self.relu)
        self.x, self.w = x, w
        self.y = y if self.relu else None  # where y > 0 is the ReLU's gradient mask
        return y

    @serial_blas
    def backward(self, gy):
        x, w, dev = self.x, self.w, self.device
        k, _, kh, kw = w.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        has_b = len(self.needs_input_grad) == 3
        need_x, need_w = self.needs_input_grad[:2]
        need_b = has_b and self.needs_input_grad[2]
        wino = self.wino
        if self.small:
            gx, gw, gb = small_maps.grads(x, w, gy, self.padding, self.y, need_x, need_w, need_b,
                                          self.mt)
            gx = None if gx is None else gx.transpose(0, 3, 1, 2)
            return (gx, gw) + ((gb,) if has_b else ())
        if self.last:
            return self._backward_channels_last(gy, need_x, need_w, need_b, has_b)
        cpu_gemm = not dev.uses_kernels and wino is None
        if cpu_gemm and need_w and not need_x:
            # No dX (the first layer): mask, dW and db block by block.
            gw, gb = _weight_bias_grad(x, gy, w.shape, self.stride, self.padding, need_b,
                                       self.y)
            return (None, gw) + ((gb,) if has_b else ())
        # F(4x4) applies the ReLU's mask to gy as it copies each block in
        # (``mask``): the masked gradient is never written out whole. Every
        # other path takes gy masked first.
        mask = (self.y if self.relu and not dev.uses_kernels and wino is winograd4
                and MASK_WHILE_COPYING else None)
        gy_in = gy
        if self.relu:
            if dev.uses_kernels:
                gy = ops.relu_backward(dev, gy, self.y)
            elif mask is None:
                gy = masked(gy, self.y)
            else:
                gy = None       # made below only if a path needs it whole

        def gy_masked():
            nonlocal gy
            if gy is None:
                gy = masked(gy_in, self.y)
            return gy

        # gy as (K, N*OH*OW): a view when gy is channel-major (kernel devices),
        # a copy otherwise, so made only where a channel-major product needs it.
        def gy2():
            return gy_masked().transpose(1, 0, 2, 3).reshape(k, -1)
        def weights():
            """(dW, db or None)."""
            if wino is winograd4 and need_b:    # db too, from the same pass over gy
                return wino.weight_grad(x, gy_in, self.padding, v=self.v, bias=True, mask=mask)
            if wino is winograd4:
                return wino.weight_grad(x, gy_in, self.padding, v=self.v, mask=mask), None
            if wino is not None:
                return wino.weight_grad(x, gy_masked(), self.padding), None
            if cpu_gemm:
                return _weight_bias_grad(x, gy_masked(), w.shape, self.stride, self.padding,
                                         need_b)
            return _conv_weight_grad(dev, x, gy2(), w.shape, self.stride, self.padding), None

        def inputs():
            """dX."""
            if sh == 1 and sw == 1 and ph <= kh - 1 and pw <= kw - 1:
                w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, K, KH, KW)
                pad_t = (kh - 1 - ph, kw - 1 - pw)
                wino_x = _WINOGRAD[self.dx_algorithm]
                if wino_x is winograd4 and self.u is not None:
                    # rot180(conv(rot180(gy), w with in/out channels swapped)):
                    # forward's U, read transposed, instead of a new transform.
                    return winograd4.conv3x3(gy_in if mask is not None else gy_masked(), None,
                                             pad_t, u=self.u.transpose(0, 2, 1), flip=True,
                                             mask=mask)
                if wino_x is winograd4:
                    return winograd4.conv3x3(gy_in if mask is not None else gy_masked(), None,
                                             pad_t, u=winograd4.flipped_weight_transform(w),
                                             mask=mask)
                if wino_x is not None:
                    return wino_x.conv3x3(gy_masked(), None, pad_t,
                                          u=wino_x.flipped_weight_transform(w))
                return _conv_gemm(dev, gy_masked(), w_t, (1, 1), pad_t)
            gcol = w.reshape(k, -1).T @ gy2()
            if dev.uses_kernels:
                return ops.col2im(dev, gcol, x.shape, kh, kw, self.stride, self.padding)
            return col2im(gcol, x.shape, kh, kw, self.stride, self.padding)

        gx = gw = gb = None
        if need_w and need_x and wino is winograd4 and not side_by_side(
                winograd4.block_count(x.shape, k, self.padding)):
            # Too few blocks for the threads to share (a small map, a big U):
            # dW and dX, independent of each other, run side by side instead.
            if mask is None or _WINOGRAD[self.dx_algorithm] is not winograd4:
                gy_masked()
            out = [None, None]
            parallel(lambda i: out.__setitem__(i, (weights, inputs)[i]()), 2)
            (gw, gb), gx = out
        else:
            if need_w:
                gw, gb = weights()
            if need_x:
                gx = inputs()
        if need_b and gb is None:
            gb = gy_masked().sum(axis=(0, 2, 3))
        return (gx, gw) + ((gb,) if has_b else ())

    def profile_detail(self):
        """The algorithm and the layer's shapes, for a Profiler(detail=True)."""
        k, c = self.w.shape[:2]
        return f"{self.algorithm}, {c}->{k}, {self.x.shape[2]}x{self.x.shape[3]}"

    def _backward_channels_last(self, gy, need_x, need_w, need_b, has_b):
        """Backward of the channels-last path: gy masked into (N, OH, OW, K)
        once, dW and db from its blocks, dX as a channels-last convolution."""
        g = channels_last.masked_gradient(gy, self.y)
        gx = gw = gb = None
        if need_w:
            gw, gb = channels_last.weight_bias_grad(self.x, g, self.w.shape, self.padding, need_b)
        elif need_b:
            gb = g.reshape(-1, g.shape[3]).sum(axis=0)
        if need_x:
            gx = channels_last.input_grad(g, self.w, self.padding).transpose(0, 3, 1, 2)
        return (gx, gw) + ((gb,) if has_b else ())

    def release(self):
        super().release()
        self.x = self.w = self.y = self.mt = self.u = self.v = None
