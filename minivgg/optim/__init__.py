"""Optimisation (§3.1): SGD with momentum and weight decay, and the
learning-rate schedule."""
from .sgd import SGD

__all__ = ["SGD"]
