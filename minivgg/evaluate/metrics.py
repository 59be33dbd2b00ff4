"""Top-1 and top-5 error (the paper's metrics), and the confusion matrix."""
import numpy as np

from .scales import _is_int


def _check_scores_labels(scores, labels):
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 2:
        raise ValueError(f"expected scores of shape (N, K), got {s.shape}")
    if y.shape != (s.shape[0],):
        raise ValueError(f"expected labels of shape ({s.shape[0]},), got {y.shape}")
    if y.size and (y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= s.shape[1]):
        raise ValueError(f"labels must be ints in [0, {s.shape[1]}), got {y.dtype} values in "
                         f"[{y.min()}, {y.max()}]")
    return s, y.astype(np.int64)


def topk_correct(scores, labels, k):
    """Whether the true class is among the k highest scores.

    scores (N, K) (posteriors or logits), labels (N,) ints -> (N,) bool.
    k is clipped to K. Ties are broken towards the lower class index (as a
    stable sort of -scores), so constant scores are not all "correct".
    """
    s, y = _check_scores_labels(scores, labels)
    if not _is_int(k) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    n, kk = s.shape
    true = s[np.arange(n), y][:, None]
    cls = np.arange(kk)[None, :]
    rank = ((s > true) | ((s == true) & (cls < y[:, None]))).sum(axis=1)
    return rank < min(k, kk)


def topk_error(scores, labels, k):
    """Top-k error (fraction of images whose true class is not in the top k).

    scores (N, K), labels (N,) -> float in [0, 1] (nan for N = 0).
    """
    c = topk_correct(scores, labels, k)
    return float("nan") if c.size == 0 else float(1.0 - c.mean())


def confusion_matrix(scores, labels, num_classes=None):
    """Counts[true, predicted] with predicted = argmax of scores.

    scores (N, K), labels (N,) -> (K, K) int64 (rows: true class).
    """
    s, y = _check_scores_labels(scores, labels)
    k = num_classes or s.shape[1]
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, s.argmax(axis=1)), 1)
    return cm


def per_class_accuracy(cm):
    """Diagonal over row sums of a confusion matrix: (K, K) -> (K,) float64,
    nan for classes with no image."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / np.maximum(rows, 1), np.nan)
