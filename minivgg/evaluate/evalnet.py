"""A model ready for the test protocols: its weights, its preprocessing,
its training scale (which sets the default test scales) and its classes;
and the fusion of several (§4.4, Table 6: "averaging their soft-max class
posteriors")."""
import warnings

import numpy as np

from .batching import _Batcher, _crop_forward, _dense_forward, _queue_crops, _queue_dense
from .protocols import _EvalMode, _check_batch_size, _crop_size
from .scales import _scale_range, check_protocol, check_scales, default_scales, foreign_scales
from .views import GRID, as_preprocess, rescale


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
        # Files that record no training scale (torchvision, timm) are tested at
        # foreign_scales by default; a bare model without one needs scales given.
        self.scales_default = "train" if train_scale is not None else None

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
        from ..io import load_model
        w = load_model(path, cfg=cfg, preset=preset)
        crop = (w.meta.get("train") or {}).get("crop")
        if crop is not None and int(crop) != w.model.input_size:
            warnings.warn(f"checkpoint {w.path!r}: meta train.crop={crop} differs from the "
                          f"model's input_size={w.model.input_size}; using "
                          f"{w.model.input_size}", stacklevel=2)
        net = cls(w.model, w.preprocess, w.train_scale, w.classes, path=w.path)
        net.weights = w
        if w.train_scale is None:
            net.scales_default = "foreign"
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
        """Checked test scales: ``scales`` if given, else default_scales of
        the training scale (foreign_scales for a file that records none)."""
        check_protocol(protocol)
        if scales is None and self.scales_default == "foreign":
            scales = foreign_scales(self.crop, protocol)
            who = f"{self.name} (no training scale, crop {self.crop}) default {protocol} scales"
        elif scales is None:
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
                _queue_dense(dense, (idx, "dense"), x, self.crop, True)

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


def predict(model, img, protocol, scales, mean_rgb, batch_size=64, grid=GRID, pixel_scale=1.0):
    """Posteriors of one image for a bare VGG: (K,) float64.

    img (H, W, 3) uint8; protocol in PROTOCOLS; scales a list of Q (>= crop);
    mean_rgb (3,) in [0, 1] or a Preprocess. See EvalNet.predict.
    """
    return EvalNet(model, mean_rgb, pixel_scale=pixel_scale).predict(img, protocol, scales,
                                                                     batch_size, grid)
