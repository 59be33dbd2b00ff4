"""Models: the VGG configurations of Table 1."""
from .vgg import CONFIGS, DEPTHS, VGG, FullyConvVGG, LinearAsConv, make_layers, vgg

__all__ = ["vgg", "VGG", "FullyConvVGG", "LinearAsConv", "CONFIGS", "DEPTHS", "make_layers"]
