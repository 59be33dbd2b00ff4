"""Mini-batch SGD with momentum and L2 weight decay (§3.1: batch 256,
momentum 0.9, weight decay 5e-4, learning rate 1e-2).

Update rule (the same as ``torch.optim.SGD``), for each parameter p with
gradient g, learning rate lr, momentum mu and weight decay wd:

    d = g + wd * p            # L2 penalty (wd/2)*||p||^2 folded into the gradient
    v = mu * v + d            # v starts as d at the first step
    p = p - lr * v

Caffe, which the paper used, keeps the learning rate inside the velocity:

    v = mu * v + lr * d
    p = p - v

The two agree while lr is constant. When lr is divided by 10 (§3.1 does this
three times) Caffe's velocity still carries steps taken at the old rate and
decays them over ~1/(1-mu) = 10 iterations, while here the whole stored
velocity is rescaled at once by the new lr. The difference is a short
transient after each drop and does not change the recipe.
"""
import numpy as np

from ..autograd import no_grad
from ..backend import as_numpy, get_array_module


class SGD:
    """SGD(params, lr, momentum=0.0, weight_decay=0.0).

    params: an iterable of Tensors/Parameters (for example
    ``model.parameters()``). Updates are in place, so views of the weights
    (the dense network's convolutions) stay in sync.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"SGD: learning rate must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.velocity = [None] * len(self.params)
        self.steps = 0
        self._buffers = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        """One update from the gradients in ``p.grad`` (skipped where None).

        Works in place with one scratch buffer per parameter shape, so a step
        allocates nothing after the first (fresh multi-megabyte temporaries
        cost page faults on every step).
        """
        with no_grad():
            for i, p in enumerate(self.params):
                g = p.grad
                if g is None:
                    continue
                xp = get_array_module(p.data)
                dt = p.data.dtype.type
                tmp = self._scratch(p.data)
                if self.momentum:
                    v = self.velocity[i]
                    if v is None:
                        v = self.velocity[i] = xp.array(g, copy=True)
                    else:
                        v *= dt(self.momentum)
                        v += g
                    if self.weight_decay:  # v = mu * v + (g + wd * p)
                        xp.multiply(p.data, dt(self.weight_decay), out=tmp)
                        v += tmp
                    d = v
                else:
                    d = g
                    if self.weight_decay:
                        xp.multiply(p.data, dt(self.weight_decay), out=tmp)
                        tmp += g
                        d = tmp
                xp.multiply(d, dt(self.lr), out=tmp)
                p.data -= tmp
        self.steps += 1

    def _scratch(self, like):
        key = (like.shape, like.dtype.str, type(like))
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = get_array_module(like).empty_like(like)
        return buf

    # -- checkpointing --------------------------------------------------------
    def state_dict(self):
        """{'lr', 'momentum', 'weight_decay', 'steps', 'velocity': [arrays or None]}."""
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "steps": self.steps,
                "velocity": [None if v is None else np.array(as_numpy(v), copy=True)
                             for v in self.velocity]}

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
        self.velocity = [None if v is None else
                         get_array_module(p.data).asarray(v, dtype=p.dtype)
                         for v, p in zip(vel, self.params)]
