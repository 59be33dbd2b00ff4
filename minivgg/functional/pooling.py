"""Max-pooling (§2.1: "max-pooling is performed over a 2x2 pixel window,
with stride 2", after each block of Table 1).

Ties: when several inputs of a window share the maximum, the gradient goes
to the first of them in row-major window order (top-left first), the same
rule as PyTorch's CPU kernel, so results are deterministic and comparable.
Windows that would run past the (padded) input are dropped (floor mode).
"""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from .conv import _pair, conv_output_size


def check_pool_shapes(x_shape, kernel, stride, padding, where="max_pool2d"):
    """Validate a pooling input; return (OH, OW)."""
    if len(x_shape) != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got {tuple(x_shape)}")
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise ValueError(f"{where}: kernel and stride must be >= 1, got kernel {kernel}, "
                         f"stride {stride}")
    if ph > kh // 2 or pw > kw // 2 or ph < 0 or pw < 0:
        raise ValueError(f"{where}: padding must be between 0 and half the kernel, got {padding} "
                         f"for kernel {kernel}")
    oh = conv_output_size(x_shape[2], kh, sh, ph)
    ow = conv_output_size(x_shape[3], kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{where}: input of spatial size {x_shape[2]}x{x_shape[3]} is smaller "
                         f"than the {kh}x{kw} pooling window; expected at least "
                         f"{kh - 2 * ph}x{kw - 2 * pw}")
    return oh, ow


def _windows(x, kernel, stride, padding):
    """x (N, C, H, W) -> windows (C, N, OH, OW, KH*KW), a contiguous copy."""
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    xc = x.transpose(1, 0, 2, 3)
    if ph or pw:
        fill = -xp.inf if xp.issubdtype(x.dtype, xp.floating) else xp.iinfo(x.dtype).min
        buf = xp.full((c, n, h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype)
        buf[:, :, ph:ph + h, pw:pw + w] = xc
        xc = buf
    s_c, s_n, s_h, s_w = xc.strides
    view = xp.lib.stride_tricks.as_strided(
        xc, shape=(c, n, oh, ow, kh, kw),
        strides=(s_c, s_n, s_h * sh, s_w * sw, s_h, s_w))
    return xp.ascontiguousarray(view).reshape(c, n, oh, ow, kh * kw)


class MaxPool2d(Function):
    """x (N, C, H, W) -> y (N, C, OH, OW), the maximum of each window."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        self.kernel = _pair(kernel_size, "kernel_size")
        self.stride = _pair(self.kernel if stride is None else stride, "stride")
        self.padding = _pair(padding, "padding")

    def forward(self, x):
        win = _windows(x, self.kernel, self.stride, self.padding)
        idx = win.argmax(axis=-1)  # first maximum wins: the documented tie rule
        self.x_shape = x.shape
        self.idx = idx.astype(np.uint8) if win.shape[-1] <= 255 else idx
        y = win.max(axis=-1)  # (C, N, OH, OW)
        return y.transpose(1, 0, 2, 3)

    def backward(self, gy):
        xp = get_array_module(gy)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        n, c, h, w = self.x_shape
        _, _, oh, ow = gy.shape
        gyc = gy.transpose(1, 0, 2, 3)
        # Route each output gradient to the arg-max slot of its window.
        slots = xp.arange(kh * kw, dtype=self.idx.dtype)
        gwin = (self.idx[..., None] == slots) * gyc[..., None]
        gwin = gwin.astype(gy.dtype, copy=False).reshape(c, n, oh, ow, kh, kw)
        hp, wp = h + 2 * ph, w + 2 * pw
        if (sh, sw) == (kh, kw):
            # Non-overlapping windows tile the input: a reshape, no additions.
            tiled = gwin.transpose(0, 1, 2, 4, 3, 5).reshape(c, n, oh * kh, ow * kw)
            if (oh * kh, ow * kw) == (hp, wp):
                buf = tiled
            else:  # rows/columns past the last whole window get no gradient
                buf = xp.zeros((c, n, hp, wp), dtype=gy.dtype)
                buf[:, :, :oh * kh, :ow * kw] = tiled
        else:
            buf = xp.zeros((c, n, hp, wp), dtype=gy.dtype)
            for i in range(kh):
                for j in range(kw):
                    buf[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += gwin[:, :, :, :, i, j]
        return buf[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)

    def release(self):
        super().release()
        self.idx = None


def max_pool2d(x, kernel_size=2, stride=None, padding=0):
    """Max-pooling. x (N, C, H, W) -> (N, C, OH, OW); stride defaults to the kernel."""
    fn = MaxPool2d(kernel_size, stride, padding)
    check_pool_shapes(x.shape, fn.kernel, fn.stride, fn.padding)
    return fn(x)


def max_pool2d_reference(x, kernel_size=2, stride=None, padding=0):
    """Plain loop version on arrays (no autograd), for tests."""
    x = x.data if isinstance(x, Tensor) else x
    xp = get_array_module(x)
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair((kh, kw) if stride is None else stride, "stride")
    ph, pw = _pair(padding, "padding")
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return y
