"""Optimisation (§3.1): SGD with momentum and weight decay, and the
learning-rate schedule."""
from .scheduler import ReduceLROnPlateau
from .sgd import SGD

__all__ = ["SGD", "ReduceLROnPlateau"]
