"""ImageFolder: layout scanning, colour-mode conversion, clear errors, corrupt files."""

import warnings

import numpy as np
import pytest
from PIL import Image, features

from minivgg.data import CorruptImageError, ImageFolder, load_rgb


def save(path, img, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    save(root / "zebra" / "a.JPG", Image.new("RGB", (40, 30), (200, 10, 10)), quality=95)
    save(root / "zebra" / "b.png", Image.new("L", (17, 23), 77))
    save(root / "zebra" / "sub" / "c.bmp", Image.new("RGB", (5, 6), (1, 2, 3)))
    save(root / "apple" / "d.jpeg", Image.new("CMYK", (20, 20), (0, 255, 255, 0)))
    rgba = Image.new("RGBA", (9, 9), (10, 20, 30, 128))
    save(root / "apple" / "e.png", rgba)
    save(root / "apple" / "f.gif", Image.new("P", (8, 8), 0))
    save(root / "apple" / "g.TIFF", Image.new("RGB", (4, 3), (9, 8, 7)))
    (root / "apple" / "notes.txt").write_text("not an image")
    (root / "apple" / ".hidden.png").write_bytes(b"")
    save(root / ".cache" / "x.png", Image.new("RGB", (4, 4)))
    return root


def test_layout_labels_and_order(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["apple", "zebra"]
    names = [p.rsplit("/", 1)[1] for p, _ in ds.samples]
    assert names == ["d.jpeg", "e.png", "f.gif", "g.TIFF", "a.JPG", "b.png", "c.bmp"]
    assert [y for _, y in ds.samples] == [0, 0, 0, 0, 1, 1, 1]
    assert ds.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert ds.describe(4).endswith("zebra/a.JPG")


def test_every_mode_becomes_hwc_uint8_rgb(folder):
    ds = ImageFolder(folder)
    sizes = [(20, 20), (9, 9), (8, 8), (3, 4), (30, 40), (23, 17), (6, 5)]
    for i, hw in enumerate(sizes):
        img, y = ds[i]
        assert img.shape == hw + (3,) and img.dtype == np.uint8, ds.describe(i)
        assert type(y) is int
    assert ds[5][0][0, 0].tolist() == [77, 77, 77]  # grayscale replicated
    assert ds[6][0][0, 0].tolist() == [1, 2, 3]  # lossless BMP
    assert ds[3][0][0, 0].tolist() == [9, 8, 7]  # TIFF
    r, g, b = ds[4][0][15, 20].astype(int)  # JPEG: approximately red
    assert r > 180 and g < 40 and b < 40
    r, g, b = ds[0][0][10, 10].astype(int)  # CMYK (0, 255, 255, 0) is red
    assert r > 200 and g < 50 and b < 50


def test_palette_with_transparency_converts_without_warning(tmp_path):
    p = Image.new("P", (6, 6), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    path = save(tmp_path / "c" / "t.png", p, transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = load_rgb(path)
    assert img.shape == (6, 6, 3) and img[0, 0].tolist() == [255, 0, 0]


def test_sixteen_bit_and_la(tmp_path):
    a16 = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    path = save(tmp_path / "a.png", a16)
    img = load_rgb(path)
    assert img.shape == (4, 5, 3) and img.max() == 255
    path = save(tmp_path / "la.png", Image.new("LA", (3, 3), (50, 100)))
    assert load_rgb(path)[0, 0].tolist() == [50, 50, 50]


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp(tmp_path):
    save(tmp_path / "c" / "w.WebP", Image.new("RGB", (7, 7), (0, 0, 255)), lossless=True)
    img, _ = ImageFolder(tmp_path)[0]
    assert img[3, 3].tolist() == [0, 0, 255]


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolder(tmp_path / "nope")


def test_no_class_folders(tmp_path):
    save(tmp_path / "loose.jpg", Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="no class sub-directories"):
        ImageFolder(tmp_path)


def test_empty_class_folder(tmp_path):
    save(tmp_path / "cat" / "a.png", Image.new("RGB", (4, 4)))
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"dog holds no image.*remove the folder"):
        ImageFolder(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_corrupt(tmp_path, fmt):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    path = save(tmp_path / "c" / f"x.{fmt.lower()}", img, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = ImageFolder(tmp_path)
    with pytest.raises(CorruptImageError, match=str(path)):
        ds[0]


def test_not_an_image_is_corrupt(tmp_path):
    path = tmp_path / "c" / "fake.jpg"
    path.parent.mkdir()
    path.write_bytes(b"this is not a jpeg")
    with pytest.raises(CorruptImageError, match="fake.jpg") as e:
        ImageFolder(tmp_path)[0]
    assert isinstance(e.value, ValueError)
