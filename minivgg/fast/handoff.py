"""The fast tier's gradient hand-off: leaves write their gradients straight
into the optimizer's flat buffer (minivgg/optim/flat.py).

The optimizer keeps every parameter's gradient as a view into one flat
buffer, so that one pass updates the whole network and the data-parallel
trainer averages all gradients with one exchange. With the core's plain
rule (autograd.LeafGradients) a parameter's gradient is a fresh array,
which the optimizer then copies into that buffer: one more pass over every
weight per step. This hand-off removes it:

* a leaf's ``grad_home`` (set by the optimizer: its view into the buffer)
  receives its first gradient of the pass, so the buffer is never zeroed
  between steps; later contributions are added to it in place, so
  ``p.grad`` stays that view;
* before a function's backward, each of its leaf inputs is *offered*: the
  array its gradient will end in (``fn.grad_into[i]``, with
  ``fn.grad_fresh[i]`` True when its contents are stale and to be written
  over, not added to). A backward may then store its gradient there itself
  and return ``ADDED_IN_PLACE`` for that input: the fast Linear does, in
  cache-sized blocks, instead of allocating FC1's 103M-element product;
* a leaf's first gradient is stored without a copy unless its array is
  visible elsewhere: the caller's upstream gradient, or an array already
  handed to another leaf (Add gives one gy to both of its inputs).

``minivgg.use_ops("fast")`` installs it (autograd.set_leaf_gradients);
``use_ops("reference")`` restores the plain rule. Both give the same
numbers; tests/test_tiers.py holds them to it.
"""
import numpy as np

from ..autograd import LeafGradients
from ..threads import split_copy

#: Returned by a backward for input i whose gradient it stored itself in
#: ``fn.grad_into[i]``.
ADDED_IN_PLACE = object()


def _buffer_id(a):
    """Identity of the memory behind array ``a`` (its base, through views)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return id(a)


def _writeable(a):
    flags = getattr(a, "flags", None)
    return getattr(flags, "writeable", True)  # CuPy arrays are always writeable


def _grad_home(t, like):
    """Leaf ``t``'s ``grad_home`` if it still fits ``like`` (shape, dtype and
    array type: a model moved to another device or dtype leaves stale homes,
    which are then ignored), else None."""
    home = t.grad_home
    if home is None or home.shape != like.shape or home.dtype != like.dtype \
            or type(home) is not type(like) or not _writeable(home):
        return None
    return home


class BufferHandOff(LeafGradients):
    """LeafGradients that write into the optimizer's buffer (see the module docstring)."""

    def __init__(self, upstream):
        self.handed_out = {_buffer_id(upstream)}

    def offer(self, fn):
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

    def receive(self, fn, i, leaf, g):
        if fn is None:                   # backward called on a leaf
            leaf.grad = g.copy() if leaf.grad is None else _add_into(leaf.grad, g)
            return
        if g is ADDED_IN_PLACE:          # the function stored it in what was offered
            if leaf.grad is None:
                leaf.grad = fn.grad_into[i]
        elif leaf.grad is None:
            home = _grad_home(leaf, g)
            if home is not None:         # the optimizer's buffer: written, never zeroed first
                _copy(home, g)
                g = home
            elif _buffer_id(g) in self.handed_out or not _writeable(g):
                g = g.copy()
            self.handed_out.add(_buffer_id(g))
            leaf.grad = g
        else:                            # in place: a view into the buffer stays one
            leaf.grad = _add_into(leaf.grad, g)


def _copy(dst, src):
    """dst[...] = src, split over minivgg's threads for big NumPy arrays."""
    if isinstance(dst, np.ndarray) and isinstance(src, np.ndarray) and dst.ndim:
        split_copy(dst, src, 1 << 16)
    else:
        dst[...] = src


def _add_into(a, g):
    if _writeable(a):
        a += g
        return a
    return a + g
