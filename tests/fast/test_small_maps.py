"""The whole-map GEMM (minivgg/fast/small_maps.py): convolutions on maps so
small that every output pixel sees every input pixel, float64, against the
loop reference convolution and the other CPU paths; where conv2d chooses it."""
import numpy as np
import pytest

from kinks import conv_inputs
from conv_checks import check_channels_last_forward, check_channels_last_path, laid_out
from minivgg import Tensor
from minivgg import functional as F
from minivgg.backend import device
from minivgg.fast import conv as conv_mod
from minivgg.fast import select
from minivgg.fast import small_maps as SM

CASES = [
    # (N, C, H, W), (K, C, KH, KW), padding
    ((3, 5, 2, 2), (4, 5, 3, 3), (1, 1)),   # VGG's last block on a 32x32 image
    ((2, 6, 1, 1), (3, 6, 3, 3), (1, 1)),   # 1x1 map: the centre tap alone
    ((2, 4, 1, 2), (5, 4, 3, 3), (1, 1)),   # 1x2 map
    ((2, 3, 2, 3), (4, 3, 3, 5), (1, 2)),   # non-square kernel and map
    ((2, 4, 3, 3), (2, 4, 3, 3), (0, 0)),   # no padding: one output, an FC layer
    ((1, 2, 2, 3), (3, 2, 3, 3), (1, 0)),   # padding on one axis only
]


def test_applies_where_every_output_sees_every_input():
    ok = SM.applies
    assert ok((8, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1))
    assert ok((8, 512, 1, 1), (512, 512, 3, 3), (1, 1), (1, 1))
    assert ok((8, 512, 7, 7), (4096, 512, 7, 7), (1, 1), (0, 0))      # FC as conv, 7x7
    assert not ok((8, 512, 3, 3), (512, 512, 3, 3), (1, 1), (1, 1))   # a corner misses a corner
    assert not ok((8, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1))
    assert not ok((8, 512, 2, 2), (512, 512, 3, 3), (2, 2), (1, 1))   # stride 2
    assert not ok((8, 512, 2, 2), (512, 512, 3, 3), (1, 1), (2, 2))   # an output of padding only
    assert not ok((8, 512, 8, 8), (4096, 512, 7, 7), (1, 1), (0, 0))  # 2x2 outputs


def test_matrix_repeats_the_taps(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    mt = SM.matrix(w, 2, 2, (1, 1), np.float64).reshape(2, 2, 3, 2, 2, 2)
    for i in range(2):
        for j in range(2):
            for a in range(2):
                for b in range(2):
                    np.testing.assert_array_equal(mt[i, j, :, a, b, :], w[:, :, a - i + 1, b - j + 1])
    assert SM.matrix_size((5, 2, 2, 2), w.shape, (1, 1)) == mt.size


@pytest.mark.parametrize("layout", ["nchw", "channel-major", "channels-last"])
@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_forward_matches_reference(rng, layout, xs, ws, pad):
    assert SM.applies(xs, ws, (1, 1), pad)
    check_channels_last_forward(SM.conv, rng, layout, xs, ws, pad)


@pytest.mark.parametrize("turned_below", [0, 10 ** 9])
def test_both_orientations_of_the_forward_product(rng, monkeypatch, turned_below):
    """Y = X @ MT^T as it lies, or (MT @ X^T)^T copied back to rows (small
    batches): the same channels-last output either way."""
    monkeypatch.setattr(SM, "TURNED_BELOW", turned_below)
    for layout in ("nchw", "channels-last"):
        for xs, ws, pad in CASES[:2]:
            check_channels_last_forward(SM.conv, rng, layout, xs, ws, pad)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_conv2d_through_the_whole_map_gemm_gradcheck(rng, monkeypatch, relu, xs, ws, pad):
    """conv2d chooses this path by default; forward, dX, dW and db, float64,
    against central differences; output and dX channels-last."""
    calls = check_channels_last_path(rng, monkeypatch, SM, ("conv", "grads"), xs, ws, pad, relu)
    assert calls == ["conv", "grads"]


@pytest.mark.parametrize("gy_layout", ["channels-last", "channel-major"])
@pytest.mark.parametrize("need", [(True, True, True), (True, False, True), (False, True, False),
                                  (False, False, True), (True, True, False)])
def test_gradients_equal_the_im2col_paths(rng, monkeypatch, gy_layout, need):
    """Some inputs' gradients only, from a gradient of either layout:
    the numbers of the channel-major im2col (float64)."""
    # away from ReLU's kink, so that both paths' masks agree whatever their rounding
    x0, w0, b0 = conv_inputs((4, 6, 2, 2), (5, 6, 3, 3), 1, 1)
    gy = laid_out(rng.standard_normal((4, 5, 2, 2)), gy_layout)
    ts = [Tensor(laid_out(x0, "channels-last"), requires_grad=need[0])] + \
        [Tensor(a, requires_grad=r) for a, r in zip((w0, b0), need[1:])]
    y = select.conv2d(*ts, stride=1, padding=1, relu=True)
    assert select.algorithm_name(device("cpu"), x0.shape, w0.shape) == "whole-map GEMM"
    y.backward(gy)
    monkeypatch.setattr(select, "CONV", "im2col")
    refs = [Tensor(a, requires_grad=True) for a in (x0, w0, b0)]
    yr = select.conv2d(*refs, stride=1, padding=1, relu=True)
    np.testing.assert_allclose(y.data, yr.data, rtol=1e-12, atol=1e-12)
    yr.backward(gy)
    for t, r, wanted in zip(ts, refs, need):
        if wanted:
            np.testing.assert_allclose(t.grad, r.grad, rtol=1e-12, atol=1e-12)
        else:
            assert t.grad is None


def test_float32_error_is_the_gemms(rng):
    """float32 at VGG's width: within a GEMM's rounding of the float64 result."""
    x = rng.standard_normal((8, 256, 2, 2)).astype(np.float32)
    w = (rng.standard_normal((256, 256, 3, 3)) * 0.05).astype(np.float32)
    y = SM.conv(x, w).transpose(0, 3, 1, 2)
    ref = F.conv2d_reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_the_choice(monkeypatch):
    """On the CPU wherever it applies, ahead of Winograd and the channels-last
    im2col, unless one of those is forced or its matrix is too large (a dense
    evaluation's FC-as-conv layer); never on a kernel device."""
    cpu = device("cpu")

    def pick(dev, *shapes):
        return select.choose_conv(dev, *shapes)[0] == "whole-map"
    assert pick(cpu, (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1))
    assert pick(cpu, (64, 32, 1, 1), (32, 32, 3, 3), (1, 1), (1, 1))
    assert pick(cpu, (1, 3, 2, 2), (8, 3, 3, 3), (1, 1), (1, 1))
    assert not pick(cpu, (64, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1))
    assert not pick(cpu, (2, 512, 7, 7), (4096, 512, 7, 7), (1, 1), (0, 0))  # 103M elements
    assert not pick(device("emu"), (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1))
    for forced in ("winograd2", "im2col", "im2col-channels-last"):
        with monkeypatch.context() as m:
            m.setattr(select, "CONV", forced)
            assert not pick(cpu, (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1)), forced
    monkeypatch.setattr(select, "CONV", "whole-map")
    assert pick(cpu, (2, 512, 7, 7), (4096, 512, 7, 7), (1, 1), (0, 0))
    assert not pick(cpu, (64, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1))
