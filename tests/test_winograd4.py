"""Winograd F(4x4, 3x3) (functional/winograd4.py) against the plain reference
convolution, the im2col path and finite differences, its float32 error, and
the choice between it, F(2x2, 3x3) and im2col."""
import numpy as np
import pytest

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.backend import device
from minivgg.functional import conv as conv_mod
from minivgg.functional import winograd as W2
from minivgg.functional import winograd4 as W

CASES = [
    # (N, C, H, W), K, padding
    ((2, 3, 8, 12), 4, (1, 1)),    # VGG's pad 1, whole 4x4 tiles, non-square
    ((2, 3, 6, 8), 4, (1, 1)),     # 6 rows: a last tile row half past the edge
    ((1, 2, 7, 9), 3, (1, 1)),     # odd sizes: partial tiles on both axes
    ((1, 2, 6, 6), 3, (0, 0)),     # no padding: output 4x4, a single tile
    ((3, 4, 4, 6), 2, (2, 2)),     # padding 2 (the dX convolution of a pad-0 layer)
    ((2, 5, 9, 6), 3, (1, 0)),     # different paddings per axis
    ((1, 1, 14, 14), 2, (1, 1)),   # VGG-D's 14x14 layers: 4 tiles, half of the last surplus
]


@pytest.fixture(params=["whole", "small"])
def tiling(request, monkeypatch):
    """Blocks as large as they come, and the smallest blocks (one tile row of
    one image) with threaded gathers, even for tiny cases."""
    if request.param == "small":
        monkeypatch.setattr(W, "BLOCK_ELEMENTS", 1)
        monkeypatch.setattr(W, "MIN_BLOCK_TILES", 1)
        monkeypatch.setattr(W2, "_PARALLEL_MIN", 1)
    return request.param


def test_applies_to_3x3_stride_1_outputs_of_at_least_4x4():
    assert W.applies((2, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1))
    assert W.applies((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1))         # partial tiles
    assert not W.applies((2, 3, 2, 8), (4, 3, 3, 3), (1, 1), (1, 1))     # output 2 rows
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (2, 2), (1, 1))     # stride 2
    assert not W.applies((2, 3, 8, 8), (4, 3, 1, 1), (1, 1), (0, 0))     # 1x1 kernel
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (3, 3))     # padding 3


def test_transform_matrices_give_the_correlation():
    """AT [(G g G^T) * (BT d BT^T)] AT^T is the 4x4 correlation of a 6x6 tile d."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    y = W.AT @ ((W.G @ g @ W.G.T) * (W.BT @ d @ W.BT.T)) @ W.AT.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


def test_kronecker_form_of_the_2d_transforms(rng):
    """kron(M, M) @ vec(t) = vec(M t M^T): the transforms as one matrix product."""
    for name, m, shape in (("B", W.BT, (6, 6)), ("A", W.AT, (6, 6)), ("G", W.G, (3, 3))):
        t = rng.standard_normal(shape)
        np.testing.assert_allclose(W.kron(name, np.float64) @ t.reshape(-1),
                                   (m @ t @ m.T).reshape(-1), rtol=1e-12, atol=1e-12)
    assert W.kron("B", np.float32).dtype == np.float32
    assert np.all(W.kron("A", np.float64)[:, W._BIAS_POS] == 1)   # the bias reaches all 16


def test_weight_transform_and_its_adjoint(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    u = W.weight_transform(w)
    assert u.shape == (36, 3, 2)
    for k in range(3):
        for c in range(2):
            np.testing.assert_allclose(u[:, k, c].reshape(6, 6), W.G @ w[k, c] @ W.G.T,
                                       rtol=1e-13, atol=1e-13)
    du = rng.standard_normal(u.shape)
    assert np.isclose(np.sum(u * du), np.sum(w * W.weight_transform_adjoint(du)), rtol=1e-12)


def test_flipped_weight_transform(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.flipped_weight_transform(w), W.weight_transform(w_t),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_conv3x3_matches_reference(rng, tiling, xs, k, pad):
    x = rng.standard_normal(xs)
    w, b = rng.standard_normal((k, xs[1], 3, 3)), rng.standard_normal(k)
    assert W.applies(x.shape, w.shape, (1, 1), pad)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    y = W.conv3x3(x, w, pad, b).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, ref, rtol=1e-11, atol=1e-11)
    y = W.conv3x3(x, w, pad, b, relu=True).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=1e-11, atol=1e-11)
    # channel-major and strided inputs (what the layers hand each other)
    xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(W.conv3x3(xc, w, pad).transpose(1, 0, 2, 3),
                               F.conv2d_reference(x, w, None, 1, pad), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_weight_grad_matches_im2col(rng, tiling, xs, k, pad):
    x, w = rng.standard_normal(xs), rng.standard_normal((k, xs[1], 3, 3))
    y = F.conv2d_reference(x, w, None, 1, pad)
    gy = rng.standard_normal(y.shape)
    expected = conv_mod._conv_weight_grad(device("cpu"), x, gy.transpose(1, 0, 2, 3).reshape(k, -1),
                                          w.shape, (1, 1), pad)
    got = W.weight_grad(x, gy.transpose(1, 0, 2, 3), pad)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,k,pad", CASES[1:6])
def test_conv2d_through_winograd4_gradcheck(rng, monkeypatch, tiling, xs, k, pad, relu):
    """Forward, dX (the flipped-kernel convolution) and dW all through F(4x4), float64."""
    monkeypatch.setattr(conv_mod, "WINOGRAD", "f4")
    calls = []
    real_conv, real_grad = W.conv3x3, W.weight_grad
    monkeypatch.setattr(W, "conv3x3", lambda *a, **kw: calls.append("y") or real_conv(*a, **kw))
    monkeypatch.setattr(W, "weight_grad", lambda *a, **kw: calls.append("w") or real_grad(*a, **kw))
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal((k, xs[1], 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(k), requires_grad=True)
    y = F.conv2d(x, w, b, 1, pad, relu=relu)
    ref = F.conv2d_reference(x, w, b, 1, pad)
    np.testing.assert_allclose(y.data, np.maximum(ref, 0) if relu else ref, rtol=1e-11,
                               atol=1e-11)
    # eps 1e-4, not 1e-6: F(4x4)'s float64 forward rounds to ~1e-13, which
    # central differences with eps 1e-6 would turn into ~1e-7 of noise.
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, pad, relu=relu), [x, w, b],
                     eps=1e-4) < 1e-5
    assert calls.count("w") and calls.count("y") >= 2   # forward and dX, and dW, ran here


def test_the_default_choice(monkeypatch):
    cpu = device("cpu")
    pick = conv_mod._winograd
    assert pick(cpu, (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is W        # >= 20x20
    assert pick(cpu, (8, 512, 28, 28), (512, 512, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (64, 64, 16, 16), (128, 64, 3, 3), (1, 1), (1, 1)) is W2       # 16x16
    assert pick(cpu, (8, 512, 14, 14), (512, 512, 3, 3), (1, 1), (1, 1)) is W2     # small: F(2x2)
    assert pick(cpu, (64, 256, 8, 8), (256, 256, 3, 3), (1, 1), (1, 1)) is W2
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is None      # first layer
    assert pick(cpu, (8, 64, 7, 7), (64, 64, 3, 3), (1, 1), (1, 1)) is None        # odd, small
    # A small evaluation batch: 2 x 8 x 8 outputs, 19M multiply-adds, too few to pay.
    assert pick(cpu, (2, 128, 8, 8), (128, 128, 3, 3), (1, 1), (1, 1)) is None
    assert pick(cpu, (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1)) is W2      # 604M: pays
    assert pick(device("emu"), (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is None
    assert conv_mod.algorithm_name(cpu, (8, 64, 56, 56), (128, 64, 3, 3)) == "Winograd F(4x4,3x3)"
    assert conv_mod.algorithm_name(cpu, (8, 512, 14, 14), (512, 512, 3, 3)) == "Winograd F(2x2,3x3)"
    assert conv_mod.algorithm_name(cpu, (8, 3, 32, 32), (64, 3, 3, 3)) == "im2col + GEMM"
    monkeypatch.setattr(conv_mod, "WINOGRAD", "f4")
    assert pick(cpu, (8, 3, 7, 7), (64, 3, 3, 3), (1, 1), (1, 1)) is W             # forced
    assert pick(cpu, (8, 3, 2, 2), (64, 3, 3, 3), (1, 1), (1, 1)) is None          # output 2x2
    monkeypatch.setattr(conv_mod, "WINOGRAD", "never")
    assert pick(cpu, (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is None


def test_float32_error_bound():
    """The stated bound: in float32 the F(4x4) output, and dW, lie within
    1e-4 of the RMS of the exact result (the convolution of the same float32
    numbers in float64), ten times F(2x2)'s bound: G's entries 1/6 and 1/24
    and BT's and AT's up to 8 round more. Measured here: 1.6e-5 to 2.6e-5
    for the output, 0.5e-5 to 1.2e-5 for dW, with VGG's layer widths and
    kaiming weights."""
    rng = np.random.default_rng(1)
    cpu = device("cpu")
    for c, k, h in [(64, 64, 16), (256, 128, 8), (512, 64, 6)]:
        x = rng.standard_normal((2, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        exact = F.conv2d_reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
        y = W.conv3x3(x, w, (1, 1)).transpose(1, 0, 2, 3)
        assert y.dtype == np.float32
        rms = np.sqrt(np.mean(exact ** 2))
        assert np.abs(y - exact).max() <= 1e-4 * rms
        gy = rng.standard_normal(exact.shape).astype(np.float32)
        gy_cm = gy.transpose(1, 0, 2, 3)
        gw_exact = conv_mod._conv_weight_grad(cpu, x.astype(np.float64),
                                              gy_cm.reshape(k, -1).astype(np.float64),
                                              w.shape, (1, 1), (1, 1))
        gw = W.weight_grad(x, gy_cm, (1, 1))
        assert gw.dtype == np.float32
        assert np.abs(gw - gw_exact).max() <= 1e-4 * np.sqrt(np.mean(gw_exact ** 2))
