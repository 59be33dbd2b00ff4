"""Dataset protocol shared by every dataset of the data pipeline (paper §3.1).

The VGG training recipe (§3.1) starts from decoded training images; every
dataset here hands them out in one form so the transforms and the loader need
not know where an image came from:

* ``len(ds)``            number of samples;
* ``ds[i] -> (img, y)``  ``img`` an HWC uint8 RGB array (H, W vary per image),
                         ``y`` a Python int in ``range(len(ds.classes))``;
* ``ds.classes``         list of class names, index = label;
* ``ds.describe(i)``     a short human-readable origin (file path, record) used
                         in warnings about bad samples.

A sample that cannot be decoded raises :class:`CorruptImageError`, which the
loader may skip; every other exception is a bug or a setup problem and is
never swallowed.
"""

import operator

import numpy as np

__all__ = ["CorruptImageError", "Dataset", "check_image"]


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded (truncated, not an image...).

    The message always names the file so that a skipped sample can be found
    and removed from a data set.
    """


class Dataset:
    """Base class for map-style datasets: ``ds[i] -> (img, label)``.

    ``img`` is an HWC ``uint8`` RGB array of shape (H, W, 3); ``label`` an
    ``int``.  Subclasses implement ``__len__``, ``_get(i)`` (with ``i``
    already checked and non-negative) and may override :meth:`describe`.
    """

    classes: list = []

    def __len__(self):
        raise NotImplementedError

    def _get(self, i):
        raise NotImplementedError

    def _index(self, i):
        # operator.index accepts numpy integers (the loader indexes with them)
        # and rejects floats, which would otherwise be silently truncated.
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__} indices must be integers, got {type(i).__name__}"
            ) from None
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {type(self).__name__} of length {n}")
        return i

    def __getitem__(self, i):
        return self._get(self._index(i))

    def __iter__(self):
        # Without this, Python would fall back to the legacy __getitem__
        # protocol, which works but hides the length from tools like tqdm.
        for i in range(len(self)):
            yield self[i]

    def describe(self, i):
        """Return a short string saying where sample ``i`` comes from."""
        return f"{type(self).__name__}[{self._index(i)}]"


def check_image(img, where="image"):
    """Raise ValueError unless ``img`` is an HWC uint8 RGB array (H, W, 3).

    Transforms call this on their input so that a wrong layout (CHW, float,
    grayscale) is reported where it enters instead of as a shape error later.
    """
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{where}: expected an HWC uint8 numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{where}: expected shape (H, W, 3) (HWC RGB), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"{where}: expected dtype uint8, got {img.dtype}")
    return img


class Subset(Dataset):
    """Images ``indices`` of ``dataset``, in that order, with its classes and labels."""

    def __init__(self, dataset, indices, note=""):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.classes = list(getattr(dataset, "classes", []))
        self.labels = np.asarray(dataset.labels)[self.indices]
        self.note = note  # what the subset is, for reports

    def __len__(self):
        return len(self.indices)

    def _get(self, i):
        return self.dataset[int(self.indices[i])]

    def describe(self, i):
        return self.dataset.describe(int(self.indices[self._index(i)]))


def stratified_subset(dataset, n, seed=0):
    """``n`` images of ``dataset``, each class in its proportion of the whole.

    Every class gets n x (its share), rounded by largest remainders; within a
    class the images are a seeded random choice. They come back in index
    order. The first n images of a sorted folder would be one class only.
    ``dataset.labels`` (every minivgg data set has it) gives the classes
    without decoding an image. A ``Subset`` whose ``note`` says what it is.
    """
    total = len(dataset)
    if not 1 <= n <= total:
        raise ValueError(f"a subset of {n} images of a data set of {total}: expected 1..{total}")
    if n == total:
        return Subset(dataset, np.arange(total), note="")
    labels = np.asarray(dataset.labels)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n / total)
    take = np.floor(exact).astype(np.int64)
    short = n - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    rng = np.random.default_rng([seed, 7])  # 7: this use's stream tag
    chosen = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
              for c, k in zip(classes, take) if k]
    return Subset(dataset, np.sort(np.concatenate(chosen)),
                  note=f"a class-stratified sample of {n} of {total} images (seed {seed})")
