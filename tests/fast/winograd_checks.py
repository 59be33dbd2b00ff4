"""Checks shared by tests/fast/test_winograd.py (F(2x2, 3x3)) and
tests/fast/test_winograd4.py (F(4x4, 3x3)): both modules have the same interface
(transform matrices BT, G, AT; weight_transform and its adjoint,
flipped_weight_transform, conv3x3, weight_grad), and are held to the same
oracles, each with its own tolerance."""
import numpy as np

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.backend import device
from minivgg.fast import conv as conv_mod
from minivgg.fast import select
from kinks import conv_inputs, conv_relu_kinks


def check_transform_matrices(W, m):
    """AT [(G g G^T) * (BT d BT^T)] AT^T is the m x m correlation of an (m+2) x (m+2) tile."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    y = W.AT @ ((W.G @ g @ W.G.T) * (W.BT @ d @ W.BT.T)) @ W.AT.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


def check_weight_transform(W, rng, m):
    """U[:, k, c] is G w[k, c] G^T, row-major; the adjoint satisfies <U(w), dU> = <w, U*(dU)>;
    the flipped transform is the transform of the flipped, transposed kernel."""
    a = m + 2
    w = rng.standard_normal((3, 2, 3, 3))
    u = W.weight_transform(w)
    assert u.shape == (a * a, 3, 2)
    for k in range(3):
        for c in range(2):
            np.testing.assert_allclose(u[:, k, c].reshape(a, a), W.G @ w[k, c] @ W.G.T,
                                       rtol=1e-13, atol=1e-13)
    du = rng.standard_normal(u.shape)
    assert np.isclose(np.sum(u * du), np.sum(w * W.weight_transform_adjoint(du)), rtol=1e-12)
    w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.flipped_weight_transform(w), W.weight_transform(w_t),
                               rtol=1e-13, atol=1e-13)


def check_conv3x3(W, rng, xs, k, pad, tol):
    """Forward, with bias, with ReLU, and on a channel-major strided input, against the
    loop reference convolution (float64)."""
    x = rng.standard_normal(xs)
    w, b = rng.standard_normal((k, xs[1], 3, 3)), rng.standard_normal(k)
    assert W.applies(x.shape, w.shape, (1, 1), pad)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    y = W.conv3x3(x, w, pad, b)
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    y = W.conv3x3(x, w, pad, b, relu=True)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=tol, atol=tol)
    # channel-major and strided inputs (what the layers hand each other)
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.conv3x3(xc, w, pad),
                               F.conv2d_reference(x, w, None, 1, pad), rtol=tol, atol=tol)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # channels last
    np.testing.assert_allclose(W.conv3x3(xl, w, pad),
                               F.conv2d_reference(x, w, None, 1, pad), rtol=tol, atol=tol)


def check_weight_grad(W, rng, xs, k, pad, tol):
    """dW against the im2col path's (float64)."""
    x, w = rng.standard_normal(xs), rng.standard_normal((k, xs[1], 3, 3))
    y = F.conv2d_reference(x, w, None, 1, pad)
    gy = rng.standard_normal(y.shape)
    expected = conv_mod._conv_weight_grad(device("cpu"), x, gy.transpose(1, 0, 2, 3).reshape(k, -1),
                                          w.shape, (1, 1), pad)
    for layout in ((0, 1, 2, 3), (1, 0, 2, 3), (0, 2, 3, 1)):   # NCHW, channel-major, channels last
        back = np.argsort(layout)
        got = W.weight_grad(np.ascontiguousarray(x.transpose(layout)).transpose(back),
                            np.ascontiguousarray(gy.transpose(layout)).transpose(back), pad)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def check_float32_error_bound(W, bound):
    """In float32 the output, and dW, lie within ``bound`` times the RMS of the
    exact result (the convolution of the same float32 numbers in float64), with
    VGG's layer widths and kaiming weights."""
    rng = np.random.default_rng(1)
    cpu = device("cpu")
    for c, k, h in [(64, 64, 16), (256, 128, 8), (512, 64, 6)]:
        x = rng.standard_normal((2, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        exact = F.conv2d_reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
        y = W.conv3x3(x, w, (1, 1))
        assert y.dtype == np.float32
        rms = np.sqrt(np.mean(exact ** 2))
        assert np.abs(y - exact).max() <= bound * rms
        gy = rng.standard_normal(exact.shape).astype(np.float32)
        gy_cm = gy.transpose(1, 0, 2, 3)
        gw_exact = conv_mod._conv_weight_grad(cpu, x.astype(np.float64),
                                              gy_cm.reshape(k, -1).astype(np.float64),
                                              w.shape, (1, 1), (1, 1))
        gw = W.weight_grad(x, gy, (1, 1))
        assert gw.dtype == np.float32
        assert np.abs(gw - gw_exact).max() <= bound * np.sqrt(np.mean(gw_exact ** 2))


def check_conv2d_gradcheck(W, mode, monkeypatch, rng, xs, k, pad, relu, tol, eps):
    """Forward, dX (the flipped-kernel convolution) and dW all through module
    W (select.CONV = ``mode``), float64: the forward against the reference
    within ``tol``, the gradients against central differences with step
    ``eps``, and W's conv3x3 (forward and dX) and weight_grad seen to run."""
    monkeypatch.setattr(select, "CONV", mode)
    calls = []
    real_conv, real_grad = W.conv3x3, W.weight_grad
    monkeypatch.setattr(W, "conv3x3", lambda *a, **kw: calls.append("y") or real_conv(*a, **kw))
    monkeypatch.setattr(W, "weight_grad", lambda *a, **kw: calls.append("w") or real_grad(*a, **kw))
    x, w, b = (Tensor(a, requires_grad=True)
               for a in conv_inputs(xs, (k, xs[1], 3, 3), 1, pad, relu, eps))
    y = select.conv2d(x, w, b, 1, pad, relu=relu)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    np.testing.assert_allclose(y.data, np.maximum(ref, 0) if relu else ref, rtol=tol, atol=tol)
    assert gradcheck(lambda x, w, b: select.conv2d(x, w, b, 1, pad, relu=relu), [x, w, b],
                     eps=eps, kinks=conv_relu_kinks(1, pad) if relu else None) < 1e-5
    assert calls.count("w") and calls.count("y") >= 2   # forward and dX, and dW, ran here
