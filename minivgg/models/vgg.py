"""The VGG configurations of Table 1 (§2.1, §2.2) and their dense,
fully-convolutional form for testing (§3.2).

Table 1 is ``CONFIGS`` below: one list per column, read top to bottom.
An int is a 3x3 conv (stride 1, pad 1) with that many output channels,
``(channels, 1)`` is configuration C's 1x1 conv (pad 0), "LRN" is AlexNet's
local response normalisation, "M" a 2x2 stride-2 max-pool. Every conv is
followed by a ReLU. The classifier is FC-4096, ReLU, dropout, FC-4096, ReLU,
dropout, FC-classes. Layer indices (``features.{i}``, ``classifier.{0,3,6}``)
follow torchvision, so its state dicts load unchanged for A, B, D and E.
"""
from collections import OrderedDict

import numpy as np

from ..arithmetic import reshape
from ..autograd import Tensor
from ..fast import select
from ..nn import (Conv2d, Dropout, Linear, LinearAsConv, LocalResponseNorm, MaxPool2d, Module,
                  ReLU, Sequential)
from ..nn.init import INIT_SCHEMES, init_weight, zero_

M = "M"
LRN = "LRN"

CONFIGS = {
    #        block 1          block 2          block 3                        block 4                        block 5
    "A":     [64, M,          128, M,          256, 256, M,                   512, 512, M,                   512, 512, M],
    "A-LRN": [64, LRN, M,     128, M,          256, 256, M,                   512, 512, M,                   512, 512, M],
    "B":     [64, 64, M,      128, 128, M,     256, 256, M,                   512, 512, M,                   512, 512, M],
    "C":     [64, 64, M,      128, 128, M,     256, 256, (256, 1), M,         512, 512, (512, 1), M,         512, 512, (512, 1), M],
    "D":     [64, 64, M,      128, 128, M,     256, 256, 256, M,              512, 512, 512, M,              512, 512, 512, M],
    "E":     [64, 64, M,      128, 128, M,     256, 256, 256, 256, M,         512, 512, 512, 512, M,         512, 512, 512, 512, M],
}  # noqa: E241

#: The number of weight layers per configuration (Table 1's header row).
DEPTHS = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}

NUM_POOLS = 5


def _check_cfg(cfg):
    if cfg not in CONFIGS:
        raise ValueError(f"unknown VGG configuration {cfg!r}; valid ones are "
                         f"{', '.join(CONFIGS)}")


def make_layers(cfg, width_mult=1.0, in_channels=3, dtype=np.float32):
    """Build the conv stack (``features``) of one Table 1 column."""
    _check_cfg(cfg)
    layers = []
    c = in_channels
    for item in CONFIGS[cfg]:
        if item == M:
            layers.append(MaxPool2d(2, 2))
        elif item == LRN:
            layers.append(LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            channels, k = item if isinstance(item, tuple) else (item, 3)
            channels = max(1, int(round(channels * width_mult)))
            layers.append(Conv2d(c, channels, k, stride=1, padding=k // 2, dtype=dtype))
            layers.append(ReLU())
            c = channels
    return Sequential(*layers), c


class VGG(Module):
    """A VGG network: ``features`` (conv stack) and ``classifier`` (3 FC layers).

    x (N, 3, input_size, input_size) -> logits (N, num_classes).

    cfg: one of "A", "A-LRN", "B", "C", "D", "E".
    input_size: training crop side (224 in the paper). FC1 takes
        C_last * s * s inputs with s = input_size // 32 (7 at 224, 1 at 32).
    fc_width: width of FC1 and FC2 (4096 in the paper).
    width_mult: scales every conv's channel count (tests use small nets).
    init: "gauss" (N(0, init_std^2), the paper), "glorot" or "kaiming";
        biases zero; None leaves every parameter at zero (fast, for models
        about to load a state dict). seed: for reproducible initialisation.
    fc_bias: initial bias of FC1 and FC2 (the paper: 0). AlexNet started
        them at 1 so that their ReLUs begin active; a small positive value
        keeps the narrow FC layers of small nets from dying early on.
    """

    dense = False   # the §3.2 dense network is FullyConvVGG (nn/onnx.py asks)

    def __init__(self, cfg, num_classes=1000, fc_width=4096, input_size=224, width_mult=1.0,
                 dropout=0.5, init="gauss", init_std=0.01, seed=None, fc_bias=0.0,
                 dtype=np.float32):
        super().__init__()
        _check_cfg(cfg)
        if input_size < 2 ** NUM_POOLS:
            raise ValueError(f"input_size {input_size} is too small for VGG's {NUM_POOLS} "
                             f"max-pool stages; expected at least {2 ** NUM_POOLS}")
        if num_classes < 1 or fc_width < 1:
            raise ValueError(f"num_classes and fc_width must be positive, got {num_classes} "
                             f"and {fc_width}")
        self.cfg, self.num_classes, self.fc_width = cfg, num_classes, fc_width
        self.input_size, self.width_mult = input_size, width_mult
        self.features, c_last = make_layers(cfg, width_mult, dtype=dtype)
        self.feature_size = input_size // 2 ** NUM_POOLS
        self.feature_channels = c_last
        self.classifier = Sequential(
            Linear(c_last * self.feature_size ** 2, fc_width, dtype=dtype), ReLU(),
            Dropout(dropout),
            Linear(fc_width, fc_width, dtype=dtype), ReLU(), Dropout(dropout),
            Linear(fc_width, num_classes, dtype=dtype))
        self.assign_names()
        self.fc_bias = fc_bias
        if init is not None:
            self.reset_parameters(init, init_std, seed)

    def reset_parameters(self, init="gauss", init_std=0.01, seed=None, only=None):
        """Initialise weights with ``init`` and zero the biases.

        ``only``: an optional set of module names (e.g. {"features.3"}) to
        limit the reset to; used when part of the net is copied from another.
        """
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme {init!r}; expected one of "
                             f"{', '.join(INIT_SCHEMES)}")
        rng = np.random.default_rng(seed)
        for name, mod in self.named_modules():
            if isinstance(mod, (Conv2d, Linear)) and (only is None or name in only):
                init_weight(mod.weight, init, init_std, rng)
                if mod.bias is not None:
                    zero_(mod.bias)
        for idx in (0, 3):  # FC1 and FC2, whose ReLUs follow
            fc = self.classifier[idx]
            if only is None or fc.name in only:
                fc.bias.data[...] = self.fc_bias

    def weight_layers(self):
        """[(name, module)] of the conv and FC layers in order (Table 1's rows)."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, (Conv2d, Linear))]

    def paper_layer_names(self):
        """OrderedDict paper name -> module: conv{block}_{i} and fc6, fc7, fc8.

        The names the paper's §3.1 initialisation refers to ("the first four
        convolutional layers and the last three fully-connected layers").
        """
        names, block, i = OrderedDict(), 1, 0
        for mod in self.features:
            if isinstance(mod, MaxPool2d):
                block, i = block + 1, 0
            elif isinstance(mod, Conv2d):
                i += 1
                names[f"conv{block}_{i}"] = mod
        for name, idx in (("fc6", 0), ("fc7", 3), ("fc8", 6)):
            names[name] = self.classifier[idx]
        return names

    def _check_input(self, x):
        s = self.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(
                f"VGG-{self.cfg} (input_size={s}) expects input of shape (N, 3, {s}, {s}), got "
                f"{tuple(x.shape)}; build the model with input_size matching the crop, or use "
                f"to_fully_conv() for images of other sizes")

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        self._check_input(x)
        h = self.features(x)
        h = reshape(h, (h.shape[0], -1))
        return self.classifier(h)

    def to_fully_conv(self):
        """The dense-evaluation network of §3.2, sharing this model's weights."""
        return FullyConvVGG(self)

    def export_onnx(self, path, input_size=None):
        """Write this network as an ONNX model: x (N, 3, S, S) -> logits (N, K),
        S = input_size (only the model's own crop). See minivgg.nn.onnx."""
        from ..nn.onnx import export_onnx
        return export_onnx(self, path, input_size)

    def summary(self):
        """A printable table: layer, output shape at input_size, parameters."""
        rows = [("layer", "output (C, H, W)", "params")]
        c, s = 3, self.input_size
        for name, mod in self.features.named_modules("features"):
            if mod is self.features:
                continue
            if isinstance(mod, Conv2d):
                c = mod.out_channels
            elif isinstance(mod, MaxPool2d):
                s //= 2
            n = sum(p.size for p in mod._parameters.values() if p is not None)
            rows.append((f"{name} {type(mod).__name__}", f"({c}, {s}, {s})", f"{n:,}"))
        for name, mod in self.classifier.named_modules("classifier"):
            if mod is self.classifier:
                continue
            if isinstance(mod, Linear):
                c = mod.out_features
            n = sum(p.size for p in mod._parameters.values() if p is not None)
            rows.append((f"{name} {type(mod).__name__}", f"({c},)", f"{n:,}"))
        rows.append(("total", "", f"{self.num_parameters():,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {p:>{widths[2]}}"
                         for a, b, p in rows)

    def extra_repr(self):
        return f"cfg={self.cfg!r}"


class FullyConvVGG(Module):
    """Dense evaluation network (§3.2): FC1 -> KxK conv (K = 7 at 224),
    FC2 and FC3 -> 1x1 convs, all sharing the VGG's Parameters.

    x (N, 3, H, W) with H, W >= input_size -> class score map
    (N, classes, H//32 - K + 1, W//32 - K + 1).
    """

    dense = True

    def __init__(self, vgg):
        super().__init__()
        self.cfg, self.input_size = vgg.cfg, vgg.input_size
        self.num_classes = vgg.num_classes
        self.features = vgg.features
        cls = vgg.classifier
        self.classifier = Sequential(
            LinearAsConv(cls[0], vgg.feature_channels, vgg.feature_size), cls[1], cls[2],
            LinearAsConv(cls[3], vgg.fc_width, 1), cls[4], cls[5],
            LinearAsConv(cls[6], vgg.fc_width, 1))
        self.assign_names()
        self.train(vgg.training)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"dense VGG-{self.cfg} expects input of shape (N, 3, H, W), "
                             f"got {tuple(x.shape)}")
        if x.shape[2] < self.input_size or x.shape[3] < self.input_size:
            raise ValueError(f"dense VGG-{self.cfg} needs images of at least "
                             f"{self.input_size}x{self.input_size} (the training crop), got "
                             f"{x.shape[2]}x{x.shape[3]}")
        return self.classifier(self.features(x))

    def export_onnx(self, path, input_size=None):
        """Write the dense net as an ONNX model: x (N, 3, H, W) -> scores
        (N, K, OH, OW); input_size None leaves H and W symbolic, S or (H, W)
        fixes them. See minivgg.nn.onnx."""
        from ..nn.onnx import export_onnx
        return export_onnx(self, path, input_size)


def vgg(cfg, num_classes=1000, fc_width=4096, input_size=224, **kwargs):
    """Build VGG configuration ``cfg`` ("A", "A-LRN", "B", "C", "D" or "E").

    See ``VGG`` for the keyword arguments (width_mult, dropout, init,
    init_std, seed, dtype).
    """
    return VGG(cfg, num_classes=num_classes, fc_width=fc_width, input_size=input_size, **kwargs)
