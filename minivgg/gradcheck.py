"""Finite-difference gradient checking.

Every op of the paper's network is verified by comparing its hand-written
backward with centred differences in float64 (docs/architecture.md, tests/test_functional.py).
"""
import numpy as np

from .autograd import Tensor, no_grad
from .backend import as_numpy, get_array_module


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree."""


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0, raise_on_failure=True,
              max_elements=None):
    """Check ``fn``'s backward against centred finite differences.

    fn: callable taking Tensors and returning a Tensor.
    inputs: Tensors (those with ``requires_grad`` are checked) or arrays
        (treated as constants). They must be float64.
    The scalar probed is sum(fn(*inputs) * G) for a fixed random upstream
    gradient G, so every output element contributes. For each checked
    element, numeric = (f(x + eps) - f(x - eps)) / (2 eps).
    ``max_elements``: check at most this many randomly chosen elements per
    input (None: all).

    Returns the largest relative error |a - n| / max(|a|, |n|, atol/rtol)
    over all checked elements; raises GradcheckError naming the input, the
    element and both values when |a - n| > atol + rtol * |n| somewhere.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {i} is {x.dtype}")
    rng = np.random.default_rng(seed)

    for x in inputs:
        x.grad = None
    out = fn(*inputs)
    xp = get_array_module(out.data)
    upstream = xp.asarray(rng.standard_normal(out.shape))
    out.backward(upstream)
    analytic = [None if not x.requires_grad else
                (as_numpy(x.grad) if x.grad is not None else np.zeros(x.shape))
                for x in inputs]

    def probe():
        with no_grad():
            return float((fn(*inputs).data * upstream).sum())

    worst = 0.0
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        flat = x.data.reshape(-1)
        if x.data.size and not get_array_module(x.data).shares_memory(flat, x.data):
            # reshape copied (a non-contiguous array, or a NumPy scalar rather than
            # an array): perturbing the copy would leave fn's input unchanged.
            raise ValueError(f"gradcheck: input {i} must be a contiguous array, got "
                             f"{type(x.data).__name__}")
        idx = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            idx = np.sort(rng.choice(flat.size, max_elements, replace=False))
        a_flat = analytic[i].reshape(-1)
        for j in idx:
            orig = float(flat[j])
            flat[j] = orig + eps
            fp = probe()
            flat[j] = orig - eps
            fm = probe()
            flat[j] = orig
            num = (fp - fm) / (2 * eps)
            ana = float(a_flat[j])
            err = abs(ana - num)
            rel = err / max(abs(ana), abs(num), atol / rtol)
            worst = max(worst, rel)
            if err > atol + rtol * abs(num) and raise_on_failure:
                raise GradcheckError(
                    f"gradient mismatch for input {i} (shape {x.shape}) at flat index {j}: "
                    f"analytic {ana:.10g}, numerical {num:.10g}, relative error {rel:.3g}")
    return worst
