"""The textbook tier: the ops VGG is made of (§2.1), one Function each, its
forward and backward side by side, written as a student writes them after
reading the paper. They train a whole VGG on their own
(``minivgg.use_ops("reference")``); the faster CPU implementations of the
same ops live in ``minivgg/fast/``, behind one door (``fast/select.py``),
and are tested equal to these.

Shape letters used in every docstring of this package:

    N   batch size              C   input channels       K   output channels
    H   input height            W   input width
    KH  kernel height           KW  kernel width
    OH  output height           OW  output width          F   features

Arrays are NumPy or CuPy; on a GPU (and the emulated GPU) each op runs the
CUDA kernels of ``kernels/`` through ``minivgg/cuda/ops.py``.
"""
from .activation import Dropout, ReLU, dropout, relu
from .conv import Conv2d, col2im, conv2d, im2col
from .linear import Linear, flatten, linear
from .loops import conv2d_reference, local_response_norm_reference, max_pool2d_reference
from .loss import SoftmaxCrossEntropy, log_softmax, softmax, softmax_cross_entropy
from .normalization import LocalResponseNorm, local_response_norm
from .pooling import MaxPool2d, max_pool2d
from .shapes import conv_output_size

__all__ = [
    "Conv2d", "conv2d", "conv2d_reference", "conv_output_size", "im2col", "col2im",
    "MaxPool2d", "max_pool2d", "max_pool2d_reference",
    "ReLU", "relu", "Dropout", "dropout",
    "LocalResponseNorm", "local_response_norm", "local_response_norm_reference",
    "Linear", "linear", "flatten",
    "SoftmaxCrossEntropy", "softmax_cross_entropy", "softmax", "log_softmax",
]
