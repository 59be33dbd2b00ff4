"""Batching the views of a test: crops of several images and scales go
through the network ``batch_size`` at a time, dense inputs of one size
together up to the same number of pixels, never padded into one batch.
What comes back is each view's class scores, matched to its image by a tag.
"""
import numpy as np

from ..autograd import Tensor, no_grad
from ..backend import as_numpy
from ..functional.loss import softmax
from .views import crop_positions, dense_window


def _param(model):
    return next(iter(model.parameters()))


def _to_input(batch, model):
    """Host batch -> Tensor on the model's device, in its parameters' dtype."""
    p = _param(model)
    return Tensor(p.device.asarray(batch, dtype=p.dtype), device=p.device)


def _posteriors(scores):
    """(B, K) scores -> (B, K) float64 soft-max posteriors."""
    return softmax(np.asarray(scores, dtype=np.float64), axis=1)


def pool_score_map(score_map, pool="mean"):
    """Spatially pool class score maps: (B, K, OH, OW) -> (B, K) float64.

    pool="mean" (default) averages the map, pool="sum" sum-pools it.
    """
    s = np.asarray(score_map, dtype=np.float64)
    if s.ndim != 4:
        raise ValueError(f"expected class score maps of shape (B, K, OH, OW), got {s.shape}")
    if pool == "mean":
        return s.mean(axis=(2, 3))
    if pool == "sum":
        return s.sum(axis=(2, 3))
    raise ValueError(f"unknown pooling {pool!r}; expected 'mean' or 'sum'")


class _Batcher:
    """Queue (tag, (3, h, w) array) items; run them through ``forward`` in
    batches of equal-shaped inputs; accumulate the per-item posteriors
    (float64 sums and counts) per tag.

    Items wait in one bucket per input shape, so same-sized views of
    different images share a forward pass even when several scales are
    interleaved. All buckets together never hold more than ``max_pixels``
    input pixels (one item larger than that is run alone).
    forward: (B, 3, h, w) host array -> (B, K) posteriors, float64, host.
    """

    def __init__(self, forward, max_pixels):
        self.forward, self.max_pixels = forward, max_pixels
        self.buckets, self.pixels = {}, 0
        self.sums, self.counts = {}, {}
        self.forward_calls = 0

    def add(self, tag, x):
        px = x.shape[1] * x.shape[2]
        if self.pixels and self.pixels + px > self.max_pixels:
            self.flush()
        self.buckets.setdefault(x.shape, []).append((tag, x))
        self.pixels += px
        if self.pixels >= self.max_pixels:
            self.flush()

    def flush(self):
        """Run every waiting item."""
        buckets, self.buckets, self.pixels = self.buckets, {}, 0
        for items in buckets.values():
            post = self.forward(np.stack([x for _, x in items]))
            self.forward_calls += 1
            for (tag, _), p in zip(items, post):
                if tag in self.sums:
                    self.sums[tag] += p
                    self.counts[tag] += 1
                else:
                    self.sums[tag] = p.copy()
                    self.counts[tag] = 1

    def pop(self, tag):
        """Mean posterior of ``tag`` (after flush): (K,) float64."""
        return self.sums.pop(tag) / self.counts.pop(tag)


def _crop_forward(model):
    def forward(batch):
        with no_grad():
            return _posteriors(as_numpy(model(_to_input(batch, model)).data))
    return forward


def _dense_forward(dense, pool):
    def forward(batch):
        with no_grad():
            return _posteriors(pool_score_map(as_numpy(dense(_to_input(batch, dense)).data), pool))
    return forward


def _queue_dense(batcher, tag, x, crop, flip):
    x = np.ascontiguousarray(dense_window(x, crop))
    batcher.add(tag, x)
    if flip:
        batcher.add(tag, np.ascontiguousarray(x[:, :, ::-1]))


def _queue_crops(batcher, tag, x, crop, grid, flip):
    for y, x0 in crop_positions(x.shape[1], x.shape[2], crop, grid):
        c = x[:, y:y + crop, x0:x0 + crop]
        batcher.add(tag, np.ascontiguousarray(c))
        if flip:
            batcher.add(tag, np.ascontiguousarray(c[:, :, ::-1]))
