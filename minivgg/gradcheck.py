"""Finite-difference gradient checking, and inputs that keep it valid.

Every op of the paper's network is verified by comparing its hand-written
backward with centred differences in float64 (docs/testing.md).

A centred difference is only a derivative where the function is smooth
across the step. ReLU has a kink at 0 and max-pooling one wherever the two
largest values of a window meet, so a check whose input puts a
pre-activation within a step of 0 measures the kink, not the gradient; and
whether it does can hang on the last bit of a BLAS sum, which differs
between machines. ``gradcheck(..., kinks=f)`` refuses such inputs, and
``away_from_kinks`` draws inputs that keep a stated margin from every kink,
so a check is valid by construction rather than by the luck of a seed.
"""
import numpy as np

from .autograd import Tensor, no_grad
from .backend import as_numpy, get_array_module


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree."""


class KinkError(ValueError):
    """Raised when a gradcheck's input lies too close to a kink for central differences."""


# How many finite-difference steps an input must keep from every kink.
# One step of one input element moves a kink variable (a pre-activation, a
# pool window's gap) by at most |d kink / d element| * eps; with the unit-scale
# inputs of the tests that factor is a few units, so 100 steps leave room of
# more than an order of magnitude, and no rounding of any BLAS (1e-13 or so in
# float64) comes near it.
KINK_MARGIN_STEPS = 100


def relu_kinks(z):
    """Distance of each pre-activation z to ReLU's kink at 0: |z|."""
    xp = get_array_module(z)
    return xp.abs(z)


def pool_ties(x, kernel_size=2, stride=None, padding=0):
    """For each max-pool window of x (N, C, H, W), the gap between its largest
    and second-largest value: (N, C, OH, OW). A window with a gap of 0 has a
    tie, a kink of the max. Padding counts as -inf, as in max_pool2d; a window
    with a single finite value has an infinite gap."""
    xp = get_array_module(x)
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    n, c, h, w = x.shape
    xpad = xp.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf, dtype=np.float64)
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    windows = xp.stack([xpad[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
                        for i in range(kh) for j in range(kw)])
    windows = xp.sort(windows, axis=0)
    with np.errstate(invalid="ignore"):
        gap = windows[-1] - windows[-2]
    return xp.where(xp.isnan(gap), np.inf, gap)


def smallest_kink_distance(kinks):
    """The smallest value among the arrays ``kinks`` (inf if there are none)."""
    return min((float(as_numpy(k).min()) for k in kinks if k.size), default=np.inf)


def away_from_kinks(draw, kinks, margin, seed=0, tries=1000):
    """Inputs whose every kink distance is at least ``margin``.

    draw(rng) -> tuple of arrays, a random draw of the inputs;
    kinks(*arrays) -> list of arrays of distances to the kinks of the
        function checked (``relu_kinks`` of each pre-activation, ``pool_ties``
        of each pooled map, ...).
    Draws from the streams (seed, 0), (seed, 1), ... until one keeps the
    margin, and returns it; raises ValueError after ``tries`` draws. Being a
    rejection, not a nudge, the inputs keep the distribution ``draw`` gives.
    """
    for t in range(tries):
        arrays = draw(np.random.default_rng([seed, t]))
        if smallest_kink_distance(kinks(*arrays)) >= margin:
            return arrays
    raise ValueError(f"away_from_kinks: no draw in {tries} kept a margin of {margin:g} from "
                     f"every kink; lower the margin or draw fewer or larger values")


def distinct_values(shape, rng, gap=1.0):
    """An array of ``shape`` whose values all differ by at least ``gap``: a
    random permutation of 0, gap, 2 gap, ... (pool windows without ties)."""
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) * gap


def checked_margin(kinks, inputs, eps, margin=None):
    """Raise KinkError unless ``kinks`` (a function of the inputs' arrays)
    keeps at least ``margin`` (default KINK_MARGIN_STEPS * eps) from every kink."""
    margin = KINK_MARGIN_STEPS * eps if margin is None else margin
    d = smallest_kink_distance(kinks(*[x.data for x in inputs]))
    if d < margin:
        raise KinkError(f"gradcheck: an input lies {d:.3g} from a kink, closer than the margin "
                        f"{margin:.3g} ({margin / eps:g} steps of eps={eps:g}); central differences "
                        f"there would measure the kink. Draw inputs with away_from_kinks.")
    return d


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0, raise_on_failure=True,
              max_elements=None, kinks=None, margin=None):
    """Check ``fn``'s backward against centred finite differences.

    fn: callable taking Tensors and returning a Tensor.
    inputs: Tensors (those with ``requires_grad`` are checked) or arrays
        (treated as constants). They must be float64.
    The scalar probed is sum(fn(*inputs) * G) for a fixed random upstream
    gradient G, so every output element contributes. For each checked
    element, numeric = (f(x + eps) - f(x - eps)) / (2 eps).
    ``max_elements``: check at most this many randomly chosen elements per
    input (None: all).
    ``kinks``: for a function with kinks (ReLU, max-pool), a function of the
    inputs' arrays returning the arrays of distances to every kink (see
    ``relu_kinks``, ``pool_ties``); the check raises KinkError before probing
    unless each is at least ``margin`` (default KINK_MARGIN_STEPS * eps).

    Returns the largest relative error |a - n| / max(|a|, |n|, atol/rtol)
    over all checked elements; raises GradcheckError naming the input, the
    element and both values when |a - n| > atol + rtol * |n| somewhere.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {i} is {x.dtype}")
    if kinks is not None:
        checked_margin(kinks, inputs, eps, margin)
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


def vgg_kinks(model, x):
    """The kink distances of a VGG's forward pass on x (N, 3, H, W): |z| of
    every pre-activation that meets a ReLU and the window gaps of every
    max-pool, layer by layer, unfused. Dropout draws its masks as the model
    does, so seed the generator the same way before this call and before
    each of the model's (as a gradcheck of a training-mode VGG must anyway).

    Every pool of Table 1 follows a ReLU, whose zeros are flat: a window
    whose largest values are zeros has no kink, and a positive value's
    distance to 0 is already its ReLU's. So zeros are left out of the pool
    gaps (taken as -inf)."""
    from .nn.layers import MaxPool2d, ReLU
    kinks = []
    h = x if isinstance(x, Tensor) else Tensor(x)
    with no_grad():
        for stage in (model.features, model.classifier):
            if stage is model.classifier:
                h = h.reshape((h.shape[0], -1))
            for layer in stage:
                if isinstance(layer, ReLU):
                    kinks.append(relu_kinks(h.data))
                elif isinstance(layer, MaxPool2d):
                    xp = get_array_module(h.data)
                    kinks.append(pool_ties(xp.where(h.data == 0, -np.inf, h.data),
                                           layer.kernel_size, layer.stride, layer.padding))
                h = layer(h)
    return kinks
