"""Winograd F(4x4, 3x3) (minivgg/fast/winograd4.py) against the plain reference
convolution, the im2col path and finite differences, its float32 error, and
the choice between it, F(2x2, 3x3) and im2col."""
import numpy as np
import pytest

from minivgg.backend import device
from minivgg.fast import conv as conv_mod
from minivgg.fast import select
from minivgg.fast import winograd as W2
from minivgg.fast import winograd4 as W
from winograd_checks import (check_conv2d_gradcheck, check_conv3x3, check_float32_error_bound,
                             check_transform_matrices, check_weight_grad, check_weight_transform)

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


@pytest.fixture(params=["whole", "small", "chunks"])
def tiling(request, monkeypatch):
    """Blocks as large as they come; the smallest blocks (one tile row of
    one image), gathered and transformed a tile row at a time, split over
    threads, even for tiny cases; and whole blocks gathered and transformed
    in chunks of a few images or tile rows."""
    if request.param == "small":
        monkeypatch.setattr(W, "BLOCK_ELEMENTS", 1)
        monkeypatch.setattr(W, "MIN_BLOCK_TILES", 1)
        monkeypatch.setattr(W, "TRANSFORM_COLUMNS", 8)
        monkeypatch.setattr(W2, "_PARALLEL_MIN", 1)
    if request.param == "chunks":
        monkeypatch.setattr(W, "TRANSFORM_COLUMNS", 40)
    return request.param


MODULES = {"winograd2": W2, "winograd4": W, None: None}


def test_applies_to_3x3_stride_1_outputs_of_at_least_4x4():
    assert W.applies((2, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1))
    assert W.applies((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1))         # partial tiles
    assert not W.applies((2, 3, 2, 8), (4, 3, 3, 3), (1, 1), (1, 1))     # output 2 rows
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (2, 2), (1, 1))     # stride 2
    assert not W.applies((2, 3, 8, 8), (4, 3, 1, 1), (1, 1), (0, 0))     # 1x1 kernel
    assert not W.applies((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (3, 3))     # padding 3


def test_transform_matrices_give_the_correlation():
    """AT [(G g G^T) * (BT d BT^T)] AT^T is the 4x4 correlation of a 6x6 tile d."""
    check_transform_matrices(W, 4)


def test_kronecker_form_of_the_2d_transforms(rng):
    """kron(M, M) @ vec(t) = vec(M t M^T): the transforms as one matrix product."""
    for name, m, shape in (("B", W.BT, (6, 6)), ("A", W.AT, (6, 6)), ("G", W.G, (3, 3))):
        t = rng.standard_normal(shape)
        np.testing.assert_allclose(W.kron(name, np.float64) @ t.reshape(-1),
                                   (m @ t @ m.T).reshape(-1), rtol=1e-12, atol=1e-12)
    assert W.kron("B", np.float32).dtype == np.float32
    assert np.all(W.kron("A", np.float64)[:, W._BIAS_POS] == 1)   # the bias reaches all 16


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_separable_transforms_equal_the_kronecker_products(rng, monkeypatch, threads, dtype):
    """transform(name, d) = kron(L, L) @ d for BT, AT and the adjoint of AT,
    over several column chunks with a short last one, on one thread and
    split over two."""
    from minivgg.threads import set_threads
    monkeypatch.setattr(W, "TRANSFORM_COLUMNS", 7)
    monkeypatch.setattr(W2, "_PARALLEL_MIN", 1)
    want = {"B": W.kron("B", np.float64), "A": W.kron("A", np.float64),
            "AT": W.kron("A", np.float64).T}
    set_threads(threads)
    try:
        for name, k in want.items():
            d = rng.standard_normal((k.shape[1], 30)).astype(dtype)
            out = np.full((k.shape[0], 30), np.nan, dtype=dtype)
            W.transform(name, d, out)
            tol = 1e-12 if dtype == np.float64 else 2e-5
            np.testing.assert_allclose(out, k @ d.astype(np.float64), rtol=tol, atol=tol * 50)
    finally:
        set_threads(None)


def test_blocks_fit_the_cache_unless_the_filters_do_not():
    """About BLOCK_ELEMENTS per block (a band of tile rows of one image for
    64 -> 64 at 224x224); LARGE_U_TILES at least once U outgrows the cache
    (512 -> 512 at 28x28, batch 8: one block of all 392 tiles)."""
    blocks = W._blocks(8, 56, 56, 64, 64)
    tiles = {(i1 - i0) * (r1 - r0) * 56 for i0, i1, r0, r1 in blocks[:-1]}
    per_tile = 36 * (64 + 64)
    assert tiles == {224} and 224 * per_tile <= W.BLOCK_ELEMENTS < 280 * per_tile
    assert sum((i1 - i0) * (r1 - r0) for i0, i1, r0, r1 in blocks) == 8 * 56
    assert 36 * 512 * 512 > W.CACHED_U_ELEMENTS >= 36 * 128 * 128
    assert W._blocks(8, 7, 7, 512, 512) == [(0, 8, 0, 7)]
    assert len(W._blocks(8, 7, 7, 128, 128)) > 1


def test_weight_transform_its_adjoint_and_the_flipped_kernel(rng):
    check_weight_transform(W, rng, 4)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_conv3x3_matches_reference(rng, tiling, xs, k, pad):
    check_conv3x3(W, rng, xs, k, pad, 1e-11)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_weight_grad_matches_im2col(rng, tiling, xs, k, pad):
    check_weight_grad(W, rng, xs, k, pad, 1e-11)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_bias_grad_from_dm(rng, tiling, xs, k, pad):
    """weight_grad(..., bias=True): the same dW, and db from dM's bias row
    equal to gy summed over images and pixels (partial tiles included:
    their surplus outputs are zeros in dM)."""
    x = rng.standard_normal(xs)
    oh, ow = xs[2] + 2 * pad[0] - 2, xs[3] + 2 * pad[1] - 2
    gy = rng.standard_normal((xs[0], k, oh, ow))
    dw, db = W.weight_grad(x, gy, pad, bias=True)
    np.testing.assert_allclose(dw, W.weight_grad(x, gy, pad), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(db, gy.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("xs,k,pad", CASES[1:6])
def test_conv2d_through_winograd4_gradcheck(rng, monkeypatch, tiling, xs, k, pad, relu):
    """Forward, dX (the flipped-kernel convolution) and dW all through F(4x4), float64."""
    # eps 1e-4, not 1e-6: F(4x4)'s float64 forward rounds to ~1e-13, which
    # central differences with eps 1e-6 would turn into ~1e-7 of noise.
    check_conv2d_gradcheck(W, "winograd4", monkeypatch, rng, xs, k, pad, relu, 1e-11, 1e-4)


def test_the_default_choice(monkeypatch):
    cpu = device("cpu")

    def pick(dev, x_shape, w_shape, stride, padding):
        return MODULES[select.winograd_choice(dev, x_shape, w_shape, padding)]
    # 8 channels and more, with at least 256 output pixels in the batch:
    # F(4x4) on every output it takes (4x4 and up)
    assert pick(cpu, (64, 32, 16, 16), (64, 32, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1)) is W        # thin layers
    assert pick(cpu, (64, 8, 32, 32), (16, 8, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (8, 512, 28, 28), (512, 512, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (8, 512, 14, 14), (512, 512, 3, 3), (1, 1), (1, 1)) is W      # 1568 pixels
    assert pick(cpu, (4, 512, 14, 14), (512, 512, 3, 3), (1, 1), (1, 1)) is W      # 784
    assert pick(cpu, (12, 512, 8, 8), (512, 512, 3, 3), (1, 1), (1, 1)) is W       # 768
    assert pick(cpu, (1, 512, 16, 16), (512, 512, 3, 3), (1, 1), (1, 1)) is W      # dense, Q 256
    assert pick(cpu, (64, 256, 4, 4), (512, 256, 3, 3), (1, 1), (1, 1)) is W       # 256 channels
    assert pick(cpu, (16, 256, 4, 4), (256, 256, 3, 3), (1, 1), (1, 1)) is W       # 256 pixels
    assert pick(cpu, (16, 128, 4, 4), (128, 128, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (16, 128, 8, 8), (256, 128, 3, 3), (1, 1), (1, 1)) is W
    assert pick(cpu, (64, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1)) is W       # odd size
    # from 256 channels, fewer pixels, and 2x2 outputs: F(2x2)
    assert pick(cpu, (1, 256, 14, 14), (512, 256, 3, 3), (1, 1), (1, 1)) is W2     # 196
    assert pick(cpu, (4, 512, 4, 4), (512, 512, 3, 3), (1, 1), (1, 1)) is W2       # 64
    assert pick(cpu, (64, 512, 2, 2), (512, 512, 3, 3), (1, 1), (1, 1)) is W2      # 604M: pays
    assert pick(cpu, (64, 256, 2, 2), (256, 256, 3, 3), (1, 1), (1, 1)) is W2
    # below 256 channels on 2x2 outputs or with fewer pixels, odd outputs with
    # fewer pixels, below 8 channels (the first layer), too few
    # multiply-adds: im2col (channels last where it applies)
    assert pick(cpu, (64, 4, 32, 32), (8, 4, 3, 3), (1, 1), (1, 1)) is None         # 4 channels
    assert pick(cpu, (4, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1)) is None       # 4.7M
    assert pick(cpu, (64, 128, 2, 2), (128, 128, 3, 3), (1, 1), (1, 1)) is None
    assert pick(cpu, (8, 128, 4, 4), (128, 128, 3, 3), (1, 1), (1, 1)) is None     # 128 pixels
    assert pick(cpu, (4, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1)) is None     # 196, odd
    assert pick(cpu, (8, 3, 224, 224), (64, 3, 3, 3), (1, 1), (1, 1)) is None      # first layer
    assert pick(cpu, (8, 64, 3, 3), (64, 64, 3, 3), (1, 1), (1, 1)) is None        # 3x3 output
    # A small evaluation batch: 2 x 8 x 8 outputs, 19M multiply-adds, too few to pay.
    assert pick(cpu, (2, 128, 8, 8), (128, 128, 3, 3), (1, 1), (1, 1)) is None
    assert pick(device("emu"), (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is None
    assert select.algorithm_name(cpu, (8, 64, 56, 56), (128, 64, 3, 3)) == "Winograd F(4x4,3x3)"
    assert select.algorithm_name(cpu, (8, 512, 4, 4), (512, 512, 3, 3)) == "Winograd F(2x2,3x3)"
    assert select.algorithm_name(cpu, (64, 512, 2, 2), (512, 512, 3, 3)) == "whole-map GEMM"
    assert select.algorithm_name(cpu, (8, 3, 32, 32), (64, 3, 3, 3)) == "im2col + GEMM"
    monkeypatch.setattr(select, "CONV", "winograd4")
    assert pick(cpu, (8, 3, 7, 7), (64, 3, 3, 3), (1, 1), (1, 1)) is W             # forced
    assert pick(cpu, (8, 3, 2, 2), (64, 3, 3, 3), (1, 1), (1, 1)) is None          # output 2x2
    monkeypatch.setattr(select, "CONV", "im2col")
    assert pick(cpu, (8, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1)) is None


def test_float32_error_bound():
    """The stated bound: in float32 the F(4x4) output, and dW, lie within
    1e-4 of the RMS of the exact result (the convolution of the same float32
    numbers in float64), ten times F(2x2)'s bound: G's entries 1/6 and 1/24
    and BT's and AT's up to 8 round more. Measured here: 2.4e-5 to 5.8e-5
    for the output, 1.7e-5 to 2.2e-5 for dW (F(2x2): 1.5e-6 to 2.5e-6 and
    1.3e-6 to 2.6e-6), with VGG's layer widths and kaiming weights."""
    check_float32_error_bound(W, 1e-4)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_flip_turns_input_and_output_round(rng, tiling, xs, k, pad):
    """conv3x3(..., flip=True) is rot180(conv3x3(rot180(x))), from the
    transformed filters too, with partial tiles at odd sizes (float64)."""
    from minivgg import functional as F
    x, w, b = rng.standard_normal(xs), rng.standard_normal((k, xs[1], 3, 3)), rng.standard_normal(k)
    got = W.conv3x3(x, w, pad, b, relu=True, flip=True)
    want = np.maximum(F.conv2d_reference(x[:, :, ::-1, ::-1], w, b, 1, pad), 0)[:, :, ::-1, ::-1]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    got_u = W.conv3x3(x, None, pad, b, relu=True, u=W.weight_transform(w), flip=True)
    np.testing.assert_array_equal(got_u, got)
    assert got.transpose(0, 2, 3, 1).flags.c_contiguous       # channels-last, not a turned view


def test_dx_reuses_forwards_filters(rng, monkeypatch):
    """With F(4x4) forward, where U is at least as large as gy, dX is rot180
    of the convolution of rot180(gy) with the kernel's channels swapped,
    from forward's U: no filter transform in backward beyond dW's adjoint,
    and the numbers of the im2col path (float64). Under no_grad forward
    keeps no U."""
    import minivgg
    from minivgg import Tensor
    from minivgg import functional as F
    monkeypatch.setattr(select, "CONV", "winograd4")
    calls = []
    for name in ("weight_transform", "flipped_weight_transform"):
        real = getattr(W, name)
        monkeypatch.setattr(W, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a))
    x0, w0 = rng.standard_normal((2, 5, 9, 7)), rng.standard_normal((4, 5, 3, 3))
    gy = rng.standard_normal((2, 4, 9, 7))
    x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
    select.conv2d(x, w, None, 1, 1, relu=False).backward(gy)
    assert calls == ["weight_transform"]
    monkeypatch.setattr(select, "CONV", "im2col")
    xr = Tensor(x0, requires_grad=True)
    select.conv2d(xr, Tensor(w0), None, 1, 1).backward(gy)
    np.testing.assert_allclose(x.grad, xr.grad, rtol=1e-10, atol=1e-10)
    monkeypatch.setattr(select, "CONV", "winograd4")
    with minivgg.no_grad():
        fn = conv_mod.Conv2d(1, 1, algorithm="winograd4")
        fn(Tensor(x0), Tensor(w0))
    assert fn.u is None
    # Where gy is larger than U (36 C < N H W: a big map, few channels), dX
    # takes the flipped filters instead, with the same numbers.
    calls.clear()
    x2 = Tensor(x0[:, :3], requires_grad=True)
    select.conv2d(x2, Tensor(w0[:, :3]), None, 1, 1).backward(gy)
    assert calls == ["weight_transform", "flipped_weight_transform"]
    monkeypatch.setattr(select, "CONV", "im2col")
    xr2 = Tensor(x0[:, :3], requires_grad=True)
    select.conv2d(xr2, Tensor(w0[:, :3]), None, 1, 1).backward(gy)
    np.testing.assert_allclose(x2.grad, xr2.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,k,pad", CASES)
def test_weight_grad_from_forwards_tiles(rng, tiling, xs, k, pad):
    """dW from the transformed input tiles forward left in v_out (whole
    images or bands of rows per block) equals dW that transforms x again
    (float64), and forward's output is unchanged by keeping them."""
    x, w = rng.standard_normal(xs), rng.standard_normal((k, xs[1], 3, 3))
    v = np.empty((36, W.tile_count(xs, pad), xs[1]))
    y = W.conv3x3(x, w, pad, v_out=v)
    np.testing.assert_array_equal(y, W.conv3x3(x, w, pad))
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(W.weight_grad(x, gy, pad, v=v), W.weight_grad(x, gy, pad),
                               rtol=1e-12, atol=1e-12)


def test_conv2d_keeps_small_tiles_for_dw(rng, monkeypatch):
    """conv2d keeps V for dW below WINOGRAD_KEEP_V elements (none under
    no_grad), and its dW equals the im2col path's (float64)."""
    import minivgg
    from minivgg import Tensor
    from minivgg import functional as F
    monkeypatch.setattr(select, "CONV", "winograd4")
    x0, w0 = rng.standard_normal((2, 5, 9, 7)), rng.standard_normal((4, 5, 3, 3))
    gy = rng.standard_normal((2, 4, 9, 7))
    kept = []
    real = W.weight_grad
    monkeypatch.setattr(W, "weight_grad", lambda *a, **kw: kept.append(kw.get("v") is not None)
                        or real(*a, **kw))
    for limit, want in ((1 << 22, True), (0, False)):
        monkeypatch.setattr(conv_mod, "WINOGRAD_KEEP_V", limit)
        monkeypatch.setattr(select, "CONV", "winograd4")
        w = Tensor(w0, requires_grad=True)
        select.conv2d(Tensor(x0), w, None, 1, 1).backward(gy)
        assert kept[-1] is want
        monkeypatch.setattr(select, "CONV", "im2col")
        wr = Tensor(w0, requires_grad=True)
        select.conv2d(Tensor(x0), wr, None, 1, 1).backward(gy)
        np.testing.assert_allclose(w.grad, wr.grad, rtol=1e-10, atol=1e-10)
    monkeypatch.setattr(select, "CONV", "winograd4")
    monkeypatch.setattr(conv_mod, "WINOGRAD_KEEP_V", 1 << 22)
    with minivgg.no_grad():
        fn = conv_mod.Conv2d(1, 1, algorithm="winograd4")
        fn(Tensor(x0), Tensor(w0))
    assert fn.v is None


@pytest.mark.parametrize("xs,k,pad", CASES[:3])
def test_the_relu_mask_applied_while_copying_gives_the_same_numbers(rng, tiling, xs, k, pad):
    """conv3x3 and weight_grad with ``mask``: bit for bit the same as on gy
    masked first (the backward of F(4x4) + ReLU never writes the masked
    gradient out whole), flipped too (dX from forward's U)."""
    x = rng.standard_normal(xs).astype(np.float32)
    oh, ow = xs[2] + 2 * pad[0] - 2, xs[3] + 2 * pad[1] - 2
    gy = rng.standard_normal((xs[0], k, oh, ow)).astype(np.float32)
    y = np.maximum(rng.standard_normal(gy.shape).astype(np.float32), 0)
    g = gy * (y > 0)
    dw, db = W.weight_grad(x, gy, pad, bias=True, mask=y)
    want_dw, want_db = W.weight_grad(x, g, pad, bias=True)
    assert np.array_equal(dw, want_dw) and np.array_equal(db, want_db)
    w = rng.standard_normal((3, k, 3, 3)).astype(np.float32)
    for flip in (False, True):
        got = W.conv3x3(gy, w, (1, 1), flip=flip, mask=y)
        assert np.array_equal(got, W.conv3x3(g, w, (1, 1), flip=flip))
