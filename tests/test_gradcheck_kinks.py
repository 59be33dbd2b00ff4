"""The helpers that keep gradchecks off kinks (minivgg.gradcheck): the
distances they compute, the margin the inputs they return keep, and the
refusal of inputs that do not keep it."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.gradcheck import (KINK_MARGIN_STEPS, KinkError, away_from_kinks, distinct_values,
                               pool_ties, relu_kinks, vgg_kinks)
from minivgg.models import vgg
from kinks import conv_inputs, conv_relu_kinks


@pytest.mark.parametrize("xs,k,s,p", [((2, 3, 6, 6), 2, 2, 0), ((1, 2, 7, 7), 3, 2, 1),
                                      ((1, 1, 5, 6), (3, 2), (1, 2), 0)])
def test_pool_ties_against_loops(xs, k, s, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs)
    x[0, 0, 0, :2] = 9.0                             # a tie in the first window
    kh, kw = (k, k) if np.isscalar(k) else k
    sh, sw = (s, s) if np.isscalar(s) else s
    got = pool_ties(x, k, s, p)
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    for n in range(xs[0]):
        for c in range(xs[1]):
            for i in range(got.shape[2]):
                for j in range(got.shape[3]):
                    win = np.sort(xpad[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].ravel())
                    want = np.inf if not np.isfinite(win[-2]) else win[-1] - win[-2]
                    assert got[n, c, i, j] == want
    assert got[0, 0, 0, 0] == 0 and (got == 0).sum() == 1   # the planted tie, alone


def test_distinct_values_keep_their_gap():
    x = distinct_values((2, 3, 4, 5), np.random.default_rng(0), gap=0.25)
    v = np.sort(x.ravel())
    assert np.diff(v).min() >= 0.25
    assert pool_ties(x, 2, 2).min() >= 0.25


@pytest.mark.parametrize("xs,ws,stride,pad", [((2, 3, 6, 5), (4, 3, 3, 3), 1, 1),
                                             ((2, 2, 7, 7), (3, 2, 3, 3), 2, 0)])
def test_inputs_keep_the_margin_they_promise(xs, ws, stride, pad):
    """conv_inputs (away_from_kinks with relu_kinks of the pre-activations):
    every pre-activation at least KINK_MARGIN_STEPS * eps from 0, so no
    central-difference step of any single element, in any input, changes the
    ReLU's mask."""
    eps = 1e-6
    x, w, b = conv_inputs(xs, ws, stride, pad, eps=eps)
    z = F.conv2d_reference(x, w, b, stride, pad)
    assert np.abs(z).min() >= KINK_MARGIN_STEPS * eps
    mask = z > 0
    for arrays, i in ((x, 0), (w, 1), (b, 2)):
        flat = arrays.reshape(-1)
        for j in range(flat.size):
            for step in (eps, -eps):
                orig = flat[j]
                flat[j] = orig + step
                zz = F.conv2d_reference(x, w, b, stride, pad)
                flat[j] = orig
                assert np.array_equal(zz > 0, mask), (i, j, step)


def test_rejection_keeps_the_draws_distribution_and_gives_up_loudly():
    draw = lambda r: (r.standard_normal(50),)                       # noqa: E731
    kinks = lambda a: [relu_kinks(a)]                                # noqa: E731
    a, = away_from_kinks(draw, kinks, 1e-3, seed=3)
    assert np.abs(a).min() >= 1e-3
    # the accepted draw is one of the plain draws of the same streams
    assert any(np.array_equal(a, draw(np.random.default_rng([3, t]))[0]) for t in range(1000))
    with pytest.raises(ValueError, match="no draw in 5 kept a margin of 10"):
        away_from_kinks(draw, kinks, 10.0, tries=5)


def test_gradcheck_refuses_an_input_on_a_kink():
    x = Tensor(np.array([0.5, -2.0, 3e-7]), requires_grad=True)
    with pytest.raises(KinkError, match="3e-07 from a kink"):
        gradcheck(F.relu, [x], kinks=lambda a: [relu_kinks(a)])
    x = Tensor(np.array([[[[1.0, 1.0 + 1e-6], [0.0, -1.0]]]]), requires_grad=True)
    with pytest.raises(KinkError):
        gradcheck(lambda t: F.max_pool2d(t, 2, 2), [x], kinks=lambda a: [pool_ties(a, 2, 2)])
    # far enough: checked
    x = Tensor(np.array([0.5, -2.0, 3e-3]), requires_grad=True)
    assert gradcheck(F.relu, [x], kinks=lambda a: [relu_kinks(a)]) < 1e-8


def test_vgg_kinks_cover_every_relu_and_pool():
    m = vgg("A-LRN", num_classes=3, input_size=32, fc_width=6, width_mult=1 / 16, seed=0,
            dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    minivgg.manual_seed(1)
    kinks = vgg_kinks(m, x)
    relus = sum(type(layer).__name__ == "ReLU" for layer in list(m.features) + list(m.classifier))
    pools = sum(type(layer).__name__ == "MaxPool2d" for layer in m.features)
    assert len(kinks) == relus + pools == 10 + 5
    # the first ReLU's distances are those of the first convolution's outputs
    conv = m.features[0]
    z = F.conv2d_reference(x, conv.weight.data, conv.bias.data, 1, 1)
    np.testing.assert_allclose(kinks[0], np.abs(z), rtol=1e-10, atol=1e-12)


def test_conv_relu_kinks_are_the_pre_activations():
    x, w, b = conv_inputs((1, 2, 4, 4), (3, 2, 3, 3), 1, 1, relu=False)
    z, = conv_relu_kinks(1, 1)(x, w, b)
    np.testing.assert_allclose(z, np.abs(F.conv2d_reference(x, w, b, 1, 1)))
