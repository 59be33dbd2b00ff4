"""Every CUDA kernel, run on the emulated device, against the NumPy backend.

Inputs are random and include odd sizes, batch 1, channel counts that are
not a multiple of anything, the channel-major layout the convolution
produces, non-dense views, pooling ties and padding. The grid is capped at
a few blocks here (``small_grid``) so that the grid-stride loops really
wrap around. tests/cuda/test_emu_sanitized.py runs this file again with the
kernels built under AddressSanitizer and UBSan.
"""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.cuda import launch, ops
from minivgg.functional.conv import col2im, im2col

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}


@pytest.fixture(autouse=True)
def small_grid(monkeypatch):
    monkeypatch.setattr(launch, "MAX_BLOCKS", 3)


def layouts(x):
    """x as C-order NCHW, as a channel-major view, and as a non-dense slice."""
    cm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    wide = np.zeros(x.shape[:3] + (x.shape[3] + 3,), x.dtype)
    wide[..., 1:1 + x.shape[3]] = x
    return {"nchw": x, "channel-major": cm, "sliced": wide[..., 1:1 + x.shape[3]]}


def on(dev, *arrays, grad=False):
    return [Tensor(a.copy(), requires_grad=grad, device=dev) for a in arrays]


CONV_CASES = [
    # x shape, (KH, KW), stride, padding
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1)),    # VGG's 3x3, odd non-square input
    ((1, 5, 5, 5), (1, 1), (1, 1), (0, 0)),    # batch 1, config C's 1x1
    ((3, 2, 9, 8), (3, 2), (2, 3), (1, 0)),    # strides and asymmetric kernel
    ((2, 7, 4, 4), (3, 3), (1, 1), (2, 2)),    # padding larger than the kernel's half
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,stride,pad", CONV_CASES)
def test_im2col_kernel_equals_numpy_in_every_layout(emu, rng, dtype, xs, k, stride, pad):
    x = rng.standard_normal(xs).astype(dtype)
    want = im2col(x, *k, stride, pad)
    for name, xl in layouts(x).items():
        got = ops.im2col(emu, xl, *k, stride, pad)
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,stride,pad", CONV_CASES)
def test_col2im_kernel_gathers_what_numpy_scatters(emu, rng, dtype, xs, k, stride, pad):
    x = rng.standard_normal(xs)
    col = rng.standard_normal(im2col(x, *k, stride, pad).shape).astype(dtype)
    want = col2im(col, xs, *k, stride, pad)
    got = ops.col2im(emu, col, xs, *k, stride, pad)
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_bias_act_kernel(emu, rng, dtype, relu):
    y = rng.standard_normal((5, 37)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    want = y + b[:, None]
    if relu:
        want = np.maximum(want, 0)
    np.testing.assert_array_equal(ops.bias_act(emu, y.copy(), b, relu), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,stride,pad", CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_forward_backward_on_emu_equals_cpu(emu, rng, dtype, xs, k, stride, pad, relu):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((4, xs[1]) + k).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    outs = {}
    for dev in ("cpu", emu):
        xt, wt, bt = on(dev, x, w, b, grad=True)
        y = F.conv2d(xt, wt, bt, stride, pad, relu=relu)
        gy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        y.backward(gy)
        outs[str(dev)] = [y.data, xt.grad, wt.grad, bt.grad]
    for a, b_ in zip(outs["cpu"], outs["emu"]):
        np.testing.assert_allclose(b_, a, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernels_in_every_layout(emu, rng, dtype):
    x = rng.standard_normal((2, 5, 3, 7)).astype(dtype)
    x[0, 0, 0, :3] = 0.0  # exactly zero: the gradient there is 0
    for name, xl in layouts(x).items():
        y = ops.relu_forward(emu, xl)
        np.testing.assert_array_equal(y, np.maximum(x, 0), err_msg=name)
        for gname, gl in layouts(rng.standard_normal(x.shape).astype(dtype)).items():
            gx = ops.relu_backward(emu, gl, y)
            np.testing.assert_array_equal(gx, np.where(x > 0, gl, 0), err_msg=f"{name}/{gname}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7), (1, 300), (2, 5, 3, 3)])
@pytest.mark.parametrize("p", [0.5, 0.1, 0.9])
def test_dropout_masks_are_bit_identical_to_numpy(emu, rng, dtype, shape, p):
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    outs = {}
    for dev in ("cpu", emu):
        minivgg.manual_seed(11)
        xt = Tensor(x.copy(), requires_grad=True, device=dev)
        y = F.dropout(xt, p)
        y.backward(gy)
        outs[str(dev)] = (y.data, xt.grad)
    np.testing.assert_array_equal(outs["emu"][0], outs["cpu"][0])
    np.testing.assert_array_equal(outs["emu"][1], outs["cpu"][1])
    kept = outs["cpu"][0] != 0
    assert abs(kept.mean() - (1 - p)) < 0.35   # a few hundred elements at most
    np.testing.assert_allclose(outs["cpu"][0][kept], (x / dtype(1 - p))[kept], rtol=1e-6)


POOL_CASES = [
    # x shape, kernel, stride, padding
    ((2, 3, 8, 6), 2, 2, 0),          # VGG's 2x2/2
    ((1, 5, 7, 9), 2, 2, 0),          # odd sizes: the last row/column is dropped
    ((2, 2, 7, 7), 3, 2, 1),          # overlapping windows with padding
    ((1, 1, 5, 5), 3, 1, 1),          # stride 1: every pixel in up to 9 windows
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,s,pad", POOL_CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_on_emu_equals_cpu_including_ties(emu, rng, dtype, xs, k, s, pad, ties):
    # With ties, values come from {-2, -1, 0}: windows share their maximum
    # (the first one wins) and padding must lose to negative values.
    x = (rng.integers(-2, 1, xs) if ties else rng.standard_normal(xs)).astype(dtype)
    gy = None
    outs = {}
    for name, xl in layouts(x).items():
        for dev in ("cpu", emu):
            xt = Tensor(xl.copy(), requires_grad=True, device=dev)
            y = F.max_pool2d(xt, k, s, pad)
            if gy is None:
                gy = rng.standard_normal(y.shape).astype(dtype)
            y.backward(gy)
            outs[str(dev)] = (y.data, xt.grad)
        np.testing.assert_array_equal(outs["emu"][0], outs["cpu"][0], err_msg=name)
        np.testing.assert_allclose(outs["emu"][1], outs["cpu"][1], **TOL[dtype], err_msg=name)
        np.testing.assert_array_equal(outs["cpu"][0], F.max_pool2d_reference(xl, k, s, pad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [5, 3, 4])
@pytest.mark.parametrize("channels", [3, 7])
def test_lrn_on_emu_equals_cpu(emu, rng, dtype, size, channels):
    x = (3 * rng.standard_normal((2, channels, 3, 5))).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    for name, xl in layouts(x).items():
        outs = {}
        for dev in ("cpu", emu):
            xt = Tensor(xl.copy(), requires_grad=True, device=dev)
            y = F.local_response_norm(xt, size, alpha=1e-2, beta=0.75, k=2.0)
            y.backward(gy)
            outs[str(dev)] = (y.data, xt.grad)
        for a, b in zip(outs["cpu"], outs["emu"]):
            np.testing.assert_allclose(b, a, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 3), (5, 7), (4, 1000)])
def test_softmax_cross_entropy_on_emu_equals_cpu(emu, rng, dtype, n, k):
    z = (4 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n)
    outs = {}
    for dev in ("cpu", emu):
        zt = Tensor(z.copy(), requires_grad=True, device=dev)
        loss = F.softmax_cross_entropy(zt, labels)
        loss.backward()
        outs[str(dev)] = (loss.data, zt.grad)
    for a, b in zip(outs["cpu"], outs["emu"]):
        np.testing.assert_allclose(b, a, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,wd", [(0.9, 5e-4), (0.0, 0.0), (0.0, 1e-2)])
def test_fused_sgd_on_emu_equals_cpu_over_steps(emu, rng, dtype, momentum, wd):
    from minivgg.optim import SGD
    init = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(513).astype(dtype)]
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in init] for _ in range(3)]
    final = {}
    for dev in ("cpu", emu):
        ps = [Tensor(a.copy(), requires_grad=True, device=dev) for a in init]
        opt = SGD(ps, lr=0.1, momentum=momentum, weight_decay=wd)
        for step in grads:
            for p, g in zip(ps, step):
                p.grad = g.copy()
            opt.step()
        final[str(dev)] = [p.data.copy() for p in ps]
    for a, b in zip(final["cpu"], final["emu"]):
        np.testing.assert_array_equal(b, a)  # same operations in the same order
