"""The VGG paper's test protocols (§3.2 "Testing", §4.1-§4.4) and its metrics.

Shape letters: N images, K classes, C=3 channels, H x W an image, Q the test
scale (the image's shorter side after isotropic rescaling), crop the training
crop side (the model's ``input_size``, 224 in the paper), OH x OW the class
score map of the dense network.

Paper section                          code
-------------------------------------  ------------------------------------------
§3.2 FC layers as convolutions          ``VGG.to_fully_conv()`` (models/vgg.py)
§3.2 dense evaluation (+ flip)          ``dense_score_map``, ``dense_scores``
§3.2/§4.3 multi-crop, 5x5 grid x flips  ``crop_positions``, ``multicrop_scores``
§4.1 single test scale Q (Table 3)      ``single_scale``; Table 3 is dense at that one Q
(a quick check, not in the paper)       ``single_crop_scores``: one centre crop
§4.2 multi-scale test, Q per S          ``test_scales``, ``check_scales``, ``predict``
§4.3 dense + multi-crop (Table 5)       ``predict(..., "dense+multicrop")``
§4.4 ConvNet fusion (Table 6)           ``fuse_posteriors``, ``evaluate([net, net2])``
top-1 / top-5 error                     ``topk_correct``, ``topk_error``
whole data sets, tables                 ``EvalNet``, ``evaluate``, ``format_report``
§2.1 mean subtraction, other weights'   ``normalise``, ``EvalNet.preprocess`` (presets of
  conventions                            data/preprocess.py), ``EvalNet.from_file``

Every protocol ends in soft-max class posteriors, and everything that is
combined (flips, crops, scales, protocols, models) is combined by averaging
posteriors, as the paper does ("the resulting class posteriors were
averaged", §4.2; "averaging their soft-max class posteriors", §4.3/§4.4).
Within one protocol each scale contributes the same number of views (2 for
dense, 2 x grid^2 for multi-crop), so the average over all views equals the
average of the per-scale averages. Dense + multi-crop gives the two
protocols equal weight (not 150 crops against 6 dense views).

Memory: images of different sizes are never padded into one batch. The
inputs of one forward pass never exceed ``batch_size`` crops' worth of
pixels: crops are batched ``batch_size`` at a time (across images and
scales), dense inputs of equal size are batched up to the same pixel budget
(always at least one image, which may be larger than the budget).
"""
import dataclasses
import numbers
import warnings

import numpy as np

from .autograd import Tensor, no_grad
from .backend import as_numpy
from .data.transforms import parse_scale
from .functional.loss import softmax
from .tables import render_table

__all__ = [
    "PROTOCOLS", "SCALE_OFFSET", "GRID",
    "test_scales", "single_scale", "default_scales", "check_scales", "check_protocol",
    "parse_scales",
    "rescale", "normalise", "as_preprocess", "crop_positions",
    "dense_score_map", "pool_score_map", "dense_scores", "multicrop_scores",
    "single_crop_scores", "predict",
    "EvalNet", "check_same_classes", "fuse_posteriors",
    "topk_correct", "topk_error", "confusion_matrix", "per_class_accuracy",
    "EvalRow", "EvalReport", "evaluate", "format_report",
]

#: The test protocols: one centre crop at one scale; dense (fully-conv) over
#: the whole image; 5x5 x 2 flips crops per scale; both, posteriors averaged.
PROTOCOLS = ("single", "dense", "multicrop", "dense+multicrop")

#: §4.2: "Q = {S - 32, S, S + 32}" for a model trained at a fixed S.
SCALE_OFFSET = 32

#: §4.3 / Table 5: "5 x 5 regular grid with 2 flips" per scale.
GRID = 5


# ---------------------------------------------------------------------------
# Test scales (§4.1, §4.2)
# ---------------------------------------------------------------------------

def _scale_range(train_scale):
    """(S_min, S_max) from an int S or an [S_min, S_max] pair."""
    if isinstance(train_scale, str):
        raise ValueError(f"training scale must be an int S or a pair [S_min, S_max], "
                         f"got {train_scale!r}")
    return parse_scale(train_scale)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def test_scales(train_scale, offset=SCALE_OFFSET):
    """The multi-scale test set of §4.2 for a model trained at ``train_scale``.

    int S -> [S - offset, S, S + offset]  (fixed-scale training, offset 32);
    [S_min, S_max] -> [S_min, (S_min + S_max) // 2, S_max]  (scale jittering).
    Returns a list of 3 ints. Not checked against the crop: see check_scales.
    """
    lo, hi = _scale_range(train_scale)
    if lo == hi and not isinstance(train_scale, (list, tuple)):
        return [lo - offset, lo, lo + offset]
    return [lo, (lo + hi) // 2, hi]


test_scales.__test__ = False  # a library function, not a pytest test


def single_scale(train_scale):
    """§4.1's single test scale: Q = S, or Q = (S_min + S_max) // 2 if jittered."""
    lo, hi = _scale_range(train_scale)
    return (lo + hi) // 2


def parse_scales(text):
    """'256,384,512' -> [256, 384, 512] (the --scales option); ValueError naming the bad part."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ValueError(f"--scales {text!r} lists no scale; expected e.g. 224,256,288")
    out = []
    for p in parts:
        if not p.isdigit() or int(p) <= 0:
            raise ValueError(f"--scales: {p!r} is not a positive integer (in {text!r}); "
                             f"expected e.g. 224,256,288")
        out.append(int(p))
    return out


def check_protocol(protocol):
    """Return ``protocol`` if it is one of PROTOCOLS, else raise ValueError."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown test protocol {protocol!r}; expected one of "
                         f"{', '.join(PROTOCOLS)}")
    return protocol


def default_scales(train_scale, protocol):
    """Test scales for ``protocol``: [single_scale] for "single", else test_scales."""
    check_protocol(protocol)
    if train_scale is None:
        raise ValueError("the training scale S is unknown (no meta['train']['scale'] in the "
                         "checkpoint); pass the test scales explicitly (--scales Q1,Q2,Q3)")
    if protocol == "single":
        return [single_scale(train_scale)]
    return test_scales(train_scale)


def check_scales(scales, crop, who="test scales"):
    """Validate test scales against the crop: a list of ints Q >= crop.

    Raises ValueError for an empty list, a non-integer, or Q < crop (the
    classifier cannot see a crop x crop window in a smaller image); the
    message names the bad values and suggests scales to pass instead.
    """
    scales = list(scales) if scales is not None else []
    if not scales:
        raise ValueError(f"{who}: the list of test scales is empty; give at least one Q "
                         f"(shorter image side), e.g. {crop}")
    bad = [q for q in scales if not _is_int(q) or q <= 0]
    if bad:
        raise ValueError(f"{who}: test scales must be positive ints, got {bad!r} in {scales!r}")
    small = [q for q in scales if q < crop]
    if small:
        fixed = sorted(set(max(int(q), crop) for q in scales))
        raise ValueError(
            f"{who}: test scale(s) Q={small} are smaller than the crop {crop} the model was "
            f"trained on; every Q must be >= {crop}. Pass the scales explicitly instead, e.g. "
            f"scales={fixed} (--scales {','.join(map(str, fixed))})")
    return [int(q) for q in scales]


# ---------------------------------------------------------------------------
# Pre-processing
# ---------------------------------------------------------------------------

def rescale(img, Q):
    """Isotropic rescale so the shorter side is Q (§3.2), bilinear.

    img (H, W, 3) uint8 -> (Q, round(W*Q/H), 3) or (round(H*Q/W), Q, 3) uint8.
    The same resampling as training's RescaleShorter.
    """
    from .data.transforms import RescaleShorter
    return RescaleShorter(int(Q))(img)


def normalise(img, mean_rgb, pixel_scale=1.0):
    """uint8 RGB -> the network's input, channels first.

    img (H, W, 3) uint8 -> (3, H, W) float32. mean_rgb: (3,) in [0, 1] (the
    training mean RGB, subtracted from [0, 1] pixels: the "minivgg" preset of
    data.preprocess), or a data.preprocess.Preprocess (e.g. "torchvision").
    """
    return as_preprocess(mean_rgb, pixel_scale)(img)


def as_preprocess(mean_rgb, pixel_scale=1.0):
    """A Preprocess as is; 3 numbers -> the "minivgg" preset with that mean
    (times ``pixel_scale``: 255 for a model trained in the paper's 0-255 units)."""
    from .data.preprocess import Preprocess, preset
    if isinstance(mean_rgb, Preprocess):
        return mean_rgb
    return preset("minivgg", mean_rgb, pixel_scale=pixel_scale)


def crop_positions(height, width, crop, grid=GRID):
    """Top-left corners of the regular grid x grid crops (§4.3 multi-crop).

    Along each axis the ``grid`` offsets are evenly spaced from 0 to
    dim - crop inclusive (so the four corner crops are always included),
    rounded to pixels; grid=1 gives the centre crop ((dim - crop) // 2, as
    CenterCrop). When dim - crop < grid - 1 some positions repeat; they are
    kept so every scale contributes grid^2 crops to the average.
    Returns a list of grid*grid (y, x) int pairs, row-major.
    """
    if not _is_int(grid) or grid < 1:
        raise ValueError(f"crop grid must be a positive int, got {grid!r}")
    if height < crop or width < crop:
        raise ValueError(f"a {crop}x{crop} crop does not fit in a {height}x{width} image")

    def offsets(dim):
        if grid == 1:
            return [(dim - crop) // 2]
        return [int(v) for v in np.round(np.linspace(0, dim - crop, grid))]

    return [(y, x) for y in offsets(height) for x in offsets(width)]


# ---------------------------------------------------------------------------
# Running a network
# ---------------------------------------------------------------------------

def _param(model):
    return next(iter(model.parameters()))


def _to_input(batch, model):
    """Host batch -> Tensor on the model's device, in its parameters' dtype."""
    p = _param(model)
    return Tensor(p.device.asarray(batch, dtype=p.dtype), device=p.device)


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


def _queue_dense(batcher, tag, x, flip):
    batcher.add(tag, x)
    if flip:
        batcher.add(tag, np.ascontiguousarray(x[:, :, ::-1]))


def _queue_crops(batcher, tag, x, crop, grid, flip):
    for y, x0 in crop_positions(x.shape[1], x.shape[2], crop, grid):
        c = x[:, y:y + crop, x0:x0 + crop]
        batcher.add(tag, np.ascontiguousarray(c))
        if flip:
            batcher.add(tag, np.ascontiguousarray(c[:, :, ::-1]))


def _crop_size(model):
    crop = getattr(model, "input_size", None)
    if crop is None:
        raise ValueError(f"{type(model).__name__} has no input_size; expected a minivgg VGG")
    return int(crop)


def dense_score_map(model, img, Q, mean_rgb, pixel_scale=1.0):
    """The class score map of the dense network on the whole image (§3.2).

    model: a VGG (converted with to_fully_conv(), weights shared) or a
    FullyConvVGG. img (H, W, 3) uint8 RGB of any size and aspect ratio,
    rescaled so its shorter side is Q (>= the training crop), no crop.
    Returns (K, OH, OW) float64 raw class scores (before soft-max), with
    OH = H'//32 - k + 1 for the rescaled height H' and k = crop//32.
    """
    dense = _fully_conv(model)
    check_scales([Q], _crop_size(dense), "dense_score_map")
    x = normalise(rescale(img, Q), mean_rgb, pixel_scale)
    with _EvalMode(dense), no_grad():
        out = dense(_to_input(x[None], dense))
    return np.asarray(as_numpy(out.data)[0], dtype=np.float64)


def dense_scores(model, img, Q, mean_rgb, flip=True, pool="mean", pixel_scale=1.0):
    """Dense evaluation at one scale (§3.2): (K,) float64 soft-max posteriors.

    img (H, W, 3) uint8 is rescaled to shorter side Q (no crop) and passed
    once through the fully-convolutional net, giving a (K, OH, OW) class
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
        _queue_dense(b, 0, x, flip)
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


# ---------------------------------------------------------------------------
# A model ready for evaluation, and whole-image prediction
# ---------------------------------------------------------------------------

class EvalNet:
    """A VGG with what testing needs: its dense twin, input preprocessing,
    classes and training scale.

    model: a VGG (input_size = the training crop). mean_rgb: (3,) in [0, 1]
    (the "minivgg" preset), or a data.preprocess.Preprocess (any preset).
    train_scale: int S or [S_min, S_max] (None: scales must then be given).
    classes: list of K class names (None: "0".."K-1"). name: a label for
    tables (default "VGG-<cfg>"). pixel_scale: the input units the model was
    trained in (1: [0, 1] minus the mean; 255: the paper's 0-255 units).
    """

    def __init__(self, model, mean_rgb, train_scale=None, classes=None, name=None, path=None,
                 pixel_scale=1.0):
        self.model = model
        self.dense = model.to_fully_conv()
        try:
            self.preprocess = as_preprocess(mean_rgb, pixel_scale)
        except ValueError as e:
            raise ValueError(f"mean_rgb must be 3 numbers (R, G, B) in [0, 1] or a Preprocess, "
                             f"got {mean_rgb!r} ({e})") from None
        self.mean_rgb = self.preprocess.mean_rgb
        # The input units of a minivgg-trained model (1: [0, 1] minus the mean;
        # 255: the paper's 0-255 units), as its preprocessing records them.
        self.pixel_scale = self.preprocess.scale * 255.0
        if train_scale is not None:
            _scale_range(train_scale)
        self.train_scale = train_scale
        self.crop = _crop_size(model)
        k = model.num_classes
        self.classes_known = classes is not None
        self.classes = list(classes) if classes is not None else [str(i) for i in range(k)]
        if len(self.classes) != k:
            raise ValueError(f"{len(self.classes)} class names for a model with {k} outputs")
        self.cfg = getattr(model, "cfg", "?")
        self.name = name or f"VGG-{self.cfg}"
        self.path = path
        self.weights = None  # the minivgg.io.LoadedWeights, for nets made by from_file

    @classmethod
    def from_file(cls, path, cfg=None, preset=None):
        """An EvalNet from any weights file minivgg.io reads: a checkpoint
        (save_checkpoint: meta model, classes, preprocess or mean_rgb,
        train.scale), a .safetensors, or a torchvision/timm .pth.

        cfg: the configuration the file must hold (None: the file's).
        preset: "minivgg", "torchvision", "caffe" or a Preprocess, instead of
        the file's own (torchvision's for files that record none).
        Raises minivgg.io.WeightsError (a ValueError) naming the file.
        """
        from .io import load_model
        w = load_model(path, cfg=cfg, preset=preset)
        crop = (w.meta.get("train") or {}).get("crop")
        if crop is not None and int(crop) != w.model.input_size:
            warnings.warn(f"checkpoint {w.path!r}: meta train.crop={crop} differs from the "
                          f"model's input_size={w.model.input_size}; using "
                          f"{w.model.input_size}", stacklevel=2)
        net = cls(w.model, w.preprocess, w.train_scale, w.classes, path=w.path)
        net.weights = w
        return net

    @classmethod
    def from_checkpoint(cls, path):
        """``from_file`` for a checkpoint written by save_checkpoint."""
        return cls.from_file(path)

    @property
    def train_scale_label(self):
        """'256', '256-512' or '?' (for tables)."""
        if self.train_scale is None:
            return "?"
        lo, hi = _scale_range(self.train_scale)
        return str(lo) if not isinstance(self.train_scale, (list, tuple)) else f"{lo}-{hi}"

    def scales_for(self, protocol, scales=None):
        """Checked test scales: ``scales`` if given, else default_scales."""
        check_protocol(protocol)
        if scales is None:
            scales = default_scales(self.train_scale, protocol)
            who = (f"{self.name} (train S={self.train_scale_label}, crop {self.crop}) "
                   f"default {protocol} scales {scales}")
        else:
            who = f"{self.name} (crop {self.crop})"
        return check_scales(scales, self.crop, who)

    def _batchers(self, batch_size, pool="mean"):
        budget = batch_size * self.crop * self.crop
        return (_Batcher(_crop_forward(self.model), budget),
                _Batcher(_dense_forward(self.dense, pool), budget))

    def _queue(self, crops, dense, idx, protocol, rescaled, grid):
        """Queue image ``idx``'s views; ``rescaled``: {Q: (H', W', 3) uint8}."""
        for q, r in rescaled.items():
            x = self.preprocess(r)
            if protocol == "single":
                _queue_crops(crops, (idx, "crops"), x, self.crop, 1, False)
            if protocol in ("multicrop", "dense+multicrop"):
                _queue_crops(crops, (idx, "crops"), x, self.crop, grid, True)
            if protocol in ("dense", "dense+multicrop"):
                _queue_dense(dense, (idx, "dense"), x, True)

    @staticmethod
    def _collect(crops, dense, idx, protocol):
        parts = []
        if protocol != "dense":
            parts.append(crops.pop((idx, "crops")))
        if protocol in ("dense", "dense+multicrop"):
            parts.append(dense.pop((idx, "dense")))
        return sum(parts) / len(parts)

    def predict(self, img, protocol="dense", scales=None, batch_size=64, grid=GRID):
        """Posteriors of one image under ``protocol`` over ``scales``.

        img (H, W, 3) uint8 RGB -> (K,) float64 soft-max posteriors, the
        average over scales (and over the two protocols for
        "dense+multicrop").
        """
        scales = self.scales_for(protocol, scales)
        _check_batch_size(batch_size)
        crops, dense = self._batchers(batch_size)
        with _EvalMode(self.model):
            self._queue(crops, dense, 0, protocol, {q: rescale(img, q) for q in scales}, grid)
            crops.flush()
            dense.flush()
        return self._collect(crops, dense, 0, protocol)


def predict(model, img, protocol, scales, mean_rgb, batch_size=64, grid=GRID, pixel_scale=1.0):
    """Posteriors of one image for a bare VGG: (K,) float64.

    img (H, W, 3) uint8; protocol in PROTOCOLS; scales a list of Q (>= crop);
    mean_rgb (3,) in [0, 1] or a Preprocess. See EvalNet.predict.
    """
    return EvalNet(model, mean_rgb, pixel_scale=pixel_scale).predict(img, protocol, scales,
                                                                     batch_size, grid)


# ---------------------------------------------------------------------------
# Fusion and metrics
# ---------------------------------------------------------------------------

def check_same_classes(nets):
    """Raise ValueError unless the EvalNets can be fused: same number of
    outputs and, where names are known, the same class list in the same order."""
    first = next((n for n in nets if n.classes_known), nets[0])
    for other in nets:
        if other is first:
            continue
        if len(other.classes) != len(first.classes) or (
                other.classes_known and first.classes_known
                and list(other.classes) != list(first.classes)):
            raise ValueError(
                f"cannot fuse models trained on different classes: {_who(first)} has "
                f"{_short(first.classes)} but {_who(other)} has {_short(other.classes)}")


def _who(net):
    return repr(net.path) if net.path else net.name


def _short(classes, n=6):
    cl = list(classes)
    body = ", ".join(map(str, cl[:n])) + (", ..." if len(cl) > n else "")
    return f"{len(cl)} classes [{body}]"


def fuse_posteriors(posteriors):
    """ConvNet fusion (§4.4): average the soft-max posteriors of several models.

    posteriors: a sequence of M arrays, each (N, K) (or (K,)) -> same shape,
    float64.
    """
    ps = [np.asarray(p, dtype=np.float64) for p in posteriors]
    if not ps:
        raise ValueError("fuse_posteriors: no posteriors to fuse")
    if any(p.shape != ps[0].shape for p in ps):
        raise ValueError(f"fuse_posteriors: shapes differ: {[p.shape for p in ps]}")
    return sum(ps) / len(ps)


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


# ---------------------------------------------------------------------------
# Whole data sets
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class EvalRow:
    """One line of a Table 3-6 style result."""
    model: str          # "VGG-D" or "fusion (VGG-D + VGG-E)"
    train_scale: str    # "256", "256-512", or "" for fusion
    protocol: str
    scales: str         # "224,256,288"
    top1: float         # error, fraction
    top5: float
    images: int


@dataclasses.dataclass
class EvalReport:
    """What ``evaluate`` returns.

    rows: EvalRow per model (and one "fusion" row for several models).
    posteriors: list of (N, K) float64 arrays, one per model; fused: (N, K)
    or None; labels (N,) int64; indices (N,) dataset indices evaluated;
    skipped: [(index, description, message)] of unreadable images.
    """
    rows: list
    posteriors: list
    fused: object
    labels: np.ndarray
    indices: np.ndarray
    skipped: list
    classes: list
    topk: int = 5

    def final_posteriors(self):
        """The fused posteriors, or the only model's: (N, K)."""
        return self.fused if self.fused is not None else self.posteriors[0]

    def confusion_matrix(self):
        """(K, K) int64 of the final (fused) posteriors."""
        return confusion_matrix(self.final_posteriors(), self.labels, len(self.classes))

    def per_class_accuracy(self):
        """(K,) float64 of the final (fused) posteriors."""
        return per_class_accuracy(self.confusion_matrix())


def evaluate(nets, dataset, protocol="dense", scales=None, batch_size=64, limit=None,
             grid=GRID, progress=True, topk=5):
    """Evaluate one EvalNet, or fuse several, on ``dataset`` under ``protocol``.

    nets: an EvalNet or a list of them (fusion: posteriors averaged).
    dataset: ds[i] -> ((H, W, 3) uint8, label), ds.classes, ds.describe(i).
    scales: list of Q used for every net, or None for each net's default.
    limit: evaluate the first ``limit`` images only.
    Images raising CorruptImageError are skipped with a warning and listed
    in report.skipped. Every argument is checked before the first image.
    Returns an EvalReport; posteriors are (N, K) with N the images read.
    """
    from tqdm import tqdm

    from .data.base import CorruptImageError

    nets = [nets] if isinstance(nets, EvalNet) else list(nets)
    if not nets:
        raise ValueError("evaluate: no model given")
    check_protocol(protocol)
    _check_batch_size(batch_size)
    if scales is not None:
        scales = list(scales)
    per_net_scales = [n.scales_for(protocol, scales) for n in nets]
    check_same_classes(nets)
    ds_classes = list(getattr(dataset, "classes", []) or [])
    known = [net for net in nets if net.classes_known]
    ref = known[0] if known else nets[0]
    if ds_classes and (len(ds_classes) != len(ref.classes)
                       or (known and ds_classes != list(ref.classes))):
        raise ValueError(f"the data set has {_short(ds_classes)} but {_who(ref)} was trained "
                         f"on {_short(ref.classes)}; labels would not match")
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit!r}")

    batchers = [net._batchers(batch_size) for net in nets]
    labels, indices, skipped = [], [], []
    modes = [_EvalMode(net.model) for net in nets]
    for m in modes:
        m.__enter__()
    bar = tqdm(total=n, desc=protocol, unit="img", disable=not progress)
    try:
        for i in range(n):
            bar.update(1)
            try:
                img, label = dataset[i]
            except CorruptImageError as e:
                desc = dataset.describe(i) if hasattr(dataset, "describe") else f"#{i}"
                warnings.warn(f"skipping unreadable image {desc}: {e}", stacklevel=2)
                skipped.append((i, desc, str(e)))
                continue
            cache = {}
            for net, qs, (crops, dense) in zip(nets, per_net_scales, batchers):
                for q in qs:
                    if q not in cache:
                        cache[q] = rescale(img, q)
                net._queue(crops, dense, i, protocol, {q: cache[q] for q in qs}, grid)
            labels.append(int(label))
            indices.append(i)
        for crops, dense in batchers:  # inside the bar, so its rate counts this work
            crops.flush()
            dense.flush()
    finally:
        bar.close()
        for m in modes:
            m.__exit__()

    k = nets[0].model.num_classes
    posteriors = []
    for net, (crops, dense) in zip(nets, batchers):
        p = np.zeros((len(indices), k), dtype=np.float64)
        for row, i in enumerate(indices):
            p[row] = net._collect(crops, dense, i, protocol)
        posteriors.append(p)
    labels = np.asarray(labels, dtype=np.int64)
    rows = []
    for net, qs, p in zip(nets, per_net_scales, posteriors):
        rows.append(EvalRow(net.name, net.train_scale_label, protocol, ",".join(map(str, qs)),
                            topk_error(p, labels, 1), topk_error(p, labels, topk), len(labels)))
    fused = None
    if len(nets) > 1:
        fused = fuse_posteriors(posteriors)
        rows.append(EvalRow("fusion (" + " + ".join(n.name for n in nets) + ")", "", protocol,
                            "per model", topk_error(fused, labels, 1),
                            topk_error(fused, labels, topk), len(labels)))
    return EvalReport(rows, posteriors, fused, labels, np.asarray(indices, dtype=np.int64),
                      skipped, list(ref.classes) if known or not ds_classes else ds_classes, topk)


def _pct(v):
    return "n/a" if v != v else f"{100 * v:.2f}"


def format_report(report, fmt="table"):
    """Render an EvalReport like the paper's Tables 3-6.

    fmt: "table" (aligned text), "markdown" or "csv". Returns a string.
    """
    k = min(report.topk, len(report.classes))
    header = ["ConvNet", "train S", "protocol", "test Q", "top-1 err (%)",
              f"top-{k} err (%)", "images"]
    body = [[r.model, r.train_scale, r.protocol, r.scales, _pct(r.top1), _pct(r.top5),
             str(r.images)] for r in report.rows]
    text = render_table(header, body, fmt, right=range(4, len(header)), text_name="table")
    if report.skipped and fmt != "csv":  # CSV stays machine-readable: rows only
        text += (f"\n{len(report.skipped)} unreadable image(s) skipped: "
                 + ", ".join(d for _, d, _ in report.skipped[:5])
                 + (", ..." if len(report.skipped) > 5 else "") + "\n")
    return text
