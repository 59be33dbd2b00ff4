"""SyntheticShapes: shapes, determinism across processes and orders, splits, balance."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivgg.data import SHAPE_CLASSES, SyntheticShapes


def test_items_are_hwc_uint8_with_int_labels():
    ds = SyntheticShapes(20, image_size=32)
    assert len(ds) == 20
    assert ds.classes == SHAPE_CLASSES and len(ds.classes) == 10
    for i in range(20):
        img, y = ds[i]
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert type(y) is int and 0 <= y < 10
        assert y == ds.labels[i]
        assert img.std() > 5  # not a blank image
    assert ds[-1][1] == ds[19][1]
    with pytest.raises(IndexError):
        ds[20]


def test_any_resolution():
    img, _ = SyntheticShapes(1, image_size=224)[0]
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    img, _ = SyntheticShapes(1, image_size=47)[0]
    assert img.shape == (47, 47, 3)


def test_deterministic_in_any_order_and_instance():
    a = SyntheticShapes(30, seed=3)
    b = SyntheticShapes(30, seed=3)
    forward = [a[i][0] for i in range(30)]
    backward = [b[i][0] for i in reversed(range(30))][::-1]
    for x, y in zip(forward, backward):
        np.testing.assert_array_equal(x, y)
    # Image i does not depend on the data set's length.
    np.testing.assert_array_equal(SyntheticShapes(1000, seed=3)[7][0], forward[7])
    assert SyntheticShapes(1000, seed=3)[7][1] == a[7][1]


def test_deterministic_in_another_process():
    code = ("from minivgg.data import SyntheticShapes; import hashlib;"
            "ds = SyntheticShapes(5, seed=1, split='val');"
            "print(hashlib.sha256(b''.join(ds[i][0].tobytes() for i in range(5))).hexdigest())")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root, env=env).stdout.strip()
    ds = SyntheticShapes(5, seed=1, split="val")
    assert out == hashlib.sha256(b"".join(ds[i][0].tobytes() for i in range(5))).hexdigest()


def test_splits_and_seeds_differ():
    tr = SyntheticShapes(10, split="train")
    va = SyntheticShapes(10, split="val")
    te = SyntheticShapes(10, split="test")
    other = SyntheticShapes(10, seed=1)
    for i in range(10):
        assert not np.array_equal(tr[i][0], va[i][0])
        assert not np.array_equal(tr[i][0], te[i][0])
        assert not np.array_equal(tr[i][0], other[i][0])


def test_labels_balanced_per_block_and_not_trivial():
    ds = SyntheticShapes(1000)
    blocks = ds.labels.reshape(-1, 10)
    assert all(sorted(b) == list(range(10)) for b in blocks)
    assert not np.array_equal(ds.labels, np.arange(1000) % 10)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(SyntheticShapes(37).labels, ds.labels[:37])
    counts = np.bincount(SyntheticShapes(37).labels, minlength=10)
    assert counts.min() >= 3 and counts.max() <= 4


def test_cache_matches_lazy():
    lazy = SyntheticShapes(12, image_size=16, seed=2)
    cached = SyntheticShapes(12, image_size=16, seed=2, cache=True)
    assert lazy.images is None
    assert cached.images.shape == (12, 16, 16, 3) and cached.images.dtype == np.uint8
    for i in range(12):
        np.testing.assert_array_equal(lazy[i][0], cached[i][0])
        assert lazy[i][1] == cached[i][1]


def test_images_are_kept_after_their_first_render(monkeypatch):
    """A set within MEMO_BYTES draws each image once; what it hands out is a
    read-only view equal to a fresh render; a set beyond it keeps nothing."""
    import minivgg.data.synthetic as synthetic
    ds = SyntheticShapes(12, image_size=16, seed=2)
    fresh = SyntheticShapes(12, image_size=16, seed=2)
    drawn = []
    real = SyntheticShapes._render
    monkeypatch.setattr(SyntheticShapes, "_render",
                        lambda self, i: drawn.append(i) or real(self, i))
    for _ in range(3):
        for i in (5, 0, 11, 5):
            img, label = ds[i]
            assert not img.flags.writeable and label == fresh.labels[i]
            with pytest.raises(ValueError):
                img[0, 0, 0] = 1
    assert sorted(drawn) == [0, 5, 11]
    monkeypatch.setattr(SyntheticShapes, "_render", real)
    for i in (0, 5, 11):
        np.testing.assert_array_equal(ds[i][0], fresh._render(i))
    monkeypatch.setattr(synthetic, "MEMO_BYTES", 12 * 16 * 16 * 3 - 1)
    big = SyntheticShapes(12, image_size=16, seed=2)
    assert big._memo is None and big[3][0].flags.writeable
    np.testing.assert_array_equal(big[3][0], fresh._render(3))


def test_kept_images_are_shared_with_forked_workers_and_not_pickled():
    """Workers forked for a pass render into memory the parent and later
    passes see; a pickled copy (a spawned worker) renders without it."""
    import pickle
    from minivgg.data import DataLoader
    ds = SyntheticShapes(20, image_size=8, seed=1)
    list(DataLoader(ds, 5, lambda img, rng: img.astype(np.float32), workers=2, prefetch=1))
    assert ds._done.all()           # filled by the workers, seen here
    fresh = SyntheticShapes(20, image_size=8, seed=1)
    for i in range(20):
        np.testing.assert_array_equal(ds._memo[i], fresh._render(i))
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._memo is None and copy._done is None
    np.testing.assert_array_equal(copy[7][0], ds[7][0])


def test_describe_names_index_and_class():
    ds = SyntheticShapes(5, split="val")
    d = ds.describe(3)
    assert "[3]" in d and "val" in d and ds.classes[ds[3][1]] in d


@pytest.mark.parametrize("kwargs, word", [
    (dict(n=-1), "n"),
    (dict(n=3.5), "n"),
    (dict(n=5, image_size=4), "image_size"),
    (dict(n=5, seed=-2), "seed"),
    (dict(n=5, split="training"), "split"),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SyntheticShapes(**kwargs)
