"""Every CUDA kernel against the NumPy backend, on the emulated device (always)
and on a real GPU (when there is one): through the ops that use them, and
directly for the layout handling.

Inputs are random and include odd sizes, batch 1, channel counts that are
not a multiple of anything, the channel-major layout the convolution
produces, non-dense views, pooling ties and padding. The grid is capped at
a few blocks here (``small_grid``) so that the grid-stride loops really
wrap around. tests/cuda/test_emu_sanitized.py runs this file again with the
kernels built under AddressSanitizer and UBSan.

On the GPU, float32 results may differ from NumPy's in the last bits (the
GPU fuses multiply-adds and flushes denormals); dropout masks stay
bit-identical everywhere. tests/cuda/test_emu_gpu_math.py runs the emu half
again with the emulator doing the GPU's arithmetic: the emu tolerances hold
there too, a tenth of the GPU's.
"""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.backend import as_numpy
from minivgg.cuda import launch, ops
from minivgg.cuda.emulator import gpu_math_requested
from minivgg.fast import select
from minivgg.functional.conv import col2im, im2col

DTYPES = [np.float32, np.float64]
TOLERANCES = {
    "emu": {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-13)},
    "cuda": {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)},
}


@pytest.fixture(autouse=True)
def small_grid(monkeypatch):
    monkeypatch.setattr(launch, "MAX_BLOCKS", 3)


@pytest.fixture(params=["emu", pytest.param("cuda", marks=pytest.mark.needs_gpu)])
def emu(request):
    """The kernel device under test (named emu for brevity: emu, or a GPU)."""
    return request.getfixturevalue("emu" if request.param == "emu" else "gpu")


@pytest.fixture
def TOL(emu):
    return TOLERANCES[emu.kind]


def host(a):
    return as_numpy(a)


def layouts(x, dev=None):
    """x as C-order NCHW, as a channel-major view, and as a non-dense slice,
    built on ``dev`` (default: NumPy)."""
    xp = np if dev is None else dev.xp
    x = xp.asarray(x) if dev is None else dev.asarray(x)
    cm = xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    wide = xp.zeros(x.shape[:3] + (x.shape[3] + 3,), x.dtype)
    wide[..., 1:1 + x.shape[3]] = x
    return {"nchw": x, "channel-major": cm, "sliced": wide[..., 1:1 + x.shape[3]]}


def run_op(dev, op, arrays, gy=None, grad=True):
    """op on Tensors of ``arrays`` (host or device arrays) on ``dev``; returns
    host copies of the output and of every input gradient after backward(gy)."""
    # Arrays already on the device are used as they are, so that their layout
    # (channel-major, sliced) reaches the kernels.
    ts = [Tensor(a if dev == "cpu" or dev.owns(a) else dev.asarray(a), requires_grad=grad,
                 device=dev) for a in arrays]
    y = op(*ts)
    out = [host(y.data)]
    if grad:
        g = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype) if gy is None \
            else gy
        y.backward(g if dev == "cpu" else dev.asarray(g))
        out += [host(t.grad) for t in ts]
    return out


def assert_same(got, want, tol, what=""):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, **tol, err_msg=f"{what} output {i}")


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
    for name, xl in layouts(x, emu).items():
        np.testing.assert_array_equal(host(ops.im2col(emu, xl, *k, stride, pad)), want,
                                      err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,stride,pad", CONV_CASES)
def test_col2im_kernel_gathers_what_numpy_scatters(emu, TOL, rng, dtype, xs, k, stride, pad):
    x = rng.standard_normal(xs)
    col = rng.standard_normal(im2col(x, *k, stride, pad).shape).astype(dtype)
    want = col2im(col, xs, *k, stride, pad)
    got = ops.col2im(emu, emu.asarray(col), xs, *k, stride, pad)
    np.testing.assert_allclose(host(got), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_bias_act_kernel(emu, TOL, rng, dtype, relu):
    y = rng.standard_normal((5, 37)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    want = y + b[:, None]
    if relu:
        want = np.maximum(want, 0)
    got = ops.bias_act(emu, emu.asarray(y), emu.asarray(b), relu)
    np.testing.assert_allclose(host(got), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,stride,pad", CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("tier", ["fast", "reference"])
def test_conv2d_forward_backward_equals_cpu(emu, TOL, rng, tier, dtype, xs, k, stride, pad, relu):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((4, xs[1]) + k).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)

    def op(x, w, b):
        with minivgg.use_ops(tier):   # fast: chunks, fused bias + ReLU; or the textbook's
            return select.conv2d(x, w, b, stride, pad, relu=relu)
    assert_same(run_op(emu, op, [x, w, b]), run_op("cpu", op, [x, w, b]), TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernels_in_every_layout(emu, rng, dtype):
    x = rng.standard_normal((2, 5, 3, 7)).astype(dtype)
    x[0, 0, 0, :3] = 0.0  # exactly zero: the gradient there is 0
    g = rng.standard_normal(x.shape).astype(dtype)
    for name, xl in layouts(x, emu).items():
        y = ops.relu_forward(emu, xl)
        np.testing.assert_array_equal(host(y), np.maximum(x, 0), err_msg=name)
        for gname, gl in layouts(g, emu).items():
            gx = ops.relu_backward(emu, gl, y)
            np.testing.assert_array_equal(host(gx), np.where(x > 0, g, 0),
                                          err_msg=f"{name}/{gname}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7), (1, 300), (2, 5, 3, 3)])
@pytest.mark.parametrize("p", [0.5, 0.1, 0.9])
def test_dropout_masks_are_bit_identical_to_numpy(emu, rng, dtype, shape, p):
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    outs = {}
    for dev in ("cpu", emu):
        minivgg.manual_seed(11)
        outs[dev == "cpu"] = run_op(dev, lambda t: F.dropout(t, p), [x], gy)
    np.testing.assert_array_equal(outs[False][0], outs[True][0])
    np.testing.assert_array_equal(outs[False][1], outs[True][1])
    y = outs[True][0]
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.35   # a few hundred elements at most
    np.testing.assert_allclose(y[kept], (x / dtype(1 - p))[kept], rtol=1e-6)


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
def test_max_pool_equals_cpu_including_ties(emu, TOL, rng, dtype, xs, k, s, pad, ties):
    # With ties, values come from {-2, -1, 0}: windows share their maximum
    # (the first one wins) and padding must lose to negative values.
    x = (rng.integers(-2, 1, xs) if ties else rng.standard_normal(xs)).astype(dtype)

    def op(t):
        return F.max_pool2d(t, k, s, pad)
    want = run_op("cpu", op, [x])
    np.testing.assert_array_equal(want[0], F.max_pool2d_reference(x, k, s, pad))
    for name, xl in layouts(x, emu).items():
        got = run_op(emu, op, [xl])
        np.testing.assert_array_equal(got[0], want[0], err_msg=name)
        np.testing.assert_allclose(got[1], want[1], **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [5, 3, 4])
@pytest.mark.parametrize("channels", [3, 7])
def test_lrn_equals_cpu(emu, TOL, rng, dtype, size, channels):
    x = (3 * rng.standard_normal((2, channels, 3, 5))).astype(dtype)

    def op(t):
        return F.local_response_norm(t, size, alpha=1e-2, beta=0.75, k=2.0)
    want = run_op("cpu", op, [x])
    for name, xl in layouts(x, emu).items():
        assert_same(run_op(emu, op, [xl]), want, TOL[dtype], name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 3), (5, 7), (4, 1000)])
def test_softmax_cross_entropy_equals_cpu(emu, TOL, rng, dtype, n, k):
    z = (4 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n)

    def op(t):
        return F.softmax_cross_entropy(t, labels)
    assert_same(run_op(emu, op, [z], np.ones((), dtype)), run_op("cpu", op, [z], np.ones((), dtype)),
                TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,wd", [(0.9, 5e-4), (0.0, 0.0), (0.0, 1e-2)])
def test_fused_sgd_equals_cpu_over_steps(emu, TOL, rng, dtype, momentum, wd):
    from minivgg.optim import SGD
    init = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(513).astype(dtype)]
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in init] for _ in range(3)]
    final = {}
    for dev in ("cpu", emu):
        ps = [Tensor(a.copy(), requires_grad=True).to(dev) for a in init]
        opt = SGD(ps, lr=0.1, momentum=momentum, weight_decay=wd)
        for step in grads:
            for p, g in zip(ps, step):
                p.grad = p.device.asarray(g)
            opt.step()
        final[dev == "cpu"] = [host(p.data) for p in ps]
    for a, b in zip(final[True], final[False]):
        if emu.kind == "emu" and not gpu_math_requested():
            np.testing.assert_array_equal(b, a)  # the same operations in the same order
        else:  # a GPU, or the emulator's GPU arithmetic, fuses multiply-adds
            np.testing.assert_allclose(b, a, **TOL[dtype])
