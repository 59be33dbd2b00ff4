"""Max-pooling (§2.1: "Max-pooling is performed over a 2x2 pixel window,
with stride 2", after each block of Table 1).

Forward takes the largest value of each window and remembers where it was
(the argmax); backward sends each window's gradient to that position and
nowhere else, adding where windows overlap.

Ties: when several values of a window share the maximum, the first in
row-major window order (top-left first) wins, as in PyTorch's CPU kernel; a
NaN counts as the maximum, and the first NaN wins. Padding counts as
-infinity; windows that would run past the padded input are dropped.

On a GPU (and ``emu``) forward and backward are the kernels of
``kernels/pool.cu``, which keep the same argmax, one byte per window.
``minivgg/fast/pooling.py`` computes the same on the CPU without storing it.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..cuda import ops
from .shapes import check_pool_shapes, conv_output_size, pair


def _windows(xpad, kernel, stride, out_hw):
    """The KH*KW positions of every window, stacked last: (N, C, OH, OW, KH*KW)."""
    xp = get_array_module(xpad)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    return xp.stack([xpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]
                     for u in range(kh) for v in range(kw)], axis=-1)


class MaxPool2d(Function):
    """x (N, C, H, W) -> y (N, C, OH, OW), the maximum of each window."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        self.kernel = pair(kernel_size, "kernel_size")
        self.stride = pair(self.kernel if stride is None else stride, "stride")
        self.padding = pair(padding, "padding")

    def forward(self, x):
        self.x_shape = x.shape
        if self.device.uses_kernels:
            y, self.argmax = ops.max_pool_forward(self.device, x, self.kernel, self.stride,
                                                  self.padding)
            return y
        xp = get_array_module(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh = conv_output_size(x.shape[2], kh, sh, ph)
        ow = conv_output_size(x.shape[3], kw, sw, pw)
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
        win = _windows(xpad, self.kernel, self.stride, (oh, ow))
        self.argmax = win.argmax(axis=-1)          # the first maximum (or NaN) of each window
        return xp.take_along_axis(win, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.max_pool_backward(self.device, gy, self.argmax, self.x_shape,
                                         self.kernel, self.stride, self.padding)
        xp = get_array_module(gy)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        n, c, h, w = self.x_shape
        oh, ow = gy.shape[2:]
        gxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
        for s in range(kh * kw):
            u, v = divmod(s, kw)
            # window position s receives the gradient of the windows whose argmax it is
            gxpad[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += gy * (self.argmax == s)
        return gxpad[:, :, ph:ph + h, pw:pw + w]

    def release(self):
        super().release()
        self.argmax = None


def max_pool2d(x, kernel_size=2, stride=None, padding=0):
    """Max-pooling. x (N, C, H, W) -> (N, C, OH, OW); stride defaults to the kernel."""
    fn = MaxPool2d(kernel_size, stride, padding)
    check_pool_shapes(x.shape, fn.kernel, fn.stride, fn.padding)
    return fn(x)
