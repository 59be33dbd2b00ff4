"""Parameter names of VGG weights files, and the Table 1 column a file holds.

Two naming schemes ("layouts") are in use for the paper's networks:

torchvision (minivgg uses the same names, so its own files are in this layout)
    features.{i}.weight   (K, C, k, k)      the conv at position i of the feature
    features.{i}.bias     (K,)              stack (conv, ReLU, [LRN], pool, ...)
    classifier.0.weight   (4096, C*s*s)     FC1 ("fc6" in the paper's release)
    classifier.3.weight   (4096, 4096)      FC2 ("fc7")
    classifier.6.weight   (classes, 4096)   FC3 ("fc8"), biases alike
timm
    features.*            as torchvision
    pre_logits.fc1.weight (4096, C, s, s)   FC1 stored as §3.2's s x s convolution
    pre_logits.fc2.weight (4096, 4096, 1, 1)  FC2 as a 1x1 convolution
    head.fc.weight        (classes, 4096)   FC3

s is the side of the last feature map (7 for 224 x 224 crops). The byte
order of FC1 is the same in both (C, then the s x s window, row-major), so
the two layouts differ by names and by a reshape only.

The positions i of the convolutions tell the configuration apart: A has its
second conv at features.3 (conv, ReLU, pool, conv), A-LRN at features.4
(conv, ReLU, LRN, pool, conv), B at features.2; C has 1x1 kernels where D
has 3x3. ``infer_config`` reads configuration, width, classes and crop size
from the shapes alone. Batch-normalised variants (vgg16_bn) put a BN layer
after each conv, which the paper's networks do not have; they are refused
with the offending keys listed.
"""
import functools
import math
import re
from collections import OrderedDict

from ..models.vgg import CONFIGS, make_layers
from ..nn import Conv2d

__all__ = ["LAYOUTS", "WeightsError", "detect_layout", "to_minivgg_names", "file_key",
           "file_shape", "minivgg_shape", "conv_layout", "infer_config", "describe_cfg"]

LAYOUTS = ("torchvision", "timm")

#: minivgg (= torchvision) module name -> timm module name.
TIMM_NAMES = {"classifier.0": "pre_logits.fc1", "classifier.3": "pre_logits.fc2",
              "classifier.6": "head.fc"}
_FROM_TIMM = {v: k for k, v in TIMM_NAMES.items()}
_BN_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_VGG_KEY = re.compile(r"^(features\.\d+|classifier\.[036])\.(weight|bias)$")


class WeightsError(ValueError):
    """A weights file is missing, unreadable, truncated or corrupt, or does not
    hold the weights of the VGG asked for. The message names the file."""


def _list(keys, n=8):
    keys = list(keys)
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def detect_layout(keys, where):
    """'torchvision' or 'timm' from a file's keys; WeightsError otherwise.

    Batch-norm statistics are reported first (a vgg*_bn file), then keys that
    belong to neither layout.
    """
    keys = list(keys)
    bn_modules = {k.rsplit(".", 1)[0] for k in keys if k.endswith(_BN_SUFFIXES)}
    if bn_modules:
        bn_keys = [k for k in keys if k.rsplit(".", 1)[0] in bn_modules]
        raise WeightsError(
            f"{where} holds a batch-normalised VGG (torchvision's or timm's vgg*_bn): the "
            f"paper's configurations have no batch normalisation, so minivgg cannot run it. "
            f"Unexpected keys: {_list(bn_keys)}. Use the plain vgg11/13/16/19 weights")
    if any(k.startswith(("pre_logits.", "head.")) for k in keys):
        return "timm"
    if any(k.startswith(("features.", "classifier.")) for k in keys):
        return "torchvision"
    raise WeightsError(
        f"{where} does not hold VGG weights in a known layout: its keys are {_list(keys)}; "
        f"expected features.<i>.weight/bias with classifier.0/3/6 (torchvision, minivgg) or "
        f"pre_logits.fc1/fc2 and head.fc (timm)")


def to_minivgg_names(keys, layout, where):
    """OrderedDict minivgg parameter name -> file key, for every key of the file.

    Raises WeightsError listing every key that is no VGG parameter of ``layout``.
    """
    out, unexpected = OrderedDict(), []
    for key in keys:
        name = key
        if layout == "timm":
            module, _, leaf = key.rpartition(".")
            name = f"{_FROM_TIMM.get(module, module)}.{leaf}"
            if module.startswith("classifier."):
                name = None  # torchvision's names do not belong in a timm file
        if name is None or not _VGG_KEY.match(name):
            unexpected.append(key)
        else:
            out[name] = key
    if unexpected:
        raise WeightsError(f"{where}: unexpected keys for a {layout} VGG: {_list(unexpected)}")
    return out


def file_key(name, layout):
    """The key of minivgg parameter ``name`` in a ``layout`` file."""
    module, _, leaf = name.rpartition(".")
    if layout == "timm":
        module = TIMM_NAMES.get(module, module)
    return f"{module}.{leaf}"


def file_shape(name, shape, layout, feature_channels):
    """The shape minivgg parameter ``name`` (of ``shape``) has in a ``layout`` file."""
    if layout == "timm" and name == "classifier.0.weight":
        side = math.isqrt(shape[1] // feature_channels)
        return (shape[0], feature_channels, side, side)
    if layout == "timm" and name == "classifier.3.weight":
        return (shape[0], shape[1], 1, 1)
    return tuple(shape)


def minivgg_shape(name, shape, where):
    """A file's (timm) FC-as-conv shape as minivgg's Linear shape; others as they are."""
    shape = tuple(shape)
    if name in ("classifier.0.weight", "classifier.3.weight") and len(shape) == 4:
        if name == "classifier.3.weight" and shape[2:] != (1, 1):
            raise WeightsError(f"{where}: FC2 (pre_logits.fc2.weight) must be a 1x1 convolution, "
                              f"got shape {shape}")
        return (shape[0], shape[1] * shape[2] * shape[3])
    return shape


@functools.lru_cache(maxsize=None)
def conv_layout(cfg):
    """((features index, kernel side), ...) of configuration ``cfg``'s convs."""
    features, _ = make_layers(cfg, width_mult=1 / 64)
    return tuple((i, m.kernel_size[0]) for i, m in enumerate(features) if isinstance(m, Conv2d))


def describe_cfg(cfg):
    """'VGG-D (13 convs at features.0, 2, 5, ...)' for error messages."""
    layout = conv_layout(cfg)
    ones = [i for i, k in layout if k == 1]
    extra = f", 1x1 at {', '.join(map(str, ones))}" if ones else ""
    return (f"VGG-{cfg} ({len(layout)} convs at features."
            f"{', '.join(str(i) for i, _ in layout)}{extra})")


def _conv_layout_of(shapes):
    convs = []
    for name, shape in shapes.items():
        m = re.match(r"^features\.(\d+)\.weight$", name)
        if m:
            if len(shape) != 4 or shape[2] != shape[3]:
                return None, name
            convs.append((int(m.group(1)), shape[2]))
    return tuple(sorted(convs)), None


def infer_config(shapes, where):
    """The model keyword arguments (``models.vgg``) that the shapes belong to.

    shapes: {minivgg name: shape} -> dict(cfg, num_classes, fc_width,
    input_size, width_mult). Raises WeightsError naming what does not fit.
    """
    layout, bad = _conv_layout_of(shapes)
    if bad is not None:
        raise WeightsError(f"{where}: {bad} has shape {tuple(shapes[bad])}, not a square conv "
                          f"kernel (K, C, k, k)")
    cfg = next((c for c in CONFIGS if conv_layout(c) == layout), None)
    if cfg is None:
        found = ", ".join(f"{i}" + ("" if k == 3 else f" ({k}x{k})") for i, k in layout)
        raise WeightsError(
            f"{where}: its conv layers (at features.{found or ' none'}) match no configuration "
            f"of Table 1; expected one of " + "; ".join(describe_cfg(c) for c in CONFIGS))
    for key in ("classifier.0.weight", "classifier.6.weight"):
        if key not in shapes or len(shapes[key]) != 2:
            raise WeightsError(f"{where}: {describe_cfg(cfg)} convs found but "
                              f"{key} is missing or not a matrix")
    first = shapes[f"features.{layout[0][0]}.weight"]
    last = shapes[f"features.{layout[-1][0]}.weight"]
    fc1 = shapes["classifier.0.weight"]
    side2, rem = divmod(fc1[1], last[0])
    side = math.isqrt(side2)
    if rem or side * side != side2 or side < 1:
        raise WeightsError(f"{where}: FC1 takes {fc1[1]} inputs, which is not the last conv's "
                          f"{last[0]} channels times a square feature map")
    return {"cfg": cfg, "num_classes": int(shapes["classifier.6.weight"][0]),
            "fc_width": int(fc1[0]), "input_size": 32 * side, "width_mult": first[0] / 64}
