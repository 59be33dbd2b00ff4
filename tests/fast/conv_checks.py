"""A check shared by tests/fast/test_channels_last.py and
tests/fast/test_small_maps.py:
conv2d through one of the CPU's channels-last paths, float64."""
import numpy as np

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.fast import select
from minivgg.fast.channels_last import is_channels_last
from kinks import conv_inputs, conv_relu_kinks


def check_channels_last_path(rng, monkeypatch, module, names, xs, ws, pad, relu):
    """conv2d (chosen to go through ``module``, whose functions ``names``
    are counted) against the loop reference; its output and dX laid out
    channels-last; forward, dX, dW and db against central differences.
    Returns the names of the counted calls of one forward + backward, in order."""
    calls = []
    for name in names:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _n=name, _r=real, **k:
                            calls.append(_n) or _r(*a, **k))
    x, w, b = (Tensor(a, requires_grad=True) for a in conv_inputs(xs, ws, 1, pad, relu))
    y = select.conv2d(x, w, b, 1, pad, relu=relu)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    np.testing.assert_allclose(y.data, np.maximum(ref, 0) if relu else ref, rtol=1e-12,
                               atol=1e-12)
    assert is_channels_last(y.data)
    y.backward(rng.standard_normal(y.shape))
    assert is_channels_last(x.grad)
    one_pass = list(calls)
    assert gradcheck(lambda x, w, b: select.conv2d(x, w, b, 1, pad, relu=relu), [x, w, b],
                     kinks=conv_relu_kinks(1, pad) if relu else None) < 1e-5
    return one_pass


def laid_out(a, layout):
    """``a`` (N, C, H, W) with the same values in another memory layout:
    "channels-last", "channel-major", or as it is ("nchw")."""
    if layout == "channels-last":
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "channel-major":
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return a


def check_channels_last_forward(conv, rng, layout, xs, ws, pad):
    """``conv(x, w, pad, b=None, relu=False)``, a channels-last path's forward,
    from an input laid out as ``layout``: a contiguous (N, OH, OW, K) result
    equal to the loop reference, with and without bias and ReLU (float64)."""
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    ref = F.conv2d_reference(x, w, b, 1, pad)
    xl = laid_out(x, layout)
    y = conv(xl, w, pad, b)
    assert y.shape == (xs[0],) + ref.shape[2:] + (ws[0],) and y.flags.c_contiguous
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2), ref, rtol=1e-12, atol=1e-12)
    y = conv(xl, w, pad, b, relu=True).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=1e-12, atol=1e-12)
    y = conv(xl, w, pad).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, F.conv2d_reference(x, w, None, 1, pad), rtol=1e-12, atol=1e-12)
