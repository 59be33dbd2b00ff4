"""Reverse-mode automatic differentiation: ``Tensor`` and ``Function``.

The VGG paper trains by back-propagation (§3.1); this module is the machinery
that makes it possible. A ``Function`` subclass implements one op as a pair of
array-level methods, ``forward`` and ``backward``, side by side. Calling the
function on ``Tensor`` objects records it as the creator of its output, and
``Tensor.backward()`` walks the recorded graph in reverse topological order.

Design choices (see docs/architecture.md):

* Gradients are plain arrays (NumPy or CuPy), first order only.
* Only leaf tensors that require gradients keep ``.grad``; intermediate
  gradients are freed as soon as they have been passed on, which keeps
  backward's memory close to the forward activations.
* After ``backward`` the graph releases what its functions saved, unless
  ``retain_graph=True``.
* A leaf may carry hooks (``register_hook``) that run the moment its gradient
  is complete, before the rest of backward finishes: the data-parallel trainer
  starts averaging a layer's gradient while earlier layers are still in
  backward.
* Every tensor carries its ``Device`` (cpu, cuda:N or emu; see backend.py).
  A function's inputs must share one device, which becomes the function's
  ``self.device``: its forward and backward choose NumPy code or the CUDA
  kernels from it. Mixing devices in one op is an error, never a silent copy.
* A leaf's gradient accumulates *in place* once it exists, so a gradient
  that is a view into a flat buffer (the optimizer's, which the data-parallel
  trainer averages in one exchange) stays that view. A leaf without a
  gradient whose ``grad_home`` is set (the optimizer sets it to the leaf's
  view into that buffer) gets its first gradient written there, so the
  optimizer never has to zero the buffer between steps.
"""
import contextlib
import threading

import numpy as np

from . import profiler
from .backend import DeviceError, device as _device, device_of_array, get_array_module

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager: ops inside record no graph (evaluation, updates)."""
    old = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = old


@contextlib.contextmanager
def enable_grad():
    old = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = old


def _as_array(value, like=None, dev=None):
    """``value`` as an array for an op on ``dev`` whose tensors look like ``like``.

    Python and NumPy scalars and lists are converted; an array that lives
    on another device is refused rather than copied behind the caller's back.
    """
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "shape") and not isinstance(value, np.generic) and dev is not None \
            and not dev.owns(value):
        raise DeviceError(f"an op on {dev} was given an array on {device_of_array(value)} "
                          f"(shape {tuple(value.shape)}); move it first, e.g. "
                          f"Tensor(array).to('{dev}')")
    if like is not None:
        xp = get_array_module(like)
        return xp.asarray(value, dtype=like.dtype)
    return np.asarray(value)


class Tensor:
    """An array with an optional gradient.

    ``data`` is a NumPy or CuPy array; ``grad`` is an array of the same shape
    (set on leaves after ``backward``) or None. ``requires_grad`` marks leaves
    whose gradient is wanted. ``grad_home``, None unless an optimizer set
    it, is the array a leaf's first gradient is written into (``grad`` then
    becomes that array).
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
        self.data = data
        self.device = device
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = name
        self._hooks = []
        self.grad_home = None

    # -- array-like properties ------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = repr(self.data).replace("\n", "\n       ")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.device.kind != "cpu":
            extra += f", device='{self.device}'"
        return f"Tensor({body}{extra})"

    def to(self, device):
        """This tensor on ``device`` ('cpu', 'cuda', 'cuda:N', 'emu').

        Returns ``self`` when it is already there; otherwise a new leaf
        holding a copy (its gradient, if any, is copied too).
        """
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
        from .backend import as_numpy
        return as_numpy(self.data)

    def item(self):
        from .backend import as_numpy
        return as_numpy(self.data).item()  # on the array's own device; errors as DeviceError

    def detach(self):
        return Tensor(self.data, device=self.device)

    @property
    def is_leaf(self):
        return self.creator is None

    # -- gradients --------------------------------------------------------
    def zero_grad(self):
        self.grad = None

    def register_hook(self, fn):
        """Call ``fn(tensor)`` as soon as this leaf's gradient is complete.

        Returns a handle with ``.remove()``.
        """
        self._hooks.append(fn)
        hooks = self._hooks

        class _Handle:
            def remove(self_inner):
                if fn in hooks:
                    hooks.remove(fn)
        return _Handle()

    def backward(self, grad=None, retain_graph=False):
        """Back-propagate from this tensor.

        ``grad`` defaults to 1 for a one-element tensor; otherwise it must be
        an array (or Tensor) of this tensor's shape. Gradients accumulate into
        ``.grad`` of every leaf that requires them.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input required grad, or it was built under no_grad())")
        xp = get_array_module(self.data)
        # The graph is on this tensor's device (ops refuse mixed devices); CuPy
        # allocates on the current device, so backward runs with it current.
        with self.device.context():
            if grad is None:
                if self.data.size != 1:
                    raise RuntimeError(f"backward() without a gradient needs a one-element "
                                       f"tensor; this one has shape {self.shape}")
                grad = xp.ones_like(self.data)
            else:
                grad = _as_array(grad, like=self.data)
                if grad.shape != self.shape:
                    raise ValueError(f"gradient shape {grad.shape} does not match tensor shape "
                                     f"{self.shape}")
            _run_backward(self, grad, retain_graph)

    # -- arithmetic -------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pow__(self, exponent):
        return power(self, exponent)

    def __matmul__(self, other):
        return matmul(self, other)

    def __getitem__(self, index):
        return getitem(self, index)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    @property
    def T(self):
        return transpose(self, None)

    def sum(self, axis=None, keepdims=False):
        return sum_(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)


#: Returned by ``Function.backward`` for an input whose gradient it has
#: already stored in ``self.grad_into[i]``, the buffer the autograd offered
#: (added to it, or written over it where ``self.grad_fresh[i]``).
ADDED_IN_PLACE = object()


def _grad_home(t, like):
    """The array leaf ``t``'s first gradient of this pass is to be written
    into: its ``grad_home`` (the optimizer's view into its flat gradient
    buffer, set by optim.flat) when it still fits ``like`` (shape, dtype
    and array type: a model moved to another device or dtype leaves
    stale homes, which are then ignored)."""
    home = t.grad_home
    if home is None or home.shape != like.shape or home.dtype != like.dtype \
            or type(home) is not type(like) or not _writeable(home):
        return None
    return home


def _buffer_id(a):
    """Identity of the memory behind array ``a`` (its base, through views)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return id(a)


def _writeable(a):
    flags = getattr(a, "flags", None)
    return getattr(flags, "writeable", True)  # CuPy arrays are always writeable


def _run_backward(root, grad, retain_graph):
    # Reverse topological order of the functions reachable from ``root``.
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
        for t in fn.inputs:
            if t.creator is not None and id(t.creator) not in seen:
                stack.append((t.creator, False))
    order.reverse()

    # How many pending contributions each leaf still waits for, so that its
    # hooks fire exactly when its gradient is complete.
    pending = {}
    for fn in order:
        for t in fn.inputs:
            if t.creator is None and t.requires_grad:
                pending[id(t)] = pending.get(id(t), 0) + 1

    # A leaf's first gradient is stored without a copy (a copy of every weight
    # gradient costs a memory pass per step) unless its buffer is already
    # visible elsewhere: the caller's upstream gradient, or a buffer handed to
    # another leaf in this pass (Add gives the same gy to both of its inputs).
    handed_out = {_buffer_id(grad)}

    def deliver_to_leaf(t, g, home=None):
        if g is None:  # the function stored it itself (ADDED_IN_PLACE), in home if fresh
            if t.grad is None:
                t.grad = home
        elif t.grad is None:
            home = _grad_home(t, g)
            if home is not None:  # the optimizer's buffer: written, never zeroed first
                home[...] = g
                g = home
            elif _buffer_id(g) in handed_out or not _writeable(g):
                g = g.copy()
            handed_out.add(_buffer_id(g))
            t.grad = g
        else:  # in place: a view into a flat gradient buffer stays one
            t.grad += g
        pending[id(t)] -= 1
        if pending[id(t)] == 0:
            for hook in list(t._hooks):
                hook(t)

    if root.creator is None:  # backward on a leaf
        if root.grad is None:
            root.grad = grad.copy()
        else:
            root.grad += grad
        for hook in list(root._hooks):
            hook(root)
        return

    # Pending output gradients, keyed by the function that made the output
    # (each function has exactly one output; the functions stay alive in
    # ``order`` while their outputs may already be freed).
    grads = {id(root.creator): grad}
    for fn in order:
        gy = grads.pop(id(fn), None)
        if gy is None:  # the output was not used on the way to the root
            shape, dtype = fn.output_meta
            gy = get_array_module(*[t.data for t in fn.inputs]).zeros(shape, dtype)
        # Leaves that already hold a gradient buffer (the optimizer's flat
        # views), or have a home for their first one, are offered to the
        # function, which may add its contribution to the one (write it over
        # the other) directly and return ADDED_IN_PLACE for that input:
        # Linear does, block by block, instead of allocating a weight-sized
        # product.
        into, fresh = [], []
        for t in fn.inputs:
            a, new = None, False
            if t.creator is None and t.requires_grad:
                if t.grad is not None:
                    a = t.grad if _writeable(t.grad) else None
                else:
                    a = _grad_home(t, t.data)
                    new = a is not None
            into.append(a)
            fresh.append(new)
        fn.grad_into, fn.grad_fresh = tuple(into), tuple(fresh)
        with _device_errors(fn, "backward", [gy]):
            gxs = fn.backward(gy)
        offered, fn.grad_into, fn.grad_fresh = fn.grad_into, None, None
        del gy
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn.inputs):
            raise RuntimeError(f"{type(fn).__name__}.backward returned {len(gxs)} gradients "
                               f"for {len(fn.inputs)} inputs")
        for i, (t, gx) in enumerate(zip(fn.inputs, gxs)):
            if gx is None or not t.requires_grad:
                continue
            if gx is ADDED_IN_PLACE:
                deliver_to_leaf(t, None, offered[i])
                continue
            if gx.shape != t.shape:
                raise RuntimeError(f"{type(fn).__name__}.backward gave a gradient of shape "
                                   f"{gx.shape} for an input of shape {t.shape}")
            if t.creator is None:
                deliver_to_leaf(t, gx)
            else:
                key = id(t.creator)
                grads[key] = gx if key not in grads else grads[key] + gx
        if not retain_graph:
            fn.release()


class Function:
    """One differentiable op.

    Subclasses implement ``forward(*arrays) -> array`` and
    ``backward(gy) -> gradient or tuple of gradients`` (one per input; None
    for an input that needs none). ``self.needs_input_grad`` tells backward
    which gradients are wanted so it can skip the others, and
    ``self.device`` (the inputs' common device) which implementation to run.
    Non-tensor arguments (stride, padding, ...) go to ``__init__``.

    During backward, ``self.grad_into[i]`` is the gradient array input i
    already holds when it is a leaf that has one, or the array its first
    gradient is to be written into (its ``grad_home``, an optimizer's
    buffer) when it has none yet and ``self.grad_fresh[i]`` is True; else
    None. Backward may add its gradient to that array itself (write it
    there, when fresh: the array's contents are then meaningless) and
    return ``ADDED_IN_PLACE`` for input i, which spares a gradient-sized
    temporary.
    """

    grad_into = None
    grad_fresh = None

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
        with _device_errors(self, "forward", arrays):
            y = self.forward(*arrays)
        if isinstance(y, np.generic):  # NumPy reductions return scalars
            y = np.asarray(y)
        out = Tensor(y, device=dev)
        if is_grad_enabled() and any(t.requires_grad for t in tensors):
            self.needs_input_grad = tuple(t.requires_grad for t in tensors)
            self.inputs = tensors
            # Shape and dtype only: a reference to ``out`` would form a cycle
            # with out.creator and delay freeing the graph until a GC run.
            self.output_meta = (y.shape, y.dtype)
            out.requires_grad = True
            out.creator = self
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def release(self):
        """Drop the links to the inputs after backward.

        Cutting ``inputs`` makes every earlier function (and the activations
        it saved) unreachable, so memory is returned during backward rather
        than when the caller drops the loss.
        """
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


class _device_errors:
    """Context manager around an op's forward or backward: a CUDA error inside
    is re-raised as DeviceError naming the op, the direction and the shapes
    (out of memory suggests --micro-batch); errors of other kinds pass
    through unchanged. It also times the op when a Profiler is running."""

    def __init__(self, fn, where, arrays):
        self.fn, self.where, self.arrays = fn, where, arrays
        self.span = None

    def __enter__(self):
        prof = profiler.active()
        if prof is not None:
            self.span = prof.span(f"{type(self.fn).__name__}.{self.where}")
            self.span.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.span is not None:
            self.span.__exit__(exc_type, exc, tb)
        if exc is None or not _is_cuda_error(exc):
            return False
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays if hasattr(a, "shape"))
        dev = getattr(self.fn, "device", "the GPU")
        msg = f"{type(self.fn).__name__} {self.where} on {dev} with arrays of shape {shapes}: "
        if "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
            msg += (f"out of memory ({exc}); use a smaller batch or split it with "
                    f"--micro-batch N (gradients are accumulated, the update is the same)")
        else:
            msg += f"{type(exc).__name__}: {exc}"
        raise DeviceError(msg) from exc


def _is_cuda_error(exc):
    mod = type(exc).__module__ or ""
    return mod.startswith(("cupy", "cupy_backends")) or "OutOfMemory" in type(exc).__name__


# ---------------------------------------------------------------------------
# Elementwise and shape ops used by the layers and by user code.
# ---------------------------------------------------------------------------

def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (undoing NumPy broadcasting)."""
    if x.shape == tuple(shape):
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=axes, keepdims=True)
    if lead:
        y = y.reshape(y.shape[lead:])
    return y


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = sum_to(gy / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = (sum_to(-gy * self.a / (self.b * self.b), self.b.shape)
              if self.needs_input_grad[1] else None)
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        self.a = a
        return a ** self.exponent

    def backward(self, gy):
        c = self.exponent
        return gy * c * self.a ** (c - 1)


class MatMul(Function):
    """(M, K) @ (K, P) -> (M, P); 2-D operands only."""

    def forward(self, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul expects 2-D operands, got {a.shape} and {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        ga = gy @ self.b.T if self.needs_input_grad[0] else None
        gb = self.a.T @ gy if self.needs_input_grad[1] else None
        return ga, gb


class Reshape(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inv = np.argsort([a % gy.ndim for a in self.axes])  # negative axes too
        return gy.transpose(tuple(int(i) for i in inv))


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, self.dtype)
        if xp is np:
            np.add.at(gx, self.index, gy)  # repeated indices add up
        else:  # pragma: no cover - GPU
            import cupyx
            cupyx.scatter_add(gx, self.index, gy)
        return gx


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.axis is not None and not self.keepdims:
            axes = (self.axis,) if isinstance(self.axis, int) else self.axis
            axes = sorted(a % len(self.in_shape) for a in axes)
            for a in axes:
                gy = xp.expand_dims(gy, a)
        return xp.broadcast_to(gy, self.in_shape).copy()


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(a):
    return Neg()(a)


def power(a, exponent):
    return Pow(exponent)(a)


def matmul(a, b):
    return MatMul()(a, b)


def reshape(x, shape):
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(axes)(x)


def getitem(x, index):
    return GetItem(index)(x)


def sum_(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    shape = x.shape
    if axis is None:
        count = int(np.prod(shape)) if shape else 1
    else:
        axes = (axis,) if isinstance(axis, int) else axis
        count = int(np.prod([shape[a] for a in axes]))
    return sum_(x, axis, keepdims) * (1.0 / count)
