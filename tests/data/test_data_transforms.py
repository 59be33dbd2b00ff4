"""§3.1 transforms: rescale (fixed and jittered S), crops, flip, PCA colour shift, mean, layout."""

import warnings

import numpy as np
import pytest

from minivgg.data import (
    PCA_EIGVAL,
    PCA_EIGVEC,
    CenterCrop,
    Compose,
    CorruptImageError,
    PCAColourShift,
    RandomCrop,
    RandomHorizontalFlip,
    RescaleShorter,
    SubtractMean,
    ToCHW,
    ToFloat,
    compute_mean_rgb,
    eval_transform,
    train_transform,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# RescaleShorter -----------------------------------------------------------

@pytest.mark.parametrize("hw, s, out", [
    ((40, 60), 20, (20, 30)),
    ((60, 40), 20, (30, 20)),
    ((33, 50), 20, (20, 30)),   # 50 * 20 / 33 = 30.3 -> 30
    ((50, 33), 20, (30, 20)),
    ((10, 10), 25, (25, 25)),   # upscaling too
    ((375, 500), 256, (256, 341)),
])
def test_rescale_fixed(hw, s, out):
    got = RescaleShorter(s)(image(*hw))
    assert got.shape == out + (3,) and got.dtype == np.uint8


def test_rescale_is_bilinear_and_keeps_constant_images():
    img = np.full((30, 45, 3), 123, np.uint8)
    np.testing.assert_array_equal(RescaleShorter(16)(img), np.full((16, 24, 3), 123, np.uint8))
    img = image(16, 24)
    assert RescaleShorter(16)(img) is img  # already the right size: no resampling


def test_rescale_jitter_range_and_both_ends():
    t = RescaleShorter((20, 24))
    g = rng(1)
    draws = [t.sample_scale(g) for _ in range(500)]
    assert set(draws) == {20, 21, 22, 23, 24}
    img = image(30, 40)
    g = rng(2)
    for _ in range(20):
        out = t(img, g)
        assert 20 <= min(out.shape[:2]) <= 24
    # Deterministic given the generator.
    np.testing.assert_array_equal(t(img, rng(5)), t(img, rng(5)))


def test_fixed_scale_consumes_no_randomness():
    g = rng(3)
    RescaleShorter(16)(image(20, 20), g)
    assert g.random() == rng(3).random()


@pytest.mark.parametrize("bad", [0, -5, (30, 20), (0, 10), (1, 2, 3), 2.5, "big", "30:20"])
def test_rescale_rejects_bad_scale(bad):
    with pytest.raises(ValueError):
        RescaleShorter(bad)


def test_rescale_rejects_bad_layout():
    with pytest.raises(ValueError, match="HWC"):
        RescaleShorter(8)(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        RescaleShorter(8)(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="Generator"):
        RescaleShorter((8, 9))(image(16, 16), None)


# Crops ----------------------------------------------------------------------

def test_random_crop_is_a_window_and_covers_all_offsets():
    h, w, s = 7, 9, 4
    img = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3).astype(np.uint16)
    t = RandomCrop(s)
    g = rng(0)
    seen = set()
    for _ in range(400):
        out = t(img, g)
        assert out.shape == (s, s, 3)
        y, x = np.argwhere((img[:, :, 0] == out[0, 0, 0]))[0]
        np.testing.assert_array_equal(out, img[y:y + s, x:x + s])
        seen.add((int(y), int(x)))
    assert seen == {(y, x) for y in range(h - s + 1) for x in range(w - s + 1)}
    np.testing.assert_array_equal(t(img, rng(9)), t(img, rng(9)))


def test_crops_too_small_name_both_sizes():
    with pytest.raises(ValueError, match=r"RandomCrop\(32\).*20x40"):
        RandomCrop(32)(image(20, 40), rng())
    with pytest.raises(ValueError, match=r"CenterCrop\(32\).*40x20"):
        CenterCrop(32)(image(40, 20))
    with pytest.raises(ValueError):
        RandomCrop(0)


def test_center_crop():
    img = image(9, 12)
    np.testing.assert_array_equal(CenterCrop(4)(img), img[2:6, 4:8])
    np.testing.assert_array_equal(CenterCrop(9)(img), img[:, 1:10])
    assert CenterCrop(9)(img, rng()).shape == (9, 9, 3)


# Flip -----------------------------------------------------------------------

def test_flip_flips_and_p_is_respected():
    img = image(5, 6)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(img, rng()), img[:, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(img, rng()), img)
    t = RandomHorizontalFlip()
    g = rng(4)
    flips = sum(np.array_equal(t(img, g), img[:, ::-1]) for _ in range(1000))
    assert 430 < flips < 570
    np.testing.assert_array_equal(t(img, rng(7)), t(img, rng(7)))
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)


# Float, colour, mean, layout -----------------------------------------------------

def test_to_float():
    img = np.array([[[0, 128, 255]]], np.uint8)
    out = ToFloat()(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[[0, 128 / 255, 1]]], rtol=1e-6)


def test_pca_shift_is_one_rgb_offset_per_image():
    img = ToFloat()(image(6, 7))
    t = PCAColourShift()
    out = t(img, rng(3))
    assert out.dtype == np.float32 and out.shape == img.shape
    d = (out - img).reshape(-1, 3)
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-6)
    np.testing.assert_allclose(d[0], t.sample_shift(rng(3)), atol=1e-6)
    np.testing.assert_array_equal(t(img, rng(3)), out)
    with pytest.raises(ValueError, match="ToFloat"):
        t(image(4, 4), rng())


def test_pca_shift_statistics():
    sigma = 0.1
    t = PCAColourShift(sigma)
    g = rng(11)
    shifts = np.array([t.sample_shift(g) for _ in range(20000)])
    expected = PCA_EIGVEC @ np.diag((sigma * PCA_EIGVAL) ** 2) @ PCA_EIGVEC.T
    scale = np.sqrt(np.diag(expected))
    np.testing.assert_allclose(shifts.mean(0) / scale, 0, atol=0.03)
    cov = np.cov(shifts.T)
    np.testing.assert_allclose(cov, expected, atol=0.04 * expected.max())
    # The dominant direction is the first eigenvector (all channels together).
    w, v = np.linalg.eigh(cov)
    assert abs(abs(v[:, -1] @ PCA_EIGVEC[:, 0]) - 1) < 1e-3
    assert PCAColourShift(0.0).sample_shift(g).tolist() == [0, 0, 0]


def test_pca_constants_are_the_imagenet_ones():
    np.testing.assert_array_equal(PCA_EIGVAL, [0.2175, 0.0188, 0.0045])
    np.testing.assert_array_equal(PCA_EIGVEC[0], [-0.5675, 0.7192, 0.4009])
    np.testing.assert_array_equal(PCA_EIGVEC[2], [-0.5836, -0.6948, 0.4203])


def test_subtract_mean():
    img = np.full((2, 3, 3), 0.5, np.float32)
    out = SubtractMean([0.1, 0.2, 0.3])(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2], [0.4, 0.3, 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="255"):
        SubtractMean([120.0, 115.0, 100.0])
    with pytest.raises(ValueError, match="3 finite"):
        SubtractMean([0.5, 0.5])


def test_to_chw():
    img = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    out = ToCHW()(img[:, ::-1])
    assert out.shape == (3, 4, 5) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[1], img[:, ::-1, 1])


# Compose, builders, mean ---------------------------------------------------------

def test_compose_threads_the_rng_deterministically():
    t = train_transform(24, (32, 48), [0.4, 0.5, 0.6])
    img = image(40, 60)
    a, b, c = t(img, rng(1)), t(img, rng(1)), t(img, rng(2))
    assert a.shape == (3, 24, 24) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="not callable"):
        Compose([RandomCrop(4), 3])


def test_train_transform_equals_manual_pipeline_and_options():
    mean = [0.4, 0.5, 0.6]
    img = image(40, 60)
    manual = Compose([RescaleShorter((32, 48)), RandomCrop(24), RandomHorizontalFlip(), ToFloat(),
                      PCAColourShift(), SubtractMean(mean), ToCHW()])
    np.testing.assert_array_equal(train_transform(24, (32, 48), mean)(img, rng(6)), manual(img, rng(6)))
    plain = train_transform(24, 32, mean, colour=False, flip=False)
    assert [type(s).__name__ for s in plain.transforms] == [
        "RescaleShorter", "RandomCrop", "ToFloat", "SubtractMean", "ToCHW"]


def test_eval_transform_uses_the_midpoint_scale():
    mean = [0.5, 0.5, 0.5]
    img = image(40, 60)
    t = eval_transform(24, (32, 48), mean)
    assert t.transforms[0].S == 40
    manual = Compose([RescaleShorter(40), CenterCrop(24), ToFloat(), SubtractMean(mean), ToCHW()])
    np.testing.assert_array_equal(t(img, rng(0)), manual(img))
    np.testing.assert_array_equal(t(img, rng(0)), t(img, rng(1)))
    assert eval_transform(224, 256, mean).transforms[0].S == 256
    assert eval_transform(224, (256, 512), mean).transforms[0].S == 384


@pytest.mark.parametrize("build", [train_transform, eval_transform])
def test_recipe_validation(build):
    with pytest.raises(ValueError, match=r"crop 224 .*S=200"):
        build(224, 200, [0.5] * 3)
    with pytest.raises(ValueError, match=r"crop 224 .*S=200"):
        build(224, (200, 512), [0.5] * 3)
    with pytest.raises(ValueError, match="S_min <= S_max"):
        build(224, (512, 256), [0.5] * 3)


class _Images:
    classes = ["a"]

    def __init__(self, imgs, corrupt=()):
        self.imgs, self.corrupt = imgs, set(corrupt)

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        if i in self.corrupt:
            raise CorruptImageError(f"cannot decode img{i}.jpg")
        return self.imgs[i], 0

    def describe(self, i):
        return f"img{i}.jpg"


def test_compute_mean_rgb_weighs_pixels():
    a = np.zeros((2, 2, 3), np.uint8)           # 4 black pixels
    b = np.full((2, 6, 3), [255, 51, 0], np.uint8)  # 12 coloured pixels
    m = compute_mean_rgb(_Images([a, b]), progress=False)
    assert m.dtype == np.float64 and m.shape == (3,)
    np.testing.assert_allclose(m, np.array([255, 51, 0]) * 12 / 16 / 255)


def test_compute_mean_rgb_max_images_is_evenly_spaced():
    imgs = [np.full((1, 1, 3), v, np.uint8) for v in range(0, 100, 10)]
    m = compute_mean_rgb(_Images(imgs), max_images=2, progress=False)
    np.testing.assert_allclose(m, [(0 + 90) / 2 / 255] * 3)  # first and last, not 0 and 10
    with pytest.raises(ValueError):
        compute_mean_rgb(_Images(imgs), max_images=0, progress=False)


def test_compute_mean_rgb_skips_corrupt_with_warning():
    imgs = [np.full((1, 1, 3), v, np.uint8) for v in (10, 200, 30)]
    with pytest.warns(UserWarning, match="img1.jpg"):
        m = compute_mean_rgb(_Images(imgs, corrupt=[1]), progress=False)
    np.testing.assert_allclose(m, [20 / 255] * 3)


def test_compute_mean_rgb_progress_bar_runs(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_mean_rgb(_Images([image(3, 3)]), progress=True)
    assert "mean RGB" in capsys.readouterr().err


def test_rescale_accepts_the_command_line_form():
    assert (RescaleShorter("256:512").s_min, RescaleShorter("256:512").s_max) == (256, 512)
    assert RescaleShorter("256").s_min == RescaleShorter(256).s_min == 256
