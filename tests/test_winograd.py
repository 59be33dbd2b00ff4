"""Winograd F(2x2, 3x3) (functional/winograd.py) against the plain reference
convolution, the im2col path and finite differences, and its float32 error."""
import numpy as np
import pytest

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.backend import device
from minivgg.functional import conv as conv_mod
from minivgg.functional import winograd as W

CASES = [
    # (N, C, H, W), K, padding
    ((2, 3, 6, 8), 4, (1, 1)),     # VGG's pad 1, non-square
    ((1, 2, 6, 4), 3, (0, 0)),     # no padding: output 4x2
    ((3, 4, 4, 6), 2, (2, 2)),     # padding 2 (the dX convolution of a pad-0 layer)
    ((2, 5, 8, 6), 3, (1, 0)),     # different paddings per axis
    ((1, 1, 2, 2), 1, (1, 1)),     # a single 2x2 tile
]


@pytest.fixture(params=["whole", "small"])
def tiling(request, monkeypatch):
    """Blocks as large as they come, and the smallest blocks (one tile row of
    one image) with threaded transforms, even for tiny cases."""
    if request.param == "small":
        monkeypatch.setattr(W, "BLOCK_ELEMENTS", 1)
        monkeypatch.setattr(W, "MIN_BLOCK_TILES", 1)
        monkeypatch.setattr(W, "_PARALLEL_MIN", 1)
    return request.param


def test_applies_only_to_3x3_stride_1_with_whole_tiles():
    assert W.applies((2, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1))
    assert W.applies((2, 3, 6, 8), (4, 3, 3, 3), (1, 1), (0, 0))       # output 4x6
    assert not W.applies((2, 3, 7, 8), (4, 3, 3, 3), (1, 1), (1, 1))   # 7 rows: odd output
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (2, 2), (1, 1))   # stride 2
    assert not W.applies((2, 3, 8, 8), (4, 3, 1, 1), (1, 1), (0, 0))   # 1x1 kernel
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (3, 3))   # padding 3
    assert not W.applies((2, 3, 2, 2), (4, 3, 3, 3), (1, 1), (0, 0))   # no output


def test_transform_matrices_give_the_correlation():
    """A^T [(G g G^T) * (B^T d B)] A is the 2x2 correlation of a 4x4 tile d."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    y = W.AT @ ((W.G @ g @ W.G.T) * (W.BT @ d @ W.BT.T)) @ W.AT.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(y, direct, rtol=1e-13, atol=1e-13)


def test_weight_transform_and_its_adjoint(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    u = W.weight_transform(w)
    for k in range(3):
        for c in range(2):
            np.testing.assert_allclose(u[:, k, c].reshape(4, 4), W.G @ w[k, c] @ W.G.T,
                                       rtol=1e-13, atol=1e-13)
    du = rng.standard_normal(u.shape)
    assert np.isclose(np.sum(u * du), np.sum(w * W.weight_transform_adjoint(du)), rtol=1e-12)


def test_flipped_weight_transform(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.flipped_weight_transform(w), W.weight_transform(w_t),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("row0,rows", [(0, 4), (1, 2), (3, 2)])
def test_parity_planes(rng, row0, rows):
    x = rng.standard_normal((2, 3, 5, 6))
    p = W.to_planes(x, 1, 2, rows, 6, row0=row0)
    assert p.shape == (3, 2, 2, rows, 6, 2)
    xpad = np.zeros((2, 3, 14, 12))
    xpad[:, :, 1:6, 2:8] = x
    for i in (0, 1):
        for j in (0, 1):
            expected = xpad[:, :, 2 * row0 + i::2, j::2][:, :, :rows].transpose(1, 0, 2, 3)
            np.testing.assert_array_equal(p[:, i, j].transpose(0, 3, 1, 2), expected)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_conv3x3_matches_reference(rng, tiling, xs, k, pad):
    x = rng.standard_normal(xs)
    w, b = rng.standard_normal((k, xs[1], 3, 3)), rng.standard_normal(k)
    assert W.applies(x.shape, w.shape, (1, 1), pad)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    y = W.conv3x3(x, w, pad, b).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    y = W.conv3x3(x, w, pad, b, relu=True).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=1e-12, atol=1e-12)
    # channel-major and strided inputs (what the layers hand each other)
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.conv3x3(xc, w, pad).transpose(1, 0, 2, 3),
                               F.conv2d_reference(x, w, None, 1, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_weight_grad_matches_im2col(rng, tiling, xs, k, pad):
    x, w = rng.standard_normal(xs), rng.standard_normal((k, xs[1], 3, 3))
    y = F.conv2d_reference(x, w, None, 1, pad)
    gy = rng.standard_normal(y.shape)
    expected = conv_mod._conv_weight_grad(device("cpu"), x, gy.transpose(1, 0, 2, 3).reshape(k, -1),
                                          w.shape, (1, 1), pad)
    got = W.weight_grad(x, gy.transpose(1, 0, 2, 3), pad)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,k,pad", CASES[:4])
def test_conv2d_through_winograd_gradcheck(rng, monkeypatch, tiling, xs, k, pad, relu):
    """Forward, dX (the flipped-kernel convolution) and dW all through Winograd, float64."""
    monkeypatch.setattr(conv_mod, "WINOGRAD", "always")
    calls = []
    real = W.conv3x3
    monkeypatch.setattr(W, "conv3x3", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal((k, xs[1], 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(k), requires_grad=True)
    y = F.conv2d(x, w, b, 1, pad, relu=relu)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    np.testing.assert_allclose(y.data, np.maximum(ref, 0) if relu else ref, rtol=1e-12,
                               atol=1e-12)
    # (finite differences alone reach 2e-6 on these sums of 45 products)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, pad, relu=relu), [x, w, b]) < 1e-5
    assert calls  # the Winograd path did run


def test_auto_choice_and_fallbacks(rng, monkeypatch):
    cpu = device("cpu")
    pick = conv_mod._winograd
    assert pick(cpu, (64, 128, 8, 8), (256, 128, 3, 3), (1, 1), (1, 1)) is W      # small images
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is None     # first layer
    assert pick(cpu, (8, 64, 7, 7), (64, 64, 3, 3), (1, 1), (1, 1)) is None       # odd output
    assert pick(device("emu"), (64, 128, 8, 8), (256, 128, 3, 3), (1, 1), (1, 1)) is None
    monkeypatch.setattr(conv_mod, "WINOGRAD", "never")
    assert pick(cpu, (64, 128, 8, 8), (256, 128, 3, 3), (1, 1), (1, 1)) is None
    monkeypatch.setattr(conv_mod, "WINOGRAD", "always")
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is W
    # An odd size goes through im2col even when F(2x2) is forced, and is still right.
    x = Tensor(rng.standard_normal((2, 3, 5, 7)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, None, 1, 1), [x, w]) < 1e-6


def test_float32_error_bound():
    """The stated bound: in float32 the Winograd output, and dW, lie within
    1e-5 of the RMS of the exact result (the convolution of the same float32
    numbers in float64). Measured: 1.5e-6 to 2.5e-6 for Winograd, 1.4e-6 to
    1.8e-6 for im2col + GEMM, with VGG's layer widths and kaiming weights."""
    rng = np.random.default_rng(1)
    cpu = device("cpu")
    for c, k, h in [(64, 64, 16), (256, 128, 8), (512, 64, 6)]:
        x = rng.standard_normal((2, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        exact = F.conv2d_reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
        y = W.conv3x3(x, w, (1, 1)).transpose(1, 0, 2, 3)
        assert y.dtype == np.float32
        rms = np.sqrt(np.mean(exact ** 2))
        assert np.abs(y - exact).max() <= 1e-5 * rms
        gy = rng.standard_normal(exact.shape).astype(np.float32)
        gy_cm = gy.transpose(1, 0, 2, 3)
        gw_exact = conv_mod._conv_weight_grad(cpu, x.astype(np.float64),
                                              gy_cm.reshape(k, -1).astype(np.float64),
                                              w.shape, (1, 1), (1, 1))
        gw = W.weight_grad(x, gy_cm, (1, 1))
        assert gw.dtype == np.float32
        assert np.abs(gw - gw_exact).max() <= 1e-5 * np.sqrt(np.mean(gw_exact ** 2))
