"""Parameters and gradients held in flat buffers.

``FlatParameters(params)`` copies every parameter into one contiguous
buffer and makes each ``p.data`` a view into it; gradients get a twin
buffer, and each ``p.grad_home`` is the parameter's view into that: the
autograd writes a parameter's first gradient of a backward pass there and
accumulates later ones in place, so ``p.grad`` is that view after
backward. ``zero_grad`` therefore only sets every ``p.grad`` to None (or,
with ``set_to_none=False``, zeroes the buffer and points each ``p.grad``
at its view): no pass over the buffer between steps. Then:

* one kernel launch updates every parameter (``kernels/sgd.cu``);
* the data-parallel trainer averages all gradients with one in-place
  allreduce of ``grad`` (or of a few slices of it), with no packing.

The buffers hold the parameters last first: ``model.parameters()`` lists
them from the input to the output, and backward completes their gradients
in the opposite order, so the gradients of the last layers form the
beginning of the buffer and can be averaged while backward goes on
(``distributed/sync.py``). The layout is fixed by the parameter list, so it
is identical in every process of a data-parallel run.

If a parameter's ``data`` is rebound (``model.to("cuda")``), the buffers
are stale; ``is_current()`` tells, and the optimizer rebuilds them on the
parameters' new device.
"""
from ..autograd import common_device


class FlatParameters:
    """params (a list of Tensors of one device and dtype) in flat buffers.

    ``data``, ``grad``: 1-D arrays of ``size`` elements; parameter i owns
    ``ranges()[i]`` of each (the last parameter comes first).
    """

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError("no parameters to flatten")
        self.device = common_device(self.params, "the optimizer's parameters")
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"the optimizer's parameters have several dtypes "
                             f"({', '.join(sorted(str(d) for d in dtypes))}); convert the model "
                             f"to one dtype first")
        self.dtype = dtypes.pop()
        xp = self.device.xp
        self._ranges = [None] * len(self.params)
        end = 0
        for i in reversed(range(len(self.params))):
            self._ranges[i] = (end, end + self.params[i].size)
            end += self.params[i].size
        self.size = end
        self.views, self.grad_views = [], []
        with self.device.context():  # CuPy allocates and copies on the current device
            self.data = xp.empty(self.size, dtype=self.dtype)
            self.grad = xp.zeros(self.size, dtype=self.dtype)
            for p, (a, b) in zip(self.params, self.ranges()):
                self.data[a:b] = p.data.reshape(-1)
                p.data = self.data[a:b].reshape(p.shape)
                self.views.append(p.data)
                self.grad_views.append(self.grad[a:b].reshape(p.shape))
                p.grad_home = self.grad_views[-1]

    def ranges(self):
        """[(start, end)] of each parameter in the buffers, in parameter order."""
        return list(self._ranges)

    def is_current(self):
        """True while every parameter's data is still its view into ``data``
        on this device."""
        return all(p.data is v and p.device == self.device
                   for p, v in zip(self.params, self.views))

    def zero_grad(self, set_to_none=True):
        """Forget every gradient: ``p.grad = None``, the next backward
        writing each parameter's first gradient into its view (the
        buffer's old contents are never read). With ``set_to_none=False``,
        zero the buffer and point every ``p.grad`` at its view instead."""
        if set_to_none:
            for p in self.params:
                p.grad = None
            return
        with self.device.context():
            self.grad.fill(0)
        for p, g in zip(self.params, self.grad_views):
            p.grad = g

    def adopt(self, i):
        """Bring parameter i's gradient into its view of the buffer (the
        textbook tier's plain rule leaves it a separate array; the fast
        tier's hand-off writes it there already). Returns False when it
        has none."""
        p, g = self.params[i], self.grad_views[i]
        if p.grad is None:
            return False
        if p.grad is not g:
            with self.device.context():
                g[...] = p.grad
            p.grad = g
        return True

    def materialize_grads(self):
        """Make the buffer hold every gradient: each ``p.grad`` that is None
        becomes its zeroed view (a rank of a data-parallel run whose slice
        of the batch reached no parameter, or not this one, still takes
        part in the average with zeros, and then applies it)."""
        with self.device.context():
            for i, (p, g) in enumerate(zip(self.params, self.grad_views)):
                if not self.adopt(i):
                    g.fill(0)
                    p.grad = g

    def collect_grads(self):
        """Bring gradients that live elsewhere (set by hand, or after a
        ``p.grad = None``) into the buffer. Returns, per parameter, whether
        it has a gradient this step."""
        present = [self.adopt(i) for i in range(len(self.params))]
        with self.device.context():
            for ok, g in zip(present, self.grad_views):
                if not ok:
                    g.fill(0)
        return present

    def segments(self, present):
        """Maximal [a, b) ranges of the buffer covered by parameters with gradients."""
        out = []
        for (a, b), ok in sorted(zip(self.ranges(), present)):
            if not ok or a == b:
                continue
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out
