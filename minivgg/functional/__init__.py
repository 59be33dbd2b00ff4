"""The ops VGG is made of (§2.1), as differentiable functions.

Shape letters used in every docstring of this package:

    N   batch size              C   input channels       K   output channels
    H   input height            W   input width
    KH  kernel height           KW  kernel width
    OH  output height           OW  output width          F   features

Arrays are NumPy or CuPy; each op asks ``get_array_module`` once and works
on either. Outputs may be non-contiguous views (for example a convolution
on the CPU returns its (N, OH, OW, K) result, channels last, viewed as
(N, K, OH, OW)); every op accepts inputs of any memory layout.
"""
from .activation import Dropout, ReLU, dropout, relu
from .conv import Conv2d, conv2d, conv2d_reference, conv_output_size, im2col
from .linear import Linear, flatten, linear
from .loss import SoftmaxCrossEntropy, log_softmax, softmax, softmax_cross_entropy
from .normalization import LocalResponseNorm, local_response_norm, local_response_norm_reference
from .pooling import MaxPool2d, max_pool2d, max_pool2d_reference

__all__ = [
    "Conv2d", "conv2d", "conv2d_reference", "conv_output_size", "im2col",
    "MaxPool2d", "max_pool2d", "max_pool2d_reference",
    "ReLU", "relu", "Dropout", "dropout",
    "LocalResponseNorm", "local_response_norm", "local_response_norm_reference",
    "Linear", "linear", "flatten",
    "SoftmaxCrossEntropy", "softmax_cross_entropy", "softmax", "log_softmax",
]
