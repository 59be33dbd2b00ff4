"""CIFAR-10 from the official binary archive (small-scale stand-in for §3.1 data).

The paper trains on ImageNet; CIFAR-10 is the usual small real data set to
try the same recipe on.  The *binary* version is read directly (no pickle, so
no code runs from a downloaded file): each record is 1 label byte followed by
3072 pixel bytes, the red plane (1024 bytes), then green, then blue, each
plane 32x32 row-major.

Layout expected under ``root``::

    root/cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin
    root/cifar-10-batches-bin/test_batch.bin
    root/cifar-10-batches-bin/batches.meta.txt   (class names, one per line)

:func:`download_cifar10` fetches and unpacks the archive.
"""

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request

import numpy as np

from .base import Dataset

__all__ = ["CIFAR10", "download_cifar10", "CIFAR10_URL", "CIFAR10_MD5"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_DIR = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{k}.bin" for k in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
META_FILE = "batches.meta.txt"
_RECORD = 1 + 3 * 32 * 32


def _missing_message(root):
    root = os.path.abspath(root)
    return (
        f"run minivgg.data.download_cifar10({root!r}) to download it, or put the "
        f"archive {CIFAR10_ARCHIVE} (from {CIFAR10_URL}) at "
        f"{os.path.join(root, CIFAR10_ARCHIVE)} and run the same function to "
        f"unpack it offline"
    )


class CIFAR10(Dataset):
    """CIFAR-10 (binary version); ``ds[i] -> (img, label)``.

    Args:
        root: directory holding ``cifar-10-batches-bin/``.
        train: the 50,000 training images (True) or the 10,000 test images.

    Per item: ``img`` (32, 32, 3) uint8 RGB, ``label`` int in 0..9.
    All images are decoded at construction into ``ds.images``
    (N, 32, 32, 3) uint8 (150 MB for the training set); ``ds.labels`` is
    (N,) int64.
    """

    def __init__(self, root, train=True):
        self.root = os.fspath(root)
        self.train = bool(train)
        folder = os.path.join(self.root, CIFAR10_DIR)
        files = TRAIN_FILES if self.train else TEST_FILES
        missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(
                f"CIFAR10: {', '.join(missing)} not found in {os.path.abspath(folder)}; "
                + _missing_message(self.root)
            )
        self.classes = self._read_classes(folder)

        images, labels, self._origins = [], [], []
        for f in files:
            path = os.path.join(folder, f)
            raw = np.fromfile(path, dtype=np.uint8)
            if raw.size == 0 or raw.size % _RECORD:
                raise ValueError(
                    f"CIFAR10: {path} has {raw.size} bytes, expected a non-zero multiple of "
                    f"{_RECORD} (1 label byte + 3072 pixel bytes per record); the file is "
                    f"truncated or not from the binary archive: delete it and unpack again"
                )
            rec = raw.reshape(-1, _RECORD)
            lab = rec[:, 0].astype(np.int64)
            bad = np.flatnonzero(lab >= len(self.classes))
            if bad.size:
                raise ValueError(
                    f"CIFAR10: {path} record {bad[0]} has label {lab[bad[0]]}, expected "
                    f"0..{len(self.classes) - 1}; the file is corrupt: delete it and unpack again"
                )
            # Planar R, G, B (CHW) to the HWC layout every dataset hands out.
            images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
            self._origins.append((path, len(lab)))
        self.images = np.ascontiguousarray(np.concatenate(images))
        self.labels = np.concatenate(labels)

    @staticmethod
    def _read_classes(folder):
        path = os.path.join(folder, META_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR10: {path} not found (class names); unpack the archive again")
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if not names or len(names) > 256:
            raise ValueError(f"CIFAR10: {path} lists {len(names)} class names, "
                             f"expected 1..256 (10 for CIFAR-10)")
        return names

    def __len__(self):
        return len(self.labels)

    def _get(self, i):
        return self.images[i], int(self.labels[i])

    def describe(self, i):
        i = self._index(i)
        for path, n in self._origins:
            if i < n:
                return f"{path} record {i}"
            i -= n
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self):
        return f"CIFAR10(root={self.root!r}, train={self.train}, n={len(self)})"


def _md5(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive, dest):
    """Extract a tar archive into ``dest``, refusing anything that could escape it.

    Rejected: absolute names, ``..`` components, links, devices and FIFOs.
    Raises ValueError naming the offending member before writing anything.
    """
    dest_real = os.path.realpath(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            name = m.name
            target = os.path.realpath(os.path.join(dest_real, name))
            if (
                os.path.isabs(name)
                or ".." in name.replace("\\", "/").split("/")
                or os.path.commonpath([dest_real, target]) != dest_real
            ):
                raise ValueError(f"refusing to extract {archive}: member {name!r} would land outside {dest}")
            if not (m.isfile() or m.isdir()):
                raise ValueError(
                    f"refusing to extract {archive}: member {name!r} is a link or special file"
                )
        # The "data" filter (Python >= 3.11.4) is a second line of defence.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest_real, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; the checks above still ran
            tar.extractall(dest_real, members=members)


def download_cifar10(root, url=CIFAR10_URL, md5=CIFAR10_MD5, timeout=60):
    """Download (if needed), verify and unpack the CIFAR-10 binary archive.

    If ``root/cifar-10-binary.tar.gz`` already exists it is verified and
    unpacked without touching the network; if ``root/cifar-10-batches-bin``
    is already complete nothing is done.  ``md5`` is the expected checksum
    of the archive (overridable for tests and mirrors).

    Returns the path of ``root/cifar-10-batches-bin``.
    Raises ValueError on a checksum mismatch or an unsafe archive, and
    ConnectionError (saying where to put the file by hand) when offline.
    """
    root = os.fspath(root)
    folder = os.path.join(root, CIFAR10_DIR)
    needed = TRAIN_FILES + TEST_FILES + [META_FILE]
    if all(os.path.isfile(os.path.join(folder, f)) for f in needed):
        return folder
    os.makedirs(root, exist_ok=True)
    archive = os.path.join(root, CIFAR10_ARCHIVE)

    if not os.path.isfile(archive):
        part = archive + ".part"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError) as e:
            if os.path.exists(part):
                os.remove(part)
            raise ConnectionError(
                f"could not download {url} ({e}); download it by other means and put it at "
                f"{os.path.abspath(archive)}, then call download_cifar10({root!r}) again"
            ) from e
        os.replace(part, archive)  # only a complete download gets the real name

    got = _md5(archive)
    if got != md5:
        raise ValueError(
            f"{archive} has md5 {got}, expected {md5}: the file is damaged or not the "
            f"CIFAR-10 binary archive; delete it and download again"
        )
    safe_extract(archive, root)
    missing = [f for f in needed if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise ValueError(f"{archive} did not contain {', '.join(missing)} under {CIFAR10_DIR}/")
    return folder
