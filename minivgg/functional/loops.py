"""The ops of §2.1 written as loops straight from their definitions, on
arrays, without autograd: the oracles the tests hold every implementation
to (the textbook tier in this package and the fast tier in minivgg/fast/).
"""
import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module
from .shapes import conv_output_size, pair


def _array(a):
    return a.data if isinstance(a, Tensor) else a


def conv2d_reference(x, w, b=None, stride=1, padding=0):
    """Convolution as a loop over output pixels:
    y[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xpad[n, c, i*S + u, j*S + v]."""
    x, w, b = _array(x), _array(w), _array(b)
    xp = get_array_module(x)
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(wd, kw, sw, pw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = xp.zeros((n, k, oh, ow), dtype=np.result_type(x.dtype, w.dtype))
    for i in range(oh):
        for j in range(ow):
            patch = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = xp.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b.reshape(1, k, 1, 1)
    return y


def max_pool2d_reference(x, kernel_size=2, stride=None, padding=0):
    """Max-pooling as a loop over output pixels (padding counts as -inf)."""
    x = _array(x)
    xp = get_array_module(x)
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair((kh, kw) if stride is None else stride, "stride")
    ph, pw = pair(padding, "padding")
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return y


def local_response_norm_reference(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """LRN as a loop over channels: b_c = a_c / (k + alpha * sum a_c'^2) ** beta."""
    x = _array(x)
    xp = get_array_module(x)
    c = x.shape[1]
    y = xp.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        denom = (k + alpha * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
        y[:, ch] = x[:, ch] / denom
    return y
