"""Winograd F(2x2, 3x3) (minivgg/fast/winograd.py) against the plain reference
convolution, the im2col path and finite differences, and its float32 error."""
import numpy as np
import pytest

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.backend import device
from minivgg.fast import conv as conv_mod
from minivgg.fast import select
from minivgg.fast import winograd as W
from minivgg.fast import winograd4 as W4
from winograd_checks import (check_conv2d_gradcheck, check_conv3x3, check_float32_error_bound,
                             check_transform_matrices, check_weight_grad, check_weight_transform)

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


MODULES = {"winograd2": W, "winograd4": W4, None: None}


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
    check_transform_matrices(W, 2)


def test_weight_transform_its_adjoint_and_the_flipped_kernel(rng):
    check_weight_transform(W, rng, 2)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [4, 1024])
def test_the_filter_transforms_in_chunks_of_filters(rng, monkeypatch, block, threads):
    """The filter transform, its flipped form and its adjoint over chunks of
    filters (4: four chunks, the last short; split over two threads or not)
    are G w G^T, G rot180(w) G^T and G^T dU G filter by filter, for both
    modules' G (float64 and float32)."""
    from minivgg.fast import winograd4 as W4
    from minivgg.threads import set_threads
    monkeypatch.setattr(W, "FILTER_COLUMNS", block)
    monkeypatch.setattr(W, "_PARALLEL_MIN", 1)
    set_threads(threads)
    try:
        for mod, a in ((W, 4), (W4, 6)):
            for dtype in (np.float64, np.float32):
                tol = 1e-12 if dtype == np.float64 else 1e-5
                w = rng.standard_normal((3, 5, 3, 3)).astype(dtype)
                du = rng.standard_normal((a * a, 3, 5)).astype(dtype)
                u, uf = mod.weight_transform(w), mod.flipped_weight_transform(w)
                dw = mod.weight_transform_adjoint(du)
                assert u.shape == du.shape and uf.shape == (a * a, 5, 3)
                assert dw.shape == (3, 5, 3, 3) and dw.flags.c_contiguous
                assert u.dtype == uf.dtype == dw.dtype == dtype
                for k in range(3):
                    for c in range(5):
                        w64 = w[k, c].astype(np.float64)
                        for got, want in (
                                (u[:, k, c], mod.G @ w64 @ mod.G.T),
                                (uf[:, c, k], mod.G @ w64[::-1, ::-1] @ mod.G.T),
                                (dw[k, c], mod.G.T @ du[:, k, c].reshape(a, a) @ mod.G)):
                            np.testing.assert_allclose(got.reshape(want.shape), want,
                                                       rtol=tol, atol=tol)
    finally:
        set_threads(None)


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
    check_conv3x3(W, rng, xs, k, pad, 1e-12)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_weight_grad_matches_im2col(rng, tiling, xs, k, pad):
    check_weight_grad(W, rng, xs, k, pad, 1e-12)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,k,pad", CASES[:4])
def test_conv2d_through_winograd_gradcheck(rng, monkeypatch, tiling, xs, k, pad, relu):
    """Forward, dX (the flipped-kernel convolution) and dW all through Winograd, float64."""
    # (finite differences alone reach 2e-6 on these sums of 45 products)
    check_conv2d_gradcheck(W, "winograd2", monkeypatch, rng, xs, k, pad, relu, 1e-12, 1e-6)


def test_auto_choice_and_fallbacks(rng, monkeypatch):
    cpu = device("cpu")

    def pick(dev, x_shape, w_shape, stride, padding):
        return MODULES[select.winograd_choice(dev, x_shape, w_shape, padding)]
    assert pick(cpu, (8, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1)) is W       # small maps
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is None     # first layer
    assert pick(cpu, (8, 256, 3, 3), (256, 256, 3, 3), (1, 1), (1, 1)) is None    # odd, small
    assert pick(device("emu"), (64, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1)) is None
    monkeypatch.setattr(select, "CONV", "im2col")
    assert pick(cpu, (64, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1)) is None
    monkeypatch.setattr(select, "CONV", "winograd2")
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is W
    # An odd size goes through im2col even when F(2x2) is forced, and is still right.
    x = Tensor(rng.standard_normal((2, 3, 5, 7)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: select.conv2d(x, w, None, 1, 1), [x, w]) < 1e-6


def test_float32_error_bound():
    """The stated bound: in float32 the Winograd output, and dW, lie within
    1e-5 of the RMS of the exact result (the convolution of the same float32
    numbers in float64). Measured: 1.5e-6 to 2.5e-6 for Winograd, 1.4e-6 to
    1.8e-6 for im2col + GEMM, with VGG's layer widths and kaiming weights."""
    check_float32_error_bound(W, 1e-5)
