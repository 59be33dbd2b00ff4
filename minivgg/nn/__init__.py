"""Neural-network modules: the building blocks of Table 1."""
from . import init
from .layers import (Conv2d, Dropout, Flatten, Linear, LinearAsConv, LocalResponseNorm, MaxPool2d,
                     ReLU, Sequential)
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Conv2d", "Linear", "MaxPool2d", "ReLU", "Dropout",
           "LocalResponseNorm", "Flatten", "Sequential", "LinearAsConv", "init"]
