"""Modules: parameter containers that compose into networks (Table 1's
columns are ``Sequential`` stacks of the layers in ``layers.py``).
"""
from collections import OrderedDict

import numpy as np

from ..autograd import HookHandle, Tensor
from ..backend import as_numpy, device as _device, get_array_module


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad=True)."""

    def __init__(self, data, name=None):
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class: assigning a Parameter or Module attribute registers it.

    ``named_parameters`` and ``state_dict`` use dotted names in registration
    order (``features.0.weight``), which is what makes torchvision state
    dicts load unchanged.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_name", None)
        object.__setattr__(self, "_forward_hooks", [])

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- calling -----------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            hook(self, args, out)
        return out

    def register_forward_hook(self, fn):
        """Call ``fn(module, inputs, output)`` after every forward of this
        module; returns a handle with ``.remove()``. (In the fast tier a ReLU
        that follows a Conv2d runs inside the convolution, so hooks on it do
        not fire: use the textbook tier, ``minivgg.use_ops("reference")``.)"""
        self._forward_hooks.append(fn)
        return HookHandle(self._forward_hooks, fn)

    @property
    def name(self):
        """Dotted name inside the model (set by ``assign_names``), else the class name."""
        return self._name or type(self).__name__

    def assign_names(self, prefix=""):
        """Give every submodule its dotted name, used in error messages."""
        for name, mod in self.named_modules(prefix):
            object.__setattr__(mod, "_name", name or type(mod).__name__)
        return self

    # -- traversal ---------------------------------------------------------
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, mod in self._modules.items():
            yield from mod.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix=""):
        """Yield (dotted name, Parameter); each shared Parameter once."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # -- modes ---------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # -- devices ---------------------------------------------------------------
    def to(self, device):
        """Move every parameter (and gradient) to ``device`` in place.

        ``device``: 'cpu', 'cuda', 'cuda:N', 'emu' or a Device. Returns the
        module. An optimizer built on these parameters notices the move at
        its next step and moves its momentum buffers with them.
        """
        dev = _device(device)
        for p in self.parameters():
            if p.device == dev:
                continue
            p.data = dev.asarray(p.data)
            if p.grad is not None:
                p.grad = dev.asarray(p.grad)
            p.device = dev
        return self

    @property
    def device(self):
        """The device of the first parameter (that of all of them after ``to``)."""
        p = next(iter(self.parameters()), None)
        from ..backend import CPU
        return CPU if p is None else p.device

    # -- state ---------------------------------------------------------------
    def state_dict(self):
        """OrderedDict name -> NumPy array (a copy, also from the GPU)."""
        return OrderedDict((name, np.array(as_numpy(p.data), copy=True))
                           for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays (NumPy, CuPy or anything array-like) into the parameters.

        Every key and shape is checked before anything is written, so a
        mismatch leaves the module unchanged. With ``strict`` missing and
        unexpected keys are errors; otherwise they are skipped and returned.
        Returns (missing, unexpected) key lists.
        """
        params = OrderedDict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(
                f"{k} {tuple(params[k].shape)}" for k in missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(
                f"{k} {tuple(np.shape(state[k]))}" for k in unexpected))
        shape_errors = [f"{k}: expected {tuple(p.shape)}, got {tuple(np.shape(state[k]))}"
                        for k, p in params.items()
                        if k in state and tuple(np.shape(state[k])) != tuple(p.shape)]
        if shape_errors:
            problems.append("shape mismatch: " + "; ".join(shape_errors))
        if problems:
            raise ValueError(f"cannot load state dict into {type(self).__name__}: "
                             + " | ".join(problems))
        for k, p in params.items():
            if k in state:
                xp = get_array_module(p.data)
                src = state[k]
                arr = xp.asarray(as_numpy(src) if xp is np else src, dtype=p.dtype)
                p.data[...] = arr
        return missing, unexpected

    # -- printing ----------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, mod in self._modules.items():
            sub = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        lines.append(")")
        return "\n".join(lines)
