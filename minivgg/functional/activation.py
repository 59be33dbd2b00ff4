"""ReLU and dropout (§2.1: "All hidden layers are equipped with the
rectification (ReLU) non-linearity"; §3.1: "dropout regularisation for the
first two fully-connected layers (dropout ratio set to 0.5)").
"""
from ..autograd import Function
from ..backend import get_array_module
from ..random import get_rng


class ReLU(Function):
    """y = max(x, 0), any shape. The gradient at exactly 0 is taken as 0."""

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.maximum(x, 0)
        self.mask = y > 0
        return y

    def backward(self, gy):
        return gy * self.mask

    def release(self):
        super().release()
        self.mask = None


def relu(x):
    """Rectified linear unit, elementwise; any shape."""
    return ReLU()(x)


class Dropout(Function):
    """Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p), any shape.

    Scaling at training time keeps the expected activation unchanged, so
    evaluation is the identity (the paper's Caffe does the same).
    """

    def __init__(self, p, rng=None):
        self.p = p
        self.rng = rng

    def forward(self, x):
        xp = get_array_module(x)
        rng = self.rng if self.rng is not None else get_rng(xp)
        keep = rng.random(x.shape, dtype=x.dtype) >= self.p
        self.scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale

    def release(self):
        super().release()
        self.scale = None


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout; identity when ``training`` is False or p == 0.

    ``rng``: a NumPy (or CuPy) Generator for reproducible masks; defaults to
    the library generator (``minivgg.manual_seed``).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout(p, rng)(x)
