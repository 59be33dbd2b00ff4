"""2-D convolution (§2.1): the 3x3, stride 1, padding 1 filters of every
layer of Table 1, and configuration C's 1x1 filters, written as a student
writes them after reading the paper: im2col, then one matrix product.

Forward. Output pixel (n, i, j) sees a C x KH x KW block of the zero-padded
input. Laid out as columns, the blocks form the matrix

    col (C*KH*KW, N*OH*OW),   rows (c, u, v), columns (n, i, j)

and the whole convolution is one product with the filters as rows:

    Y = W @ col + b           W (K, C*KH*KW), Y (K, N*OH*OW)

Backward, from gY = dL/dY laid out like Y:

    dW   = gY @ col^T         (each filter's gradient: gY against the blocks it saw)
    db   = gY summed over its columns
    dcol = W^T @ gY           (each block's gradient)
    dX   = col2im(dcol)       (every block added back where it came from)

im2col is a loop over the KH x KW positions of the kernel: position (u, v)
of every block is the padded input shifted by (u, v), taken every
``stride`` pixels. col2im is the same loop, adding instead of copying.
Backward keeps x and W, not col: col is KH*KW times larger than x, so it is
made again.

On a GPU (and the emulated GPU, device ``emu``) im2col and col2im are the
kernels of ``kernels/conv.cu`` and the products run on cuBLAS. The faster
CPU algorithms for the same convolution (Winograd, channels-last columns,
one GEMM over a whole small map) are in ``minivgg/fast/``, each tested equal
to this one.
"""
from ..autograd import Function
from ..backend import get_array_module
from ..cuda import ops
from .shapes import check_conv_shapes, conv_output_size, pair


def im2col(x, kh, kw, stride=1, padding=0, device=None):
    """x (N, C, H, W) -> col (C*KH*KW, N*OH*OW), rows (c, u, v), columns (n, i, j)."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    if device is not None and device.uses_kernels:
        return ops.im2col(device, x, kh, kw, (sh, sw), (ph, pw))
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    col = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            # position (u, v) of every block: the input shifted by (u, v), strided
            block_uv = xpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]     # (N, C, OH, OW)
            col[:, u, v] = block_uv.transpose(1, 0, 2, 3)
    return col.reshape(c * kh * kw, n * oh * ow)


def col2im(col, x_shape, kh, kw, stride=1, padding=0, device=None):
    """The adjoint of im2col: col (C*KH*KW, N*OH*OW) -> (N, C, H, W), the
    entries of overlapping blocks added up."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    if device is not None and device.uses_kernels:
        return ops.col2im(device, col, x_shape, kh, kw, (sh, sw), (ph, pw))
    xp = get_array_module(col)
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    col = col.reshape(c, kh, kw, n, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for u in range(kh):
        for v in range(kw):
            xpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += col[:, u, v].transpose(1, 0, 2, 3)
    return xpad[:, :, ph:ph + h, pw:pw + w]


class Conv2d(Function):
    """y = x * w + b (cross-correlation, as in every DL framework).

    x (N, C, H, W), w (K, C, KH, KW), b (K,) -> y (N, K, OH, OW).
    """

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")

    def forward(self, x, w, b=None):
        k, c, kh, kw = w.shape
        n, _, h, wd = x.shape
        oh = conv_output_size(h, kh, self.stride[0], self.padding[0])
        ow = conv_output_size(wd, kw, self.stride[1], self.padding[1])
        col = im2col(x, kh, kw, self.stride, self.padding, self.device)
        y = w.reshape(k, c * kh * kw) @ col                     # (K, N*OH*OW)
        if b is not None:
            y += b.reshape(k, 1)
        self.x, self.w = x, w
        return y.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, gy):
        x, w = self.x, self.w
        k, c, kh, kw = w.shape
        gy = gy.transpose(1, 0, 2, 3).reshape(k, -1)            # (K, N*OH*OW), like W @ col
        need = self.needs_input_grad
        gx = gw = gb = None
        if need[1]:
            col = im2col(x, kh, kw, self.stride, self.padding, self.device)
            gw = (gy @ col.T).reshape(w.shape)
        if need[0]:
            dcol = w.reshape(k, c * kh * kw).T @ gy
            gx = col2im(dcol, x.shape, kh, kw, self.stride, self.padding, self.device)
        if len(need) == 3 and need[2]:
            gb = gy.sum(axis=1)
        return (gx, gw) if len(need) == 2 else (gx, gw, gb)

    def release(self):
        super().release()
        self.x = self.w = None


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution. x (N, C, H, W), w (K, C, KH, KW), b (K,) or None ->
    (N, K, OH, OW) with OH = floor((H + 2P - KH) / S) + 1. ``stride`` and
    ``padding`` are ints or (h, w) pairs."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    check_conv_shapes(x.shape, w.shape, stride, padding)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"conv2d: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    fn = Conv2d(stride, padding)
    return fn(x, w) if b is None else fn(x, w, b)
