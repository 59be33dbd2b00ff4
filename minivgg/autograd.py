"""Reverse-mode automatic differentiation: ``Tensor`` and ``Function``.

The paper trains by back-propagation (§3.1); this module is the machinery.
A ``Function`` subclass implements one op as two array-level methods side
by side, ``forward`` and ``backward``. Calling it on Tensors records it as
the creator of its output; ``Tensor.backward()`` visits the recorded
functions in reverse topological order, each turning the gradient of its
output into the gradients of its inputs.

* Gradients are plain arrays (NumPy or CuPy), first order only.
* Leaves that require gradients keep ``.grad``; the gradients of
  intermediate tensors are freed once passed on, and each function lets go
  of what it saved right after its backward (unless ``retain_graph``).
* A leaf's hooks (``register_hook``) run the moment its gradient is
  complete: the data-parallel trainer starts averaging a layer's gradient
  while backward still works on earlier layers.
* Every Tensor carries its Device (cpu, cuda:N or emu, see backend.py);
  a function's inputs share one, ``self.device``, from which forward and
  backward choose NumPy code or CUDA kernels. Mixing devices is an error.
* How a leaf receives its gradient is one small object, ``LeafGradients``:
  the first gradient is stored, later ones added. The fast tier replaces it
  (``set_leaf_gradients``) with a hand-off into the optimizer's flat buffer
  (minivgg/fast/handoff.py); nothing else in here knows about that.

Arithmetic on Tensors (``+``, ``@``, ``reshape``, ...) is defined in
minivgg/arithmetic.py, as Functions like any other.
"""
import contextlib
import threading

import numpy as np

from .backend import DeviceError, as_numpy, device as _device, device_of_array, get_array_module
from .instrument import around_op

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled):
    old = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = old


def no_grad():
    """Context manager: ops inside record no graph (evaluation, updates)."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: record the graph again inside a ``no_grad`` block."""
    return _grad_mode(True)


class Tensor:
    """An array with an optional gradient.

    ``data`` is a NumPy or CuPy array; ``grad`` an array of the same shape
    (on leaves, after ``backward``) or None; ``requires_grad`` marks the
    leaves whose gradient is wanted; ``creator`` is the Function that made
    this tensor (None for a leaf).
    """

    __array_priority__ = 1000  # so that ndarray + Tensor defers to Tensor

    def __init__(self, data, requires_grad=False, name=None, device=None):
        if isinstance(data, Tensor):
            device = data.device if device is None else device
            data = data.data
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            data = np.asarray(data)
        if device is None:
            device = device_of_array(data)
        else:
            device = _device(device)
            if not device.owns(data):
                raise DeviceError(f"Tensor on {device} was given an array on "
                                  f"{device_of_array(data)}; use Tensor(array).to('{device}')")
        self.data, self.device, self.name = data, device, name
        self.grad, self.requires_grad, self.creator = None, bool(requires_grad), None
        self._hooks = []
        self.grad_home = None   # see minivgg/fast/handoff.py; unused by the core

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self.creator is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = repr(self.data).replace("\n", "\n       ")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.device.kind != "cpu":
            extra += f", device='{self.device}'"
        return f"Tensor({body}{extra})"

    def to(self, device):
        """This tensor on ``device`` ('cpu', 'cuda', 'cuda:N', 'emu'): ``self``
        when it is there already, else a new leaf holding a copy (and a copy
        of its gradient)."""
        dev = _device(device)
        if dev == self.device:
            return self
        out = Tensor(dev.asarray(self.data, copy=True), requires_grad=self.requires_grad,
                     name=self.name, device=dev)
        if self.grad is not None:
            out.grad = dev.asarray(self.grad, copy=True)
        return out

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return as_numpy(self.data)

    def item(self):
        return as_numpy(self.data).item()  # on the array's own device; errors as DeviceError

    def detach(self):
        return Tensor(self.data, device=self.device)

    def zero_grad(self):
        self.grad = None

    def register_hook(self, fn):
        """Call ``fn(tensor)`` as soon as this leaf's gradient is complete;
        returns a handle with ``.remove()``."""
        self._hooks.append(fn)
        return HookHandle(self._hooks, fn)

    def backward(self, grad=None, retain_graph=False):
        """Back-propagate from this tensor: every leaf that requires a
        gradient gets it added to its ``.grad``. ``grad`` defaults to 1 for
        a one-element tensor; otherwise it is an array of this shape."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input required grad, or it was built under no_grad())")
        # The graph is on this tensor's device (ops refuse mixed devices); CuPy
        # allocates on the current device, so backward runs with it current.
        with self.device.context():
            if grad is None:
                if self.data.size != 1:
                    raise RuntimeError(f"backward() without a gradient needs a one-element "
                                       f"tensor; this one has shape {self.shape}")
                grad = get_array_module(self.data).ones_like(self.data)
            else:
                grad = _as_array(grad, like=self.data)
                if grad.shape != self.shape:
                    raise ValueError(f"gradient shape {grad.shape} does not match tensor shape "
                                     f"{self.shape}")
            _run_backward(self, grad, retain_graph)


class HookHandle:
    """What ``register_hook`` returns: ``remove()`` unregisters the hook."""

    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


def _as_array(value, like=None, dev=None):
    """``value`` as an array for an op on ``dev`` whose tensors look like
    ``like``; an array on another device is refused, never copied."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "shape") and not isinstance(value, np.generic) and dev is not None \
            and not dev.owns(value):
        raise DeviceError(f"an op on {dev} was given an array on {device_of_array(value)} "
                          f"(shape {tuple(value.shape)}); move it first, e.g. "
                          f"Tensor(array).to('{dev}')")
    if like is not None:
        return get_array_module(like).asarray(value, dtype=like.dtype)
    return np.asarray(value)


class LeafGradients:
    """How the leaves of one backward pass receive their gradients: the
    first is stored (a copy: the array may be shared with another leaf or
    with the caller), later ones are added. The narrow hook through which
    the fast tier hands gradients to the optimizer instead (``offer`` is
    called before each function's backward, ``receive`` for each gradient
    of a leaf)."""

    def __init__(self, upstream):
        pass

    def offer(self, fn):
        pass

    def receive(self, fn, i, leaf, g):
        leaf.grad = g.copy() if leaf.grad is None else leaf.grad + g


_leaf_gradients = LeafGradients


def set_leaf_gradients(factory):
    """Use ``factory(upstream_grad)`` for the leaves of every later backward
    pass; returns the one used so far (to restore it)."""
    global _leaf_gradients
    old, _leaf_gradients = _leaf_gradients, factory
    return old


def _topological_order(root):
    """The functions reachable from ``root``, each after every function that uses its output."""
    order, seen = [], set()
    stack = [(root.creator, False)] if root.creator is not None else []
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if fn.inputs is None:
            raise RuntimeError("this graph was already used by a backward pass and has been "
                               "released; call backward(retain_graph=True) the first time to "
                               "back-propagate through it twice")
        stack.append((fn, True))
        stack.extend((t.creator, False) for t in fn.inputs
                     if t.creator is not None and id(t.creator) not in seen)
    return order[::-1]


def _run_backward(root, grad, retain_graph):
    leaves = _leaf_gradients(grad)
    if root.creator is None:  # backward on a leaf
        leaves.receive(None, 0, root, grad)
        for hook in list(root._hooks):
            hook(root)
        return
    order = _topological_order(root)
    pending = {}  # contributions each leaf still waits for: its hooks fire at zero
    for fn in order:
        for t in fn.inputs:
            if t.creator is None and t.requires_grad:
                pending[id(t)] = pending.get(id(t), 0) + 1
    grads = {id(root.creator): grad}  # the gradient of each function's output
    for fn in order:
        gy = grads.pop(id(fn), None)
        if gy is None:  # an output not used on the way to the root
            shape, dtype = fn.output_meta
            gy = get_array_module(*[t.data for t in fn.inputs]).zeros(shape, dtype)
        leaves.offer(fn)
        with around_op(fn, "backward", [gy]):
            gxs = fn.backward(gy)
        del gy
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        if len(gxs) != len(fn.inputs):
            raise RuntimeError(f"{type(fn).__name__}.backward returned {len(gxs)} gradients "
                               f"for {len(fn.inputs)} inputs")
        for i, (t, gx) in enumerate(zip(fn.inputs, gxs)):
            if gx is None or not t.requires_grad:
                continue
            if getattr(gx, "shape", t.shape) != t.shape:
                raise RuntimeError(f"{type(fn).__name__}.backward gave a gradient of shape "
                                   f"{gx.shape} for an input of shape {t.shape}")
            if t.creator is not None:
                key = id(t.creator)
                grads[key] = gx if key not in grads else grads[key] + gx
                continue
            leaves.receive(fn, i, t, gx)
            pending[id(t)] -= 1
            if pending[id(t)] == 0:
                for hook in list(t._hooks):
                    hook(t)
        if not retain_graph:
            fn.release()


class Function:
    """One differentiable op.

    Subclasses implement ``forward(*arrays) -> array`` and
    ``backward(gy) -> gradient or tuple of gradients`` (one per input, None
    for an input that needs none). ``self.needs_input_grad`` tells backward
    which gradients are wanted, ``self.device`` (the inputs' common device)
    which implementation to run. Non-tensor arguments (stride, padding, ...)
    go to ``__init__``.
    """

    def __call__(self, *inputs):
        dev = common_device(inputs, type(self).__name__)
        # CuPy allocates every new array on the current device: make it this op's.
        with dev.context():
            return self._call(dev, inputs)

    def _call(self, dev, inputs):
        like = next((i.data for i in inputs if isinstance(i, Tensor)), None)
        tensors = [i if isinstance(i, Tensor) else Tensor(_as_array(i, like, dev), device=dev)
                   for i in inputs]
        self.device = dev
        arrays = [t.data for t in tensors]
        with around_op(self, "forward", arrays):
            y = self.forward(*arrays)
        if isinstance(y, np.generic):  # NumPy reductions return scalars
            y = np.asarray(y)
        out = Tensor(y, device=dev)
        if is_grad_enabled() and any(t.requires_grad for t in tensors):
            self.needs_input_grad = tuple(t.requires_grad for t in tensors)
            self.inputs = tensors
            # Shape and dtype only: a reference to ``out`` would form a cycle
            # with out.creator and keep the graph alive until a GC run.
            self.output_meta = (y.shape, y.dtype)
            out.requires_grad, out.creator = True, self
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def release(self):
        """Drop the links to the inputs after backward, so that earlier
        functions and what they saved are freed during backward."""
        self.inputs = None


def common_device(inputs, op="op"):
    """The one device of the Tensors among ``inputs``; DeviceError naming
    both devices (and the shapes) when they differ."""
    dev, first = None, None
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor):
            if dev is None:
                dev, first = t.device, (i, t)
            elif t.device != dev:
                j, a = first
                raise DeviceError(f"{op}: input {j} (shape {tuple(a.shape)}) is on {dev} but "
                                  f"input {i} (shape {tuple(t.shape)}) is on {t.device}; move "
                                  f"them to one device with .to(...) first")
    if dev is None:
        dev = device_of_array(next((i for i in inputs if hasattr(i, "shape")), np.zeros(0)))
    return dev
