"""CIFAR10 binary decoding and download_cifar10 (checksum, safe extraction); never online."""

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from minivgg.data import CIFAR10, download_cifar10
from minivgg.data.cifar import CIFAR10_ARCHIVE, CIFAR10_DIR

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def record(label, seed):
    """One binary record and the HWC image it must decode to."""
    rng = np.random.default_rng(seed)
    hwc = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    planes = hwc.transpose(2, 0, 1).reshape(-1)  # R plane, G plane, B plane
    return bytes([label]) + planes.tobytes(), hwc


def write_batches(folder, per_file=2, labels=None):
    """Fake cifar-10-batches-bin with `per_file` records per file; returns {file: [(label, img)]}."""
    os.makedirs(folder, exist_ok=True)
    content = {}
    files = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
    for fi, name in enumerate(files):
        recs = []
        with open(os.path.join(folder, name), "wb") as f:
            for r in range(per_file):
                lab = (fi * per_file + r) % 10 if labels is None else labels[r]
                raw, img = record(lab, fi * 100 + r)
                f.write(raw)
                recs.append((lab, img))
        content[name] = recs
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(NAMES) + "\n\n")
    return content


def test_decodes_planes_and_labels(tmp_path):
    content = write_batches(tmp_path / CIFAR10_DIR, per_file=3)
    ds = CIFAR10(tmp_path, train=True)
    assert len(ds) == 15 and ds.classes == NAMES
    expected = [r for k in range(1, 6) for r in content[f"data_batch_{k}.bin"]]
    for i, (lab, img) in enumerate(expected):
        got, y = ds[i]
        assert got.shape == (32, 32, 3) and got.dtype == np.uint8 and type(y) is int
        np.testing.assert_array_equal(got, img)
        assert y == lab
    test = CIFAR10(tmp_path, train=False)
    assert len(test) == 3
    np.testing.assert_array_equal(test[2][0], content["test_batch.bin"][2][1])
    assert test.describe(1).endswith("test_batch.bin record 1")
    assert ds.describe(4).endswith("data_batch_2.bin record 1")


def test_known_pixel(tmp_path):
    folder = tmp_path / CIFAR10_DIR
    write_batches(folder, per_file=1)
    # A record whose pixel (row 3, column 5) is (200, 100, 50) and all else 0.
    planes = np.zeros((3, 32, 32), np.uint8)
    planes[:, 3, 5] = [200, 100, 50]
    (folder / "test_batch.bin").write_bytes(bytes([7]) + planes.tobytes())
    img, y = CIFAR10(tmp_path, train=False)[0]
    assert y == 7
    assert img[3, 5].tolist() == [200, 100, 50]
    assert img.sum() == 350


def test_label_out_of_range(tmp_path):
    write_batches(tmp_path / CIFAR10_DIR, per_file=2, labels=[3, 10])
    with pytest.raises(ValueError, match=r"data_batch_1\.bin record 1 has label 10"):
        CIFAR10(tmp_path)


def test_truncated_file(tmp_path):
    folder = tmp_path / CIFAR10_DIR
    write_batches(folder)
    p = folder / "data_batch_3.bin"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match="data_batch_3.bin"):
        CIFAR10(tmp_path)


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        CIFAR10(tmp_path / "nowhere")
    msg = str(e.value)
    assert "download_cifar10" in msg and CIFAR10_ARCHIVE in msg and "data_batch_1.bin" in msg


def make_archive(path, members):
    """Write a .tar.gz with members {name: bytes}; returns its md5."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_archive(tmp_path):
    src = tmp_path / "src"
    write_batches(src / CIFAR10_DIR, per_file=2)
    members = {f"{CIFAR10_DIR}/{f.name}": f.read_bytes() for f in sorted((src / CIFAR10_DIR).iterdir())}
    root = tmp_path / "root"
    root.mkdir()
    md5 = make_archive(root / CIFAR10_ARCHIVE, members)
    return root, md5


def test_download_uses_local_archive_offline(tmp_path):
    root, md5 = fake_archive(tmp_path)
    folder = download_cifar10(root, md5=md5)
    assert folder == os.path.join(str(root), CIFAR10_DIR)
    ds = CIFAR10(root)
    assert len(ds) == 10
    # Second call: already unpacked, nothing to do (and still no network).
    assert download_cifar10(root, md5="0" * 32) == folder


def test_checksum_mismatch(tmp_path):
    root, md5 = fake_archive(tmp_path)
    with pytest.raises(ValueError, match=f"md5 {md5}, expected {'f' * 32}"):
        download_cifar10(root, md5="f" * 32)
    assert not (root / CIFAR10_DIR).exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/minivgg_evil_abs.txt", "a/../../evil.txt"])
def test_path_traversal_rejected(tmp_path, evil):
    root = tmp_path / "root"
    root.mkdir()
    md5 = make_archive(root / CIFAR10_ARCHIVE, {f"{CIFAR10_DIR}/batches.meta.txt": b"x\n", evil: b"pwned"})
    with pytest.raises(ValueError, match="outside"):
        download_cifar10(root, md5=md5)
    assert not (tmp_path / "evil.txt").exists()
    assert not os.path.exists("/tmp/minivgg_evil_abs.txt")
    assert not (root / CIFAR10_DIR).exists()  # nothing was written


def test_link_member_rejected(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    path = root / CIFAR10_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{CIFAR10_DIR}/data_batch_1.bin")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="link"):
        download_cifar10(root, md5=md5)


def test_offline_without_archive_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError) as e:
        download_cifar10(tmp_path)
    assert os.path.join(str(tmp_path), CIFAR10_ARCHIVE) in str(e.value)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())


def test_download_writes_archive_then_verifies(tmp_path, monkeypatch):
    root, md5 = fake_archive(tmp_path)
    payload = (root / CIFAR10_ARCHIVE).read_bytes()
    (root / CIFAR10_ARCHIVE).unlink()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))
    download_cifar10(root, md5=md5)
    assert (root / CIFAR10_ARCHIVE).read_bytes() == payload
    assert len(CIFAR10(root, train=False)) == 2
