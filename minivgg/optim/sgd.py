"""Mini-batch SGD with momentum and L2 weight decay (§3.1: batch 256,
momentum 0.9, weight decay 5e-4, learning rate 1e-2).

Update rule (the same as ``torch.optim.SGD``), for each parameter p with
gradient g, learning rate lr, momentum mu and weight decay wd:

    d = g + wd * p            # L2 penalty (wd/2)*||p||^2 folded into the gradient
    v = mu * v + d            # v starts at 0, so the first step is v = d
    p = p - lr * v

Caffe, which the paper used, keeps the learning rate inside the velocity:

    v = mu * v + lr * d
    p = p - v

The two agree while lr is constant. When lr is divided by 10 (§3.1 does this
three times) Caffe's velocity still carries steps taken at the old rate and
decays them over ~1/(1-mu) = 10 iterations, while here the whole stored
velocity is rescaled at once by the new lr. The difference is a short
transient after each drop and does not change the recipe.

Parameters, gradients and momentum live in flat buffers
(``optim/flat.py``): one pass (one kernel launch on a GPU) updates the
whole network, and the buffers follow the parameters when the model moves
to another device.
"""
import contextlib

import numpy as np

from .. import profiler
from ..autograd import no_grad
from ..backend import as_numpy
from ..cuda import ops
from ..threads import split
from .flat import FlatParameters

#: Elements per slice of the NumPy update: its temporaries stay in cache.
#: The slices are shared out among minivgg's threads (minivgg/threads.py).
_SLICE = 1 << 16


class SGD:
    """SGD(params, lr, momentum=0.0, weight_decay=0.0).

    params: an iterable of Tensors/Parameters (for example
    ``model.parameters()``), all on one device. Updates are in place, so
    views of the weights (the dense network's convolutions) stay in sync.
    Parameters whose ``grad`` is None at ``step()`` are left unchanged.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        for name, v in (("learning rate", lr), ("momentum", momentum),
                        ("weight_decay", weight_decay)):
            if not np.isfinite(v):
                raise ValueError(f"SGD: {name} must be a finite number, got {v}")
        if lr <= 0:
            raise ValueError(f"SGD: learning rate must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.has_velocity = [False] * len(self.params)
        self.steps = 0
        self.flat = None
        self.velocity_flat = None   # the momentum buffer, beside self.flat.data

    # -- buffers ----------------------------------------------------------------
    def buffers(self):
        """The FlatParameters, (re)built if the parameters moved since."""
        if self.flat is None or not self.flat.is_current():
            old_v = None if self.flat is None else self._velocity_views()
            self.flat = FlatParameters(self.params)
            dev = self.flat.device
            with dev.context():
                self.velocity_flat = dev.xp.zeros(self.flat.size, dtype=self.flat.dtype)
                if old_v is not None:  # the momentum follows its parameters
                    for dst, src in zip(self._velocity_views(), old_v):
                        dst[...] = dev.asarray(src)
        return self.flat

    def _velocity_views(self):
        return [self.velocity_flat[a:b].reshape(p.shape)
                for p, (a, b) in zip(self.params, self.flat.ranges())]

    @property
    def velocity(self):
        """Each parameter's momentum buffer (a view into the flat one), or
        None where none exists yet."""
        if self.flat is None:
            return [None] * len(self.params)
        return [v if has else None for v, has in zip(self._velocity_views(), self.has_velocity)]

    def zero_grad(self, set_to_none=True):
        """Forget every gradient before the next backward: ``p.grad = None``
        (the next backward writes each parameter's gradient straight into
        its view of the flat gradient buffer, so nothing is zeroed), or
        with ``set_to_none=False`` a zeroed view for each."""
        self.buffers().zero_grad(set_to_none)

    def step(self, grad_scale=1.0):
        """One update from the gradients in ``p.grad``, multiplied by
        ``grad_scale`` (the trainer back-propagates sums of losses and scales
        here, in the same pass, to get the gradient of the mean)."""
        flat = self.buffers()
        prof = profiler.active()
        with no_grad(), flat.device.context(), \
                (prof.span("SGD.step") if prof else contextlib.nullcontext()):
            present = flat.collect_grads()
            for a, b in flat.segments(present):
                self._update(flat.data[a:b], self.velocity_flat[a:b], flat.grad[a:b], grad_scale)
        if self.momentum:  # without momentum the buffer is scratch, not state
            self.has_velocity = [h or p for h, p in zip(self.has_velocity, present)]
        self.steps += 1

    def _update(self, p, v, g, grad_scale):
        """v = mu*v + c*g; v += wd*p; p -= lr*v over flat slices p, v, g (c = grad_scale)."""
        dev = self.flat.device
        if dev.uses_kernels:
            ops.sgd_step(dev, p, v, g, self.lr, self.momentum, self.weight_decay, grad_scale)
            return
        t = p.dtype.type
        lr, mu, wd, c = t(self.lr), t(self.momentum), t(self.weight_decay), t(grad_scale)

        def slices(s0, s1):
            # Each slice's arithmetic is elementwise, so the threads' share
            # of them changes no number.
            tmp = np.empty(min(_SLICE, p.size), dtype=p.dtype)
            for s in range(s0 * _SLICE, min(p.size, s1 * _SLICE), _SLICE):
                ps, vs, gs = p[s:s + _SLICE], v[s:s + _SLICE], g[s:s + _SLICE]
                ts = tmp[:ps.size]
                if self.momentum:
                    vs *= mu
                if grad_scale != 1.0:
                    np.multiply(gs, c, out=ts)
                    gs = ts
                if self.momentum:
                    vs += gs
                else:
                    vs[...] = gs
                if self.weight_decay:
                    np.multiply(ps, wd, out=ts)
                    vs += ts
                np.multiply(vs, lr, out=ts)
                ps -= ts
        split(slices, -(-p.size // _SLICE), p.size, 2 * _SLICE)

    # -- checkpointing --------------------------------------------------------
    def state_dict(self):
        """{'lr', 'momentum', 'weight_decay', 'steps', 'velocity': [arrays or None]}."""
        velocity = [None if v is None else np.array(as_numpy(v), copy=True)
                    for v in self.velocity]
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "steps": self.steps, "velocity": velocity}

    def load_state_dict(self, state):
        vel = state["velocity"]
        if len(vel) != len(self.params):
            raise ValueError(f"optimizer state has {len(vel)} momentum buffers, expected "
                             f"{len(self.params)}")
        for i, (v, p) in enumerate(zip(vel, self.params)):
            if v is not None and tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"momentum buffer {i}: expected shape {tuple(p.shape)}, "
                                 f"got {tuple(v.shape)}")
        self.lr = float(state["lr"])
        self.momentum = float(state["momentum"])
        self.weight_decay = float(state["weight_decay"])
        self.steps = int(state["steps"])
        self.buffers()
        dev = self.flat.device
        for dst, v in zip(self._velocity_views(), vel):
            dst[...] = 0 if v is None else dev.asarray(v)
        self.has_velocity = [v is not None for v in vel]
