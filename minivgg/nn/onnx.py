"""ONNX export of a VGG and of its dense form (§2.1 layers, §3.2 dense net).

    model.export_onnx("d.onnx")                        # x (N, 3, 224, 224) -> logits (N, K)
    model.to_fully_conv().export_onnx("d_dense.onnx")  # x (N, 3, H, W) -> scores (N, K, OH, OW)

The graph is written with the ``onnx`` package's helper API, one node per
layer, weights as initializers named like the model's parameters
(``features.0.weight``), input "input" and output "logits" (or "scores" for
the dense net); the batch size N is symbolic, and so are H and W for the
dense net unless ``input_size`` fixes them. Opset 13, IR version 8: what
onnxruntime and most deployment tools of the last years read.

    minivgg layer               ONNX node
    --------------------------  ---------------------------------------------
    Conv2d 3x3 / 1x1 (§2.1)     Conv (pads, strides, kernel_shape)
    ReLU                        Relu
    MaxPool2d 2x2, stride 2     MaxPool
    LocalResponseNorm (A-LRN)   LRN with alpha * size (see below)
    Dropout                     (none: the export is for inference)
    flatten + Linear (FC)       Flatten + Gemm (transB = 1)
    LinearAsConv (dense net)    Conv with the FC weight reshaped (F, C, k, k)

LRN. The paper (after AlexNet) divides by (k + alpha * sum of squares)^beta
over n = 5 neighbouring channels. ONNX's LRN divides by
(bias + alpha / size * sum of squares)^beta, the Caffe convention, so the
export writes alpha * size. Its window is floor((size-1)/2) channels below
and ceil((size-1)/2) above, minivgg's is size//2 below and (size-1)//2
above: the same for odd sizes (the paper's 5), so even sizes are refused.
"""
import os

import numpy as np

from ..backend import as_numpy
from ..files import atomic_write
from .layers import Conv2d, Dropout, Linear, LinearAsConv, LocalResponseNorm, MaxPool2d, ReLU

__all__ = ["export_onnx", "OPSET", "IR_VERSION"]

OPSET = 13
IR_VERSION = 8


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install onnx "
                          "(or pip install minivgg[onnx])") from None
    return onnx


class _Graph:
    """Nodes and initializers, appended layer by layer; ``x`` is the running value."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.inits, self.x = onnx, [], [], "input"

    def param(self, name, array):
        self.inits.append(self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(as_numpy(array), dtype=np.float32), name))
        return name

    def node(self, op, name, inputs, **attrs):
        out = f"{name}.out"
        self.nodes.append(self.onnx.helper.make_node(op, [self.x] + inputs, [out], name=name,
                                                     **attrs))
        self.x = out

    def conv(self, name, weight, bias, padding=(0, 0), stride=(1, 1)):
        w = self.param(f"{name}.weight", weight)
        b = [] if bias is None else [self.param(f"{name}.bias", bias.data)]
        k = list(weight.shape[2:])
        self.node("Conv", name, [w] + b, kernel_shape=k, strides=list(stride),
                  pads=[padding[0], padding[1], padding[0], padding[1]])


def _add_layer(g, name, mod):
    if isinstance(mod, Conv2d):
        g.conv(name, mod.weight.data, mod.bias, mod.padding, mod.stride)
    elif isinstance(mod, ReLU):
        g.node("Relu", name, [])
    elif isinstance(mod, MaxPool2d):
        p = mod.padding
        g.node("MaxPool", name, [], kernel_shape=list(mod.kernel_size),
               strides=list(mod.stride), pads=[p[0], p[1], p[0], p[1]])
    elif isinstance(mod, LocalResponseNorm):
        if mod.size % 2 == 0:
            raise ValueError(f"{name}: LRN size {mod.size} is even; ONNX's LRN window differs "
                             f"from minivgg's for even sizes, so only odd sizes export")
        g.node("LRN", name, [], size=int(mod.size), alpha=float(mod.alpha * mod.size),
               beta=float(mod.beta), bias=float(mod.k))
    elif isinstance(mod, Dropout):
        pass
    elif isinstance(mod, Linear):
        w = g.param(f"{name}.weight", mod.weight.data)
        b = [] if mod.bias is None else [g.param(f"{name}.bias", mod.bias.data)]
        g.node("Gemm", name, [w] + b, transB=1)
    elif isinstance(mod, LinearAsConv):
        k = mod.kernel_size
        w = as_numpy(mod.weight.data).reshape(mod.weight.shape[0], mod.in_channels, k, k)
        g.conv(name, w, mod.bias)
    else:
        raise ValueError(f"{name}: no ONNX export for layer {type(mod).__name__}")


def _size(input_size, who):
    if input_size is None:
        return None
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        return (input_size, input_size)
    if (isinstance(input_size, (tuple, list)) and len(input_size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)):
        return tuple(input_size)
    raise ValueError(f"{who}: input_size must be an int S or a pair (H, W), got {input_size!r}")


def export_onnx(model, path, input_size=None):
    """Write ``model`` (a VGG or FullyConvVGG) to ``path`` as an ONNX model.

    VGG: input_size must be None or the model's own (the crop FC1 was built
    for); input (N, 3, S, S) -> "logits" (N, K).
    FullyConvVGG: input_size None (H and W symbolic), S or (H, W) with both
    at least the training crop; input (N, 3, H, W) -> "scores" (N, K, OH, OW).
    The model is checked with onnx.checker before the file is written
    (atomically). Returns ``path``.
    """
    onnx = _onnx()
    # VGG and FullyConvVGG (models/vgg.py, which calls this) say which they are
    dense = getattr(model, "dense", None)
    if dense is None or not hasattr(model, "features"):
        raise ValueError(f"export_onnx takes a VGG or FullyConvVGG, got {type(model).__name__}")
    who = f"{'dense ' if dense else ''}VGG-{model.cfg} ONNX export"
    crop = model.input_size
    size = _size(input_size, who)
    if not dense and size not in (None, (crop, crop)):
        raise ValueError(f"{who}: the classifier takes {crop}x{crop} crops (FC1 is built for "
                         f"them), got input_size {input_size!r}; export the dense net "
                         f"(model.to_fully_conv().export_onnx) for other sizes")
    if size is not None and min(size) < crop:
        raise ValueError(f"{who}: input_size {input_size!r} is smaller than the {crop}x{crop} "
                         f"training crop")
    g = _Graph(onnx)
    for i, mod in enumerate(model.features):
        _add_layer(g, f"features.{i}", mod)
    if not dense:
        g.node("Flatten", "flatten", [], axis=1)
    for i, mod in enumerate(model.classifier):
        _add_layer(g, f"classifier.{i}", mod)
    out_name = "scores" if dense else "logits"
    g.nodes[-1].output[0] = out_name

    h, w = size if size is not None else (("height", "width") if dense else (crop, crop))
    x_info = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                                ["batch", 3, h, w])
    if dense:
        oh, ow = ((h // 32 - crop // 32 + 1, w // 32 - crop // 32 + 1) if size is not None
                  else ("score_height", "score_width"))
        y_shape = ["batch", model.num_classes, oh, ow]
    else:
        y_shape = ["batch", model.num_classes]
    y_info = onnx.helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, y_shape)
    graph = onnx.helper.make_graph(g.nodes, f"vgg_{model.cfg.replace('-', '_')}"
                                   f"{'_dense' if dense else ''}", [x_info], [y_info],
                                   initializer=g.inits)
    proto = onnx.helper.make_model(graph, producer_name="minivgg",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    path = os.fspath(path)
    return atomic_write(path, lambda f: f.write(proto.SerializeToString()), suffix=".onnx")
