"""Inputs for gradchecks of functions with kinks, drawn away from them
(minivgg.gradcheck.away_from_kinks): no check depends on a seed happening
to keep a pre-activation off ReLU's kink (docs/testing.md)."""
import numpy as np

from minivgg import functional as F
from minivgg.gradcheck import KINK_MARGIN_STEPS, away_from_kinks, relu_kinks


def conv_relu_kinks(stride, pad):
    """kinks(x, w, b=None) of relu(conv2d(x, w, b, stride, pad)): its pre-activations."""
    return lambda x, w, b=None: [relu_kinks(F.conv2d_reference(x, w, b, stride, pad))]


def conv_inputs(xs, ws, stride=1, pad=0, relu=True, eps=1e-6, seed=0, bias=True):
    """Standard normal x (xs), w (ws) and b (K,) (or just x, w), float64;
    when ``relu``, redrawn until every pre-activation keeps
    KINK_MARGIN_STEPS * eps from 0."""
    def draw(rng):
        arrays = (rng.standard_normal(xs), rng.standard_normal(ws))
        return arrays + ((rng.standard_normal(ws[0]),) if bias else ())
    if not relu:
        return draw(np.random.default_rng(seed))
    return away_from_kinks(draw, conv_relu_kinks(stride, pad), KINK_MARGIN_STEPS * eps, seed)
