"""The loader's fast path for image files: Compose decodes an ImageFile
itself (only the crop is resampled; large JPEGs at a reduced scale, Pillow's
``draft``) and runs the float steps in one pass. Each shortcut against the
plain steps on the decoded array, and the reduced-scale decode against the
rescale's own error."""
import numpy as np
import pytest
from PIL import Image

from minivgg.data import DataLoader, ImageFolder, train_transform
from minivgg.data import transforms as T
from minivgg.data.folder import ImageFile, load_rgb

MEAN = [0.485, 0.456, 0.406]


def photo(w, h, seed):
    """A photo-like image: smooth colour field, sharp-edged patches, noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.float32).copy()
    for _ in range(20):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + rng.integers(5, h // 3), x0:x0 + rng.integers(5, w // 3)] = \
            rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def steps_one_by_one(compose, img, rng):
    for t in compose.transforms:
        img = t(img, rng)
    return img


@pytest.mark.parametrize("colour,flip", [(True, True), (False, True), (True, False)])
def test_fused_float_steps_give_the_same_numbers(colour, flip):
    tf = train_transform(24, (28, 40), MEAN, colour=colour, flip=flip)
    assert tf._tail is not None
    img = photo(50, 30, 0)
    for seed in range(6):
        a = tf(img, np.random.default_rng(seed))
        b = steps_one_by_one(tf, img, np.random.default_rng(seed))
        assert a.dtype == np.float32 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    ev = T.eval_transform(24, (28, 40), MEAN)
    np.testing.assert_array_equal(ev(img), steps_one_by_one(ev, img, None))


def test_other_pipelines_are_run_step_by_step():
    assert T._fused_tail([T.ToFloat(), T.ToCHW()]) is None
    assert T._fused_tail([T.ToFloat(), T.SubtractMean(MEAN)]) is None
    assert not T.Compose([T.RandomCrop(4), T.ToFloat()]).reads_files
    assert T.Compose([T.RescaleShorter(8), T.CenterCrop(4)]).reads_files


@pytest.fixture
def no_draft(monkeypatch):
    monkeypatch.setattr(T, "DRAFT_MARGIN", 10 ** 6)


@pytest.mark.parametrize("size", [(75, 56), (500, 375), (375, 500), (300, 256), (333, 333)])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_file_path_matches_the_array_path(tmp_path, no_draft, size, fmt):
    """Resampling only the crop gives the pixels of the whole rescale (up to
    two levels, from float rounding of the filter weights, in under 5% of
    them; measured: at most 3%, mostly 0.1%), after the same random draws."""
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(photo(*size, 1)).save(path, format=fmt)
    tf = train_transform(224, (256, 300), MEAN)
    rescale, crop = tf.transforms[:2]
    arr = load_rgb(path)
    for seed in range(4):
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        fast = rescale.rescale_crop(ImageFile(path), crop, r1)
        slow = crop(rescale(arr, r2), r2)
        assert fast.shape == slow.shape == (224, 224, 3)
        diff = np.abs(fast.astype(int) - slow.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 0.05   # float rounding of the filter
        assert r1.random() == r2.random()       # the same numbers were drawn
        out_fast = tf(ImageFile(path), np.random.default_rng(seed))
        out_slow = steps_one_by_one(tf, arr, np.random.default_rng(seed))
        np.testing.assert_allclose(out_fast, out_slow, rtol=0, atol=2.01 / 255)


def area_downscale(img, nh, nw):
    """The exact area-average downscale of img (H, W, 3) to nh x nw, float64."""
    def weights(n_in, n_out):
        m, step = np.zeros((n_out, n_in)), n_in / n_out
        for o in range(n_out):
            a, b = o * step, (o + 1) * step
            for i in range(int(a), min(n_in, int(np.ceil(b)))):
                m[o, i] = min(b, i + 1) - max(a, i)
        return m / step
    mh, mw = weights(img.shape[0], nh), weights(img.shape[1], nw)
    f = img.astype(np.float64)
    return np.stack([mh @ f[:, :, z] @ mw.T for z in range(3)], axis=2)


@pytest.mark.parametrize("size,s", [((1024, 768), 160), ((1200, 800), 180), ((768, 1024), 160)])
def test_reduced_scale_decode_stays_within_the_rescales_own_error(tmp_path, size, s):
    """Decoding at 1/2 scale (DRAFT_MARGIN = 2: the rescale left to do still
    halves the image at least) against an exact area-average downscale of
    the full-size pixels: its error is at most 10% above the full-size
    bilinear rescale's own error on average, and the two differ from each
    other by less than that own error. (Measured on 1024x768 to 2400x1600:
    own error 0.53-0.73 levels on average; reduced-scale decode 0.53-0.69,
    differing from the full-size result by 0.21-0.32. With a margin of 1,
    1/4 and 1/8 scales come in and the error reaches 0.88: 1.5x its own.)"""
    path = tmp_path / "big.jpg"
    Image.fromarray(photo(*size, 2)).save(path, quality=90)
    full = load_rgb(path)
    h, w = full.shape[:2]
    nh, nw = T.RescaleShorter.target_size(h, w, s)
    im, r = ImageFile(path).decode((nh * T.DRAFT_MARGIN, nw * T.DRAFT_MARGIN))
    assert r == 2
    box = (0, 0, w / r, h / r)
    reduced = np.asarray(im.resize((nw, nh), Image.BILINEAR, box=box)).astype(np.float64)
    whole = np.asarray(Image.fromarray(full).resize((nw, nh), Image.BILINEAR)).astype(np.float64)
    exact = area_downscale(full, nh, nw)
    own = np.abs(whole - exact).mean()
    assert np.abs(reduced - exact).mean() <= 1.1 * own
    assert np.abs(reduced - whole).mean() < own


def test_draft_is_used_only_for_large_jpegs(tmp_path):
    big, small = tmp_path / "big.jpg", tmp_path / "small.png"
    Image.fromarray(photo(1600, 1200, 3)).save(big)
    Image.fromarray(photo(1600, 1200, 3)).save(small)
    assert ImageFile(big).decode((400, 500))[1] == 2        # 1200 / 2 >= 400, 1200 / 4 < 400
    assert ImageFile(big).decode((100, 100))[1] == 8
    assert ImageFile(big).decode()[1] == 1
    assert ImageFile(small).decode((100, 100))[1] == 1       # PNG: no reduced decode
    tf = train_transform(224, 256, MEAN)
    f = ImageFile(big)
    out = tf.transforms[0].rescale_crop(f, tf.transforms[1], np.random.default_rng(0))
    assert out.shape == (224, 224, 3)


def test_loader_reads_files_through_the_transform(tmp_path, monkeypatch):
    """An ImageFolder with a rescale-and-crop transform hands files to the
    transform (no full decode in ds[i]); corrupt files are skipped (or
    raise with strict=True) as before."""
    for i in range(6):
        d = tmp_path / f"c{i % 2}"
        d.mkdir(exist_ok=True)
        Image.fromarray(photo(120 + 10 * i, 90, i)).save(d / f"{i}.jpg")
    (tmp_path / "c0" / "bad.jpg").write_bytes(b"not a jpeg")
    ds = ImageFolder(tmp_path)
    tf = train_transform(64, (72, 96), MEAN)
    opened = []
    real = ImageFile.decode
    monkeypatch.setattr(ImageFile, "decode", lambda f, *a: opened.append(f.path) or real(f, *a))
    monkeypatch.setattr(ImageFolder, "__getitem__", lambda *a: pytest.fail("decoded in ds[i]"))
    with pytest.warns(UserWarning, match="bad.jpg"):
        batches = list(DataLoader(ds, 4, tf, seed=3))
    assert sum(len(y) for _, y in batches) == 6 and len(opened) == 6
    with pytest.raises(Exception, match="bad.jpg"):
        list(DataLoader(ds, 4, tf, seed=3, strict=True))
    # The same batches, within the rounding above, as from the decoded arrays.
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="bad.jpg"):
        plain = list(DataLoader(ds, 4, lambda img, rng: tf(img, rng), seed=3))
    for (a, ya), (b, yb) in zip(batches, plain):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(a, b, rtol=0, atol=2.01 / 255)
