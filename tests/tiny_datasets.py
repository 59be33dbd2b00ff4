"""Tiny real-data layouts generated on the spot for the tests:
an ImageFolder tree and a binary CIFAR-10 archive, both with CIFAR-10's class names."""
import os

import numpy as np
from PIL import Image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def make_tree(root, train_per_class=4, test_per_class=2, classes=CIFAR_NAMES):
    """root/train/<class>/*.png and root/test/<class>/*.png, 32x32 RGB; returns root."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for k, c in enumerate(classes):
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                img = (rng.random((32, 32, 3)) * 80 + 17 * k).astype(np.uint8)
                Image.fromarray(img).save(os.path.join(root, split, c, f"{i}.png"))
    return root


def make_cifar(root, per_file=6):
    """root/cifar-10-batches-bin/ as the official binary archive lays it out:
    data_batch_1..5.bin and test_batch.bin (per record 1 label byte, then the R, G
    and B planes, 32x32 each) and batches.meta.txt; returns root."""
    folder = os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(folder)
    rng = np.random.default_rng(1)
    files = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
    for fi, name in enumerate(files):
        with open(os.path.join(folder, name), "wb") as f:
            for r in range(per_file):
                label = (fi * per_file + r) % 10
                hwc = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                f.write(bytes([label]) + hwc.transpose(2, 0, 1).tobytes())
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(CIFAR_NAMES) + "\n")
    return root
