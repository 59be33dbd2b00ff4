"""A whole data set through the protocols, model by model and fused, and
the table of errors it gives (examples/evaluate_vgg.py prints it).

Memory: the inputs of one forward pass never exceed ``batch_size`` crops'
worth of pixels (batching.py), whatever the images' sizes.
"""
import dataclasses
import warnings

import numpy as np

from ..tables import render_table
from .evalnet import EvalNet, _short, _who, check_same_classes, fuse_posteriors
from .metrics import confusion_matrix, per_class_accuracy, topk_error
from .protocols import _EvalMode, _check_batch_size
from .scales import check_protocol
from .views import GRID, rescale


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
             grid=GRID, progress=True, topk=5, on_skip=None):
    """Evaluate one EvalNet, or fuse several, on ``dataset`` under ``protocol``.

    nets: an EvalNet or a list of them (fusion: posteriors averaged).
    dataset: ds[i] -> ((H, W, 3) uint8, label), ds.classes, ds.describe(i).
    scales: list of Q used for every net, or None for each net's default.
    limit: evaluate the first ``limit`` images only.
    Images raising CorruptImageError are skipped with a warning (or
    ``on_skip(description, message)``) and listed in report.skipped. Every argument is checked before the first image.
    Returns an EvalReport; posteriors are (N, K) with N the images read.
    """
    from tqdm import tqdm

    from ..data.base import CorruptImageError

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
                if on_skip is not None:
                    on_skip(desc, str(e))
                else:
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
