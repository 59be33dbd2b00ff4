"""The test protocols of §3.2 and §4, on one image: dense evaluation (the
fully-convolutional net over the whole image, its score map averaged, the
flipped image averaged in), multi-crop (a 5x5 grid of crops and their flips
per scale), one centre crop (a quick check, not in the paper), and their
combinations over scales and protocols.

Every protocol ends in soft-max class posteriors, and everything that is
combined (flips, crops, scales, protocols, models) is combined by averaging
posteriors, as the paper does ("the resulting class posteriors were
averaged", §4.2; "averaging their soft-max class posteriors", §4.3/§4.4).
Within one protocol each scale contributes the same number of views (2 for
dense, 2 x grid^2 for multi-crop), so the average over all views equals the
average of the per-scale averages. Dense + multi-crop gives the two
protocols equal weight (not 150 crops against 6 dense views).

Shape letters: K classes, OH x OW the class score map of the dense network.
"""
import numpy as np

from ..autograd import no_grad
from ..backend import as_numpy
from .batching import _Batcher, _crop_forward, _dense_forward, _queue_crops, _queue_dense, _to_input
from .scales import _is_int, check_scales
from .views import GRID, dense_window, normalise, rescale


class _EvalMode:
    """Put a model in eval mode (no dropout) and restore its mode afterwards.

    Every submodule gets its own mode back: a dense network shares its
    dropout layers with the VGG it came from, and its own ``training`` flag
    may be stale if the VGG's mode changed after ``to_fully_conv()``.
    """

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for m, mode in self.modes:
            object.__setattr__(m, "training", mode)


def _fully_conv(model):
    """The dense network for a VGG (or the argument if it already is one)."""
    return model.to_fully_conv() if hasattr(model, "to_fully_conv") else model


def _crop_size(model):
    crop = getattr(model, "input_size", None)
    if crop is None:
        raise ValueError(f"{type(model).__name__} has no input_size; expected a minivgg VGG")
    return int(crop)


def dense_score_map(model, img, Q, mean_rgb, pixel_scale=1.0):
    """The class score map of the dense network on the whole image (§3.2).

    model: a VGG (converted with to_fully_conv(), weights shared) or a
    FullyConvVGG. img (H, W, 3) uint8 RGB of any size and aspect ratio,
    rescaled so its shorter side is Q (>= the training crop); the rows and
    columns its score map cannot cover are cut equally from both sides
    (views.dense_window). Returns (K, OH, OW) float64 raw class scores
    (before soft-max), with OH = (H' - crop)//32 + 1 for the rescaled
    height H'.
    """
    dense = _fully_conv(model)
    check_scales([Q], _crop_size(dense), "dense_score_map")
    x = np.ascontiguousarray(dense_window(normalise(rescale(img, Q), mean_rgb, pixel_scale),
                                          _crop_size(dense)))
    with _EvalMode(dense), no_grad():
        out = dense(_to_input(x[None], dense))
    return np.asarray(as_numpy(out.data)[0], dtype=np.float64)


def dense_scores(model, img, Q, mean_rgb, flip=True, pool="mean", pixel_scale=1.0):
    """Dense evaluation at one scale (§3.2): (K,) float64 soft-max posteriors.

    img (H, W, 3) uint8 is rescaled to shorter side Q (no crop but the
    few rows and columns the score map cannot cover, views.dense_window)
    and passed once through the fully-convolutional net, giving a (K, OH, OW) class
    score map; the map is spatially pooled to (K,) scores, soft-maxed, and
    with ``flip`` averaged with the posteriors of the mirrored image.

    Pooling. The paper says the map is "spatially averaged (sum-pooled)".
    We average (pool="mean", the paper's word; pool="sum" is available).
    For one image and one scale the two differ by the positive factor
    OH*OW, which does not change the order of the scores, so argmax and the
    top-k are the same. But soft-max is not scale-invariant: softmax(OH*OW *
    s) is much sharper than softmax(s), so once posteriors are averaged
    with another view (the flip, other scales with other OH*OW, multi-crop
    posteriors, other models) sum-pooling gives the larger maps (larger Q)
    more say and lets a confidently wrong view dominate. Averaging keeps
    every view on the scale of a single crop's scores, as the crops are.
    """
    dense = _fully_conv(model)
    check_scales([Q], _crop_size(dense), "dense_scores")
    x = normalise(rescale(img, Q), mean_rgb, pixel_scale)
    b = _Batcher(_dense_forward(dense, pool), max_pixels=2 * x.shape[1] * x.shape[2])
    with _EvalMode(dense):
        _queue_dense(b, 0, x, _crop_size(dense), flip)
        b.flush()
    return b.pop(0)


def multicrop_scores(model, img, Q, mean_rgb, grid=GRID, flip=True, batch_size=64,
                     pixel_scale=1.0):
    """Multi-crop evaluation at one scale (§4.3): (K,) float64 posteriors.

    img (H, W, 3) uint8 is rescaled to shorter side Q; grid x grid crops of
    the model's input_size (crop_positions: corners included) and, with
    ``flip``, their mirror images (2 x 5 x 5 = 50 crops) go through the
    ordinary VGG in batches of at most ``batch_size`` crops
    (batch_size x 3 x crop x crop inputs); their soft-max posteriors are
    averaged.
    """
    crop = _crop_size(model)
    check_scales([Q], crop, "multicrop_scores")
    _check_batch_size(batch_size)
    x = normalise(rescale(img, Q), mean_rgb, pixel_scale)
    b = _Batcher(_crop_forward(model), max_pixels=batch_size * crop * crop)
    with _EvalMode(model):
        _queue_crops(b, 0, x, crop, grid, flip)
        b.flush()
    return b.pop(0)


def single_crop_scores(model, img, Q, mean_rgb, pixel_scale=1.0):
    """One centre crop at scale Q, no flip: (K,) posteriors. The ``single``
    protocol, a quick check the paper does not use: §4.1's single-scale
    evaluation (Table 3) is dense at one Q (``dense_scores``; see
    docs/testing_protocols.md).

    At Q = crop on a square image this is exactly softmax(model(x)).
    """
    return multicrop_scores(model, img, Q, mean_rgb, grid=1, flip=False, batch_size=1,
                            pixel_scale=pixel_scale)


def _check_batch_size(batch_size):
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


