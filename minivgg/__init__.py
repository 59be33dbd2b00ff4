"""minivgg: the VGG paper (Simonyan & Zisserman, ICLR 2015) from scratch.

    import minivgg
    from minivgg import functional as F
    model = minivgg.models.vgg("A", num_classes=10, input_size=32)
    loss = F.softmax_cross_entropy(model(minivgg.Tensor(x)), y)
    loss.backward()
"""
from . import arithmetic  # noqa: F401  (gives Tensor its operators)
from . import functional, nn, optim, models  # noqa: F401  (public subpackages)
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from .fast.select import use_ops
from .gradcheck import GradcheckError, gradcheck
from .random import manual_seed

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "use_ops",
           "GradcheckError", "manual_seed", "functional", "nn", "optim", "models"]
