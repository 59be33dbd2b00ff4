"""The layers of Table 1 (§2.1) as Modules, with PyTorch's parameter shapes:
conv weight (K, C, KH, KW), linear weight (F_out, F_in).

Each layer validates its input and names itself (its dotted name in the
model, e.g. ``features.3``) in the error, with expected and actual shapes.
Each calls its op through ``minivgg/fast/select.py``, the door that runs the
textbook op (``minivgg.functional``) or its fast twin, by the tier in force
(``minivgg.use_ops``).
"""
from collections import OrderedDict

import numpy as np

from .. import functional as F
from ..arithmetic import reshape
from ..fast import select
from ..functional.shapes import pair as _pair
from .module import Module, Parameter


class Conv2d(Module):
    """x (N, C, H, W) -> (N, K, OH, OW). Weights start at zero: the model's
    initialiser (``minivgg.nn.init``) fills them."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 bias=True, dtype=np.float32):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), _pair(stride, "stride"), \
            _pair(padding, "padding")
        self.weight = Parameter(np.zeros((out_channels, in_channels, kh, kw), dtype=dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None

    def forward(self, x, relu=False):
        """The convolution; with ``relu=True`` also the ReLU after it, in one op
        (``Sequential`` does this for a Conv2d followed by a ReLU)."""
        return select.conv2d(x, self.weight, self.bias, self.stride, self.padding, relu,
                             where=f"{self.name} ({self.extra_repr()})")

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Linear(Module):
    """x (N, F_in) -> (N, F_out)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        return select.linear(x, self.weight, self.bias,
                             where=f"{self.name} ({self.extra_repr()})")

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class MaxPool2d(Module):
    """x (N, C, H, W) -> (N, C, OH, OW)."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(self.kernel_size if stride is None else stride, "stride")
        self.padding = _pair(padding, "padding")

    def forward(self, x):
        return select.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                 where=f"{self.name} ({self.extra_repr()})")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class ReLU(Module):
    """max(x, 0), any shape."""

    def forward(self, x):
        return select.relu(x)


class Dropout(Module):
    """Inverted dropout in train mode, identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return select.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class LocalResponseNorm(Module):
    """AlexNet LRN (alpha NOT divided by size; see functional.normalization)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected input of shape (N, C, H, W), "
                             f"got {tuple(x.shape)}")
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x):
        return F.flatten(x)


class Sequential(Module):
    """Runs its children in order; children are named "0", "1", ...

    In the fast tier a Conv2d directly followed by a ReLU (every convolution
    of Table 1) runs as one fused op, ``Conv2d(x, relu=True)``: the same
    result, without storing the pre-activation or making a second pass over
    it. The textbook tier runs every child, so hooks on a ReLU see it run.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for name, layer in layers[0].items():
                setattr(self, name, layer)
        else:
            for i, layer in enumerate(layers):
                setattr(self, str(i), layer)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*list(self._modules.values())[i])
        return list(self._modules.values())[i]

    def forward(self, x):
        layers = list(self._modules.values())
        fuse = select.fuses_conv_relu()
        i = 0
        while i < len(layers):
            layer = layers[i]
            if fuse and isinstance(layer, Conv2d) and i + 1 < len(layers) and \
                    type(layers[i + 1]) is ReLU:
                x = layer(x, relu=True)
                i += 2
            else:
                x = layer(x)
                i += 1
        return x


class LinearAsConv(Module):
    """A Linear layer applied as a KxK convolution with the *same* Parameters.

    x (N, C, H, W) -> (N, F_out, H-K+1, W-K+1). The linear weight
    (F_out, C*K*K) is reshaped to (F_out, C, K, K) inside the graph, so
    gradients and updates flow to the one shared Parameter.
    """

    def __init__(self, linear, in_channels, kernel_size):
        super().__init__()
        if linear.in_features != in_channels * kernel_size ** 2:
            raise ValueError(f"{linear.name}: {linear.in_features} inputs cannot be viewed as "
                             f"{in_channels} channels x {kernel_size}x{kernel_size}")
        self.weight = linear.weight
        self.bias = linear.bias
        self.in_channels, self.kernel_size = in_channels, kernel_size

    def forward(self, x):
        w_shape = (self.weight.shape[0], self.in_channels, self.kernel_size, self.kernel_size)
        return select.conv2d(x, reshape(self.weight, w_shape), self.bias, 1, 0, where=(
            f"{self.name} (FC as {self.kernel_size}x{self.kernel_size} conv)"))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.weight.shape[0]}, "
                f"kernel_size={self.kernel_size}")
