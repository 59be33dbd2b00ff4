"""Arithmetic on Tensors, each op a Function with its backward beside it:
+, -, *, /, unary -, ** (a constant exponent), @ (2-D), reshape,
transpose, indexing, sum and mean. Broadcasting follows NumPy; the
gradient of a broadcast operand is summed back to its shape (``sum_to``).

Importing this module gives ``Tensor`` its operators (the end of the file),
so that autograd.py stays the core: Tensor, Function and backward.
"""
import numpy as np

from .autograd import Function, Tensor
from .backend import get_array_module


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (undoing NumPy broadcasting)."""
    if x.shape == tuple(shape):
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=axes, keepdims=True)
    if lead:
        y = y.reshape(y.shape[lead:])
    return y


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = sum_to(gy / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = (sum_to(-gy * self.a / (self.b * self.b), self.b.shape)
              if self.needs_input_grad[1] else None)
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        self.a = a
        return a ** self.exponent

    def backward(self, gy):
        c = self.exponent
        return gy * c * self.a ** (c - 1)


class MatMul(Function):
    """(M, K) @ (K, P) -> (M, P); 2-D operands only."""

    def forward(self, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul expects 2-D operands, got {a.shape} and {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        ga = gy @ self.b.T if self.needs_input_grad[0] else None
        gb = self.a.T @ gy if self.needs_input_grad[1] else None
        return ga, gb


class Reshape(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inv = np.argsort([a % gy.ndim for a in self.axes])  # negative axes too
        return gy.transpose(tuple(int(i) for i in inv))


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, self.dtype)
        if xp is np:
            np.add.at(gx, self.index, gy)  # repeated indices add up
        else:  # pragma: no cover - GPU
            import cupyx
            cupyx.scatter_add(gx, self.index, gy)
        return gx


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.axis is not None and not self.keepdims:
            axes = (self.axis,) if isinstance(self.axis, int) else self.axis
            axes = sorted(a % len(self.in_shape) for a in axes)
            for a in axes:
                gy = xp.expand_dims(gy, a)
        return xp.broadcast_to(gy, self.in_shape).copy()


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(a):
    return Neg()(a)


def power(a, exponent):
    return Pow(exponent)(a)


def matmul(a, b):
    return MatMul()(a, b)


def reshape(x, shape):
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(axes)(x)


def getitem(x, index):
    return GetItem(index)(x)


def sum_(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    shape = x.shape
    if axis is None:
        count = int(np.prod(shape)) if shape else 1
    else:
        axes = (axis,) if isinstance(axis, int) else axis
        count = int(np.prod([shape[a] for a in axes]))
    return sum_(x, axis, keepdims) * (1.0 / count)


def _attach_operators():
    """Give Tensor its operators and array-like methods."""
    Tensor.__add__ = lambda self, other: add(self, other)
    Tensor.__radd__ = lambda self, other: add(other, self)
    Tensor.__sub__ = lambda self, other: sub(self, other)
    Tensor.__rsub__ = lambda self, other: sub(other, self)
    Tensor.__mul__ = lambda self, other: mul(self, other)
    Tensor.__rmul__ = lambda self, other: mul(other, self)
    Tensor.__truediv__ = lambda self, other: div(self, other)
    Tensor.__rtruediv__ = lambda self, other: div(other, self)
    Tensor.__neg__ = lambda self: neg(self)
    Tensor.__pow__ = lambda self, exponent: power(self, exponent)
    Tensor.__matmul__ = lambda self, other: matmul(self, other)
    Tensor.__getitem__ = lambda self, index: getitem(self, index)
    Tensor.reshape = lambda self, *shape: reshape(self, _shape_args(shape))
    Tensor.transpose = lambda self, *axes: transpose(self, _shape_args(axes) or None)
    Tensor.T = property(lambda self: transpose(self, None))
    Tensor.sum = lambda self, axis=None, keepdims=False: sum_(self, axis, keepdims)
    Tensor.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)


def _shape_args(args):
    """reshape(2, 3) and reshape((2, 3)) alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


_attach_operators()
