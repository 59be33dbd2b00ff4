"""The data a run trains and validates on, and the training set's mean RGB
(§2.1: "subtracting the mean RGB value, computed on the training set")."""
import json
import os

import numpy as np

from .. import runfolder

#: Generated training images of the synthetic data when --train-size is 0.
SYNTHETIC_TRAIN_SIZE = 48000


def make_datasets(recipe):
    """(train, val) datasets for ``recipe.data``.

    ``imagefolder:DIR`` is the data set root: DIR/train/ for training and
    DIR/val/ (else DIR/test/) for validation. ``--train-size N`` takes a
    class-stratified sample of N training images of a real data set (all of
    them by default); of the synthetic data it generates N (default 48,000).
    """
    from ..data import CIFAR10, ImageFolder, SyntheticShapes, split_folder, stratified_subset
    kind, _, path = recipe.data.partition(":")
    if kind == "synthetic":
        return (SyntheticShapes(recipe.train_size or SYNTHETIC_TRAIN_SIZE, recipe.image_size,
                                recipe.seed, "train"),
                SyntheticShapes(recipe.val_size, recipe.image_size, recipe.seed, "val"))
    if kind == "cifar10":
        train, val = CIFAR10(path, train=True), CIFAR10(path, train=False)
    else:
        train_dir, _ = split_folder(path, "train", split_option=False)
        val_dir, _ = split_folder(path, split_option=False)
        train, val = ImageFolder(train_dir), ImageFolder(val_dir)
        if train.classes != val.classes:
            raise ValueError(f"class folders differ between {train_dir} and {val_dir}: "
                             f"{sorted(set(train.classes) ^ set(val.classes))}")
    if recipe.train_size and recipe.train_size < len(train):
        train = stratified_subset(train, recipe.train_size, recipe.seed)
    return train, val


def mean_rgb_cached(recipe, train_ds, on_skip=None):
    """Mean RGB of the training set, computed once and kept in out/mean_rgb.json."""
    from ..data import compute_mean_rgb
    cache = os.path.join(recipe.out, "mean_rgb.json")
    key = {"data": recipe.data, "n": len(train_ds), "image_size": recipe.image_size,
           "seed": recipe.seed if recipe.data == "synthetic" or recipe.train_size else None,
           "mean_images": recipe.mean_images}
    if os.path.exists(cache):
        try:
            with open(cache) as f:
                stored = json.load(f)
            if stored.get("key") == key:
                return np.asarray(stored["mean_rgb"], np.float64)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is recomputed
    mean = compute_mean_rgb(train_ds, recipe.mean_images or None, progress=recipe.progress,
                            on_skip=on_skip)
    os.makedirs(recipe.out, exist_ok=True)
    runfolder.write_json(cache, {"key": key, "mean_rgb": [float(v) for v in mean]})
    return mean
