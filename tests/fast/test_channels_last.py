"""The channels-last im2col path (minivgg/fast/channels_last.py), float64,
against the loop reference convolution and the channel-major path's plain
dW; where conv2d chooses it; and max-pooling on its layout."""
import numpy as np
import pytest

from kinks import conv_inputs
from conv_checks import check_channels_last_forward, check_channels_last_path, laid_out
from minivgg import Tensor
from minivgg import functional as F
from minivgg.backend import device
from minivgg.fast import channels_last as CL
from minivgg.fast import conv as conv_mod
from minivgg.fast import select
from minivgg.fast import pooling
from minivgg.threads import set_threads

CASES = [
    # (N, C, H, W), (K, C, KH, KW), padding
    ((2, 8, 6, 5), (4, 8, 3, 3), (1, 1)),   # VGG's 3x3 pad 1, non-square input
    ((3, 5, 7, 6), (6, 5, 3, 3), (0, 0)),   # no padding
    ((2, 4, 5, 5), (3, 4, 1, 1), (0, 0)),   # 1x1 (configuration C): no columns to build
    ((1, 3, 7, 6), (2, 3, 3, 2), (2, 1)),   # non-square kernel, padding KH - 1
    ((2, 6, 9, 8), (5, 6, 5, 5), (2, 2)),   # 5x5
]


@pytest.mark.parametrize("chunk", [1, 60, 1 << 19])
@pytest.mark.parametrize("layout", ["nchw", "channel-major", "channels-last"])
@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_forward_matches_reference(rng, monkeypatch, chunk, layout, xs, ws, pad):
    """In blocks of whole images, or bands of rows down to one (``chunk``),
    from inputs of every layout, with and without bias and ReLU."""
    monkeypatch.setitem(conv_mod.CHUNK_ELEMENTS, "cpu", chunk)
    check_channels_last_forward(CL.conv, rng, layout, xs, ws, pad)


@pytest.mark.parametrize("chunk", [1, 60, 1 << 19])
@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_weight_bias_grad_matches_plain_reference(rng, monkeypatch, chunk, xs, ws, pad):
    monkeypatch.setitem(conv_mod.CHUNK_ELEMENTS, "cpu", chunk)
    x = rng.standard_normal(xs)
    oh, ow = xs[2] + 2 * pad[0] - ws[2] + 1, xs[3] + 2 * pad[1] - ws[3] + 1
    g = rng.standard_normal((xs[0], oh, ow, ws[0]))
    gw, gb = CL.weight_bias_grad(laid_out(x, "channel-major"), g, ws, pad, True)
    g2 = g.transpose(3, 0, 1, 2).reshape(ws[0], -1)
    expected = conv_mod._conv_weight_grad(device("cpu"), x, g2, ws, (1, 1), pad)
    np.testing.assert_allclose(gw, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, g2.sum(axis=1), rtol=1e-12, atol=1e-12)
    assert CL.weight_bias_grad(x, g, ws, pad, False)[1] is None


def test_masked_gradient():
    rng = np.random.default_rng(0)
    gy = laid_out(rng.standard_normal((3, 4, 5, 6)), "channel-major")
    y = np.maximum(rng.standard_normal(gy.shape), 0)
    g = CL.masked_gradient(gy, y)
    assert g.shape == (3, 5, 6, 4) and g.flags.c_contiguous
    np.testing.assert_array_equal(g.transpose(0, 3, 1, 2), gy * (y > 0))
    np.testing.assert_array_equal(CL.masked_gradient(gy).transpose(0, 3, 1, 2), gy)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_conv2d_through_channels_last_gradcheck(rng, monkeypatch, relu, xs, ws, pad):
    """Forward, dW, db and dX (the flipped-kernel convolution, channels
    last too) all through this module, float64, against central differences;
    the output and dX come out channels-last."""
    monkeypatch.setattr(select, "CONV", "im2col-channels-last")
    calls = check_channels_last_path(rng, monkeypatch, CL, ("conv", "weight_bias_grad"), xs, ws,
                                     pad, relu)
    assert calls.count("conv") == 2 and calls.count("weight_bias_grad") == 1


@pytest.mark.parametrize("need", [(True, False, True), (False, True, False), (False, False, True),
                                  (True, True, False)])
def test_backward_of_some_inputs_only(rng, monkeypatch, need):
    """dX without dW (frozen filters), dW without dX (a first layer), db alone."""
    monkeypatch.setattr(select, "CONV", "im2col-channels-last")
    # away from ReLU's kink, so that both paths' masks agree whatever their rounding
    x0, w0, b0 = conv_inputs((2, 8, 6, 5), (4, 8, 3, 3), 1, 1)
    ts = [Tensor(a, requires_grad=r) for a, r in zip((x0, w0, b0), need)]
    y = select.conv2d(*ts, stride=1, padding=1, relu=True)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    monkeypatch.setattr(select, "CONV", "im2col")
    refs = [Tensor(a, requires_grad=True) for a in (x0, w0, b0)]
    select.conv2d(*refs, stride=1, padding=1, relu=True).backward(gy)
    for t, r, wanted in zip(ts, refs, need):
        if wanted:
            np.testing.assert_allclose(t.grad, r.grad, rtol=1e-12, atol=1e-12)
        else:
            assert t.grad is None


def test_threads_give_the_same_numbers(rng, monkeypatch):
    """The padded copy, the column copies (split by images, or by rows of
    a band) and the mask split over two threads: bit for bit one thread's."""
    monkeypatch.setattr(select, "CONV", "im2col-channels-last")
    monkeypatch.setattr(CL, "_PARALLEL_MIN", 1)
    x0, w0, b0 = (rng.standard_normal((3, 8, 9, 7)), rng.standard_normal((5, 8, 3, 3)),
                  rng.standard_normal(5))
    gy = rng.standard_normal((3, 5, 9, 7))

    def run():
        ts = [Tensor(a, requires_grad=True) for a in (x0, w0, b0)]
        y = select.conv2d(*ts, stride=1, padding=1, relu=True)
        y.backward(gy)
        return [y.data] + [t.grad for t in ts]

    results = {}
    for chunk in (1 << 19, 100):               # whole images; bands of a few rows
        monkeypatch.setitem(conv_mod.CHUNK_ELEMENTS, "cpu", chunk)
        for n in (1, 2):
            set_threads(n)
            try:
                results[chunk, n] = run()
            finally:
                set_threads(None)
        for a, b in zip(results[chunk, 1], results[chunk, 2]):
            np.testing.assert_array_equal(a, b)


def test_the_choice(monkeypatch):
    """Channels last where no Winograd module is chosen, for stride 1, at
    least 8 input channels, 64 output pixels and at most 2^22 weights;
    never on a kernel device, for the image's 3 channels, strides, or a
    dense evaluation's FC-as-conv layer."""
    cpu = device("cpu")
    def pick(dev, *shapes):
        return not dev.uses_kernels and select._channels_last_rule(*shapes)[0]

    def chosen(*shapes):
        return select.choose_conv(cpu, *shapes)[0]
    assert pick(cpu, (64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1))
    assert pick(cpu, (64, 64, 16, 16), (128, 64, 3, 3), (1, 1), (1, 1))
    assert pick(cpu, (16, 128, 2, 2), (128, 128, 3, 3), (1, 1), (1, 1))        # 64 pixels
    assert not pick(cpu, (15, 128, 2, 2), (128, 128, 3, 3), (1, 1), (1, 1))    # 60
    assert pick(cpu, (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1))        # 2.4M weights
    assert not pick(cpu, (64, 3, 32, 32), (16, 3, 3, 3), (1, 1), (1, 1))       # the image
    assert not pick(cpu, (64, 16, 16, 16), (32, 16, 3, 3), (2, 2), (1, 1))     # stride 2
    assert not pick(cpu, (64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (3, 3))     # pad > K - 1
    assert pick(cpu, (8, 256, 56, 56), (256, 256, 1, 1), (1, 1), (0, 0))       # 1x1 (C)
    assert not pick(cpu, (150, 512, 7, 7), (4096, 512, 7, 7), (1, 1), (0, 0))  # FC as conv
    assert not pick(device("emu"), (64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1))
    name = select.algorithm_name
    assert name(cpu, (4, 16, 16, 16), (32, 16, 3, 3)) == "im2col + GEMM, channels last"
    assert name(cpu, (64, 16, 16, 16), (32, 16, 3, 3)) == "Winograd F(4x4,3x3)"
    assert name(cpu, (64, 3, 32, 32), (16, 3, 3, 3)) == "im2col + GEMM"
    assert name(cpu, (8, 512, 4, 4), (512, 512, 3, 3)) == "Winograd F(2x2,3x3)"
    assert name(cpu, (64, 512, 2, 2), (512, 512, 3, 3)) == "whole-map GEMM"
    monkeypatch.setattr(select, "CONV", "im2col-channels-last")   # forced where it applies
    assert chosen((64, 3, 32, 32), (16, 3, 3, 3), (1, 1), (1, 1)) == "im2col-channels-last"
    assert chosen((64, 16, 16, 16), (32, 16, 3, 3), (2, 2), (1, 1)) == "im2col"
    monkeypatch.setattr(select, "CONV", "im2col")
    assert chosen((64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1)) == "im2col"
    assert name(cpu, (4, 16, 16, 16), (32, 16, 3, 3)) == "im2col + GEMM"


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_layout", ["channels-last", "channel-major"])
@pytest.mark.parametrize("gy_layout", ["channels-last", "channel-major"])
def test_max_pool_keeps_its_input_layout(rng, monkeypatch, chunk, threads, x_layout, gy_layout):
    """A channels-last input gives a channels-last output and gradient,
    worked through in chunks of whole images (a channel-major one stays
    channel-major, in chunks of channels); a gradient coming from a layer
    of the other layout gives the same numbers as the textbook pooling. With
    ties and a NaN."""
    monkeypatch.setattr(pooling, "CHUNK_ELEMENTS", chunk)
    x = np.maximum(rng.integers(-3, 4, (3, 6, 10, 8)), 0).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    t_ref = Tensor(x, requires_grad=True)
    y_ref = F.max_pool2d(t_ref, 2)
    gy = rng.standard_normal(y_ref.shape).astype(np.float32)
    y_ref.backward(gy)
    set_threads(threads)
    try:
        t = Tensor(laid_out(x, x_layout), requires_grad=True)
        y = select.max_pool2d(t, 2)     # the fast tier, against the textbook's y_ref
        y.backward(laid_out(gy, gy_layout))
    finally:
        set_threads(None)
    last = x_layout == "channels-last"
    assert CL.is_channels_last(y.data) == last and CL.is_channels_last(t.grad) == last
    np.testing.assert_array_equal(y.data, y_ref.data)
    np.testing.assert_array_equal(t.grad, t_ref.grad)


@pytest.mark.parametrize("algorithm,xs,last", [
    ("im2col", (2, 3, 9, 8), True),                 # channel-major columns (the image's layer)
    ("im2col-channels-last", (2, 8, 9, 8), True),   # channels-last columns
    ("winograd4", (2, 8, 9, 8), True),              # Winograd F(4x4)
    ("winograd2", (2, 8, 10, 8), False),            # Winograd F(2x2): channel-major
])
def test_cpu_convolutions_leave_their_outputs_channels_last(rng, monkeypatch, algorithm, xs,
                                                            last):
    """Every CPU convolution but F(2x2) leaves its output, and its dX,
    channels-last (the layout the next convolution reads fastest), with the
    values of the reference."""
    monkeypatch.setattr(select, "CONV", algorithm)
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal((5, xs[1], 3, 3)), requires_grad=True)
    y = select.conv2d(x, w, None, 1, 1, relu=True)
    np.testing.assert_allclose(y.data, np.maximum(F.conv2d_reference(x, w, None, 1, 1), 0),
                               rtol=1e-10, atol=1e-10)
    assert CL.is_channels_last(y.data) == last
    y.backward(laid_out(rng.standard_normal(y.shape), "channels-last" if last else "channel-major"))
    assert CL.is_channels_last(x.grad) == last
