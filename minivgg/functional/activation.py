"""ReLU and dropout (§2.1: "All hidden layers are equipped with the
rectification (ReLU) non-linearity"; §3.1: "dropout regularisation for the
first two fully-connected layers (dropout ratio set to 0.5)").

On a GPU (and ``emu``) both run the kernels of ``kernels/activation.cu``.
"""
import numpy as np

from .. import random as mrandom
from ..autograd import Function
from ..backend import get_array_module
from ..cuda import ops


class ReLU(Function):
    """y = max(x, 0), any shape. The gradient passes where x > 0 (the mask)
    and is 0 elsewhere, at exactly 0 included."""

    def forward(self, x):
        if self.device.uses_kernels:
            self.y = ops.relu_forward(self.device, x)
            return self.y
        self.mask = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.relu_backward(self.device, gy, self.y)
        return gy * self.mask

    def release(self):
        super().release()
        self.mask = self.y = None


def relu(x):
    """Rectified linear unit, elementwise; any shape."""
    return ReLU()(x)


def keep_mask(key, p, shape):
    """Dropout's keep mask for stream ``key``: True where element i (C order)
    is kept, each with probability 1 - p. Element i's uniform number is a hash
    of (key, i) (``minivgg.random``), so the mask is the same on every device
    and in every tier."""
    return mrandom.uniform24(key, int(np.prod(shape))).reshape(shape) >= mrandom.drop_threshold(p)


class Dropout(Function):
    """Inverted dropout: y = x * keep / (1 - p), keep ~ Bernoulli(1 - p), any shape.

    Scaling while training keeps each activation's expectation, so evaluation
    is the identity (as in the paper's Caffe). Backward lets the gradient
    through the same kept elements, with the same scale.
    """

    def __init__(self, p, key):
        self.p, self.key = p, key

    def forward(self, x):
        if self.device.uses_kernels:
            return ops.dropout(self.device, x, self.key, mrandom.drop_threshold(self.p),
                               1.0 / (1.0 - self.p))
        self.keep = self.device.asarray(keep_mask(self.key, self.p, x.shape))
        self.scale = x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.keep * self.scale

    def backward(self, gy):
        if self.device.uses_kernels:
            return ops.dropout(self.device, gy, self.key, mrandom.drop_threshold(self.p),
                               1.0 / (1.0 - self.p), backward=True)
        return gy * self.keep * self.scale

    def release(self):
        super().release()
        self.keep = None


def dropout(x, p=0.5, training=True, key=None):
    """Inverted dropout; identity when ``training`` is False or p == 0.

    ``key``: the 64-bit stream key fixing the mask; by default the next
    stream of the library's counter (``minivgg.manual_seed`` restarts it),
    so successive calls draw different masks.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout(p, next_key() if key is None else key)(x)


def next_key():
    """The key of the library's next random stream (``minivgg.manual_seed`` restarts them)."""
    return mrandom.stream_key(*mrandom.next_stream())
