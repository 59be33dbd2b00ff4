"""The paper's training procedure (§3.1): mini-batch SGD with momentum and
weight decay on the softmax cross-entropy, dropout on FC1/FC2, the learning
rate divided by 10 when validation accuracy stops improving, the
initialisation policies (random, or the deeper nets started from a trained
configuration A), and the training-scale schedule S = 256 -> 384 -> [256, 512].

``Recipe`` holds every setting (the command line of examples/train_vgg.py
maps onto it one to one); ``Trainer(recipe).run()`` trains, validates,
logs and checkpoints. Checkpoints hold everything needed to continue
bit-identically on the CPU: weights, momentum buffers, scheduler, epoch and
batch position, the dropout RNG state, the recipe and the mean RGB.
"""
import dataclasses
import json
import math
import os
import signal
import sys
import time
import warnings

import numpy as np

from . import functional as F
from . import random as mrandom
from .autograd import Tensor, no_grad
from .backend import as_numpy
from .checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from .data.transforms import parse_scale
from .models import CONFIGS, vgg
from .nn.init import INIT_SCHEMES
from .optim import SGD, ReduceLROnPlateau


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; no checkpoint was written after it."""


def scale_for_meta(scale):
    """The checkpoint form of a training scale: an int, or [S_min, S_max]."""
    s_min, s_max = parse_scale(scale)
    return s_min if s_min == s_max else [s_min, s_max]


@dataclasses.dataclass
class Recipe:
    """Every training setting; defaults are the small-image profile that runs
    on a laptop CPU (the paper's values are noted where they differ)."""
    cfg: str = "A"
    data: str = "synthetic"           # synthetic | cifar10:DIR | imagefolder:DIR
    image_size: int = 32              # side of generated synthetic images
    train_size: int = 12000           # synthetic images in the training split
    val_size: int = 1000              # synthetic images in the validation split
    crop: int = 32                    # paper: 224
    scale: str = "32:40"              # paper: 256, 384 or 256:512
    batch_size: int = 64              # paper: 256
    micro_batch: int = 0              # 0: the whole batch at once
    lr: float = 0.02                  # paper: 1e-2 (1e-3 when fine-tuning S=384)
    warmup_steps: int = 0             # linear lr ramp over the first steps (not in the paper)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 16                  # paper: 74
    max_steps: int = 0                # 0: no limit
    init: str = "kaiming"             # paper: gauss (config A), then init-from
    init_std: float = 0.01
    init_from: str = ""
    fc_width: int = 0                 # 0: 4096 for crops >= 224, else 128
    width_mult: float = 0.25          # scales every conv's channels (paper: 1)
    fc_bias: float = 0.1              # initial FC1/FC2 bias (paper: 0)
    dropout: float = 0.3              # paper: 0.5 (slows the start of small nets)
    patience: int = 3
    min_lr: float = 0.0               # 0: no floor; max_lr_drops bounds the schedule
    max_lr_drops: int = 3             # the paper divided the rate 3 times
    workers: int = 0
    seed: int = 0
    out: str = "runs/train"
    plot: bool = False
    strict: bool = False
    mean_images: int = 0              # images read for the mean RGB; 0: all
    pixel_scale: float = 1.0          # input units: 1 -> [0, 1] minus mean; paper (Caffe): 255
    progress: bool = True

    def resolved_fc_width(self):
        return self.fc_width or (4096 if self.crop >= 224 else 128)

    def validate(self):
        """Reject impossible recipes before any work, saying what to change."""
        if self.cfg not in CONFIGS:
            raise ValueError(f"unknown config {self.cfg!r}; valid ones are {', '.join(CONFIGS)}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown --init {self.init!r}; valid ones are "
                             f"{', '.join(INIT_SCHEMES)}")
        s_min, _ = parse_scale(self.scale)
        if self.crop > s_min:
            raise ValueError(f"crop {self.crop} is larger than the smallest training scale "
                             f"S={s_min}; use --crop <= {s_min} or --scale >= {self.crop}")
        if self.crop < 32:
            raise ValueError(f"crop {self.crop} is too small for VGG's five 2x2 poolings; "
                             f"use --crop >= 32")
        if not 0 < self.width_mult <= 4:
            raise ValueError(f"--width-mult must be in (0, 4], got {self.width_mult}")
        for name in ("batch_size", "epochs", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                                 f"{getattr(self, name)}")
        if self.micro_batch < 0 or self.micro_batch > self.batch_size:
            raise ValueError(f"--micro-batch must be between 1 and --batch-size "
                             f"({self.batch_size}), or 0 for none; got {self.micro_batch}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, weight decay >= 0; got lr "
                             f"{self.lr}, momentum {self.momentum}, weight decay "
                             f"{self.weight_decay}")
        if self.max_steps < 0 or self.workers < 0 or self.seed < 0 or self.warmup_steps < 0:
            raise ValueError("--max-steps, --warmup-steps, --workers and --seed must be >= 0")
        kind = self.data.split(":", 1)[0]
        if kind not in ("synthetic", "cifar10", "imagefolder"):
            raise ValueError(f"unknown --data {self.data!r}; use synthetic, cifar10:DIR or "
                             f"imagefolder:DIR")
        if kind != "synthetic":
            if ":" not in self.data or not self.data.split(":", 1)[1]:
                raise ValueError(f"--data {self.data!r} needs a directory: {kind}:DIR")
            path = self.data.split(":", 1)[1]
            if not os.path.isdir(path):
                raise FileNotFoundError(f"data directory {path!r} does not exist")
        if self.init_from and not os.path.exists(self.init_from):
            raise FileNotFoundError(f"--init-from {self.init_from!r} does not exist")


def make_datasets(recipe):
    """(train, val) datasets for ``recipe.data``."""
    from .data import CIFAR10, ImageFolder, SyntheticShapes
    kind, _, path = recipe.data.partition(":")
    if kind == "synthetic":
        return (SyntheticShapes(recipe.train_size, recipe.image_size, recipe.seed, "train"),
                SyntheticShapes(recipe.val_size, recipe.image_size, recipe.seed, "val"))
    if kind == "cifar10":
        return CIFAR10(path, train=True), CIFAR10(path, train=False)
    train_dir = os.path.join(path, "train")
    val_dir = next((os.path.join(path, d) for d in ("val", "test")
                    if os.path.isdir(os.path.join(path, d))), None)
    if not os.path.isdir(train_dir) or val_dir is None:
        raise FileNotFoundError(f"imagefolder:{path} needs {path}/train/<class>/... and "
                                f"{path}/val/<class>/... (or test/)")
    train, val = ImageFolder(train_dir), ImageFolder(val_dir)
    if train.classes != val.classes:
        raise ValueError(f"class folders differ between {train_dir} and {val_dir}: "
                         f"{sorted(set(train.classes) ^ set(val.classes))}")
    return train, val


def mean_rgb_cached(recipe, train_ds):
    """Mean RGB of the training set, computed once and kept in out/mean_rgb.json."""
    from .data import compute_mean_rgb
    cache = os.path.join(recipe.out, "mean_rgb.json")
    key = {"data": recipe.data, "n": len(train_ds), "image_size": recipe.image_size,
           "seed": recipe.seed if recipe.data == "synthetic" else None,
           "mean_images": recipe.mean_images}
    if os.path.exists(cache):
        try:
            with open(cache) as f:
                stored = json.load(f)
            if stored.get("key") == key:
                return np.asarray(stored["mean_rgb"], np.float64)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is recomputed
    mean = compute_mean_rgb(train_ds, recipe.mean_images or None, progress=recipe.progress)
    os.makedirs(recipe.out, exist_ok=True)
    tmp = cache + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"key": key, "mean_rgb": [float(v) for v in mean]}, f)
    os.replace(tmp, cache)
    return mean


def init_from_checkpoint(model, path):
    """Initialise ``model`` from a trained checkpoint, as in §3.1.

    Same configuration (e.g. S=384 started from S=256, or multi-scale from
    S=384): every weight is copied. A different, deeper configuration (the
    paper's B-E from A): the source's first four conv layers (A: conv1_1,
    conv2_1, conv3_1, conv3_2) go to the layers of the same name in
    ``model``, and the three FC layers to fc6-fc8; everything else keeps its
    random initialisation. Returns the list of parameter names copied.
    """
    ckpt = load_checkpoint(path)
    if ckpt.meta["model"]["cfg"] == model.cfg:
        try:
            model.load_state_dict(ckpt.model_state)  # checks every key and shape first
        except ValueError as e:
            raise ValueError(f"--init-from {path}: {e}; train with the same classes, crop and "
                             f"--fc-width") from e
        return list(ckpt.model_state)
    src = ckpt.build_model()
    src_layers, dst_layers = src.paper_layer_names(), model.paper_layer_names()
    names = [n for n in src_layers if n.startswith("conv")][:4] + ["fc6", "fc7", "fc8"]
    plan = []
    for n in names:
        if n not in dst_layers:
            raise ValueError(f"--init-from {path}: VGG-{model.cfg} has no layer {n} to receive "
                             f"VGG-{src.cfg}'s")
        s, d = src_layers[n], dst_layers[n]
        for attr in ("weight", "bias"):
            a, b = getattr(s, attr), getattr(d, attr)
            if a.shape != b.shape:
                raise ValueError(f"--init-from {path}: {n}.{attr} has shape {a.shape} in "
                                 f"VGG-{src.cfg} but {b.shape} in VGG-{model.cfg}; use the same "
                                 f"classes, crop and --fc-width")
            plan.append((d.name + "." + attr, b, a))
    for _, dst_p, src_p in plan:
        dst_p.data[...] = src_p.data
    return [name for name, _, _ in plan]


def evaluate_loader(model, loader, progress=False, desc="val"):
    """Single-crop validation: (mean loss, top-1 error, top-5 error)."""
    from tqdm import tqdm

    from .evaluate import topk_correct
    was_training = model.training
    model.eval()
    loss_sum, n, c1, c5 = 0.0, 0, 0, 0
    try:
        with no_grad():
            for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
                logits = model(Tensor(x))
                loss_sum += float(F.softmax_cross_entropy(logits, y).item()) * len(y)
                scores = as_numpy(logits.data)
                c1 += int(topk_correct(scores, y, 1).sum())
                c5 += int(topk_correct(scores, y, 5).sum())
                n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    return loss_sum / n, 1.0 - c1 / n, 1.0 - c5 / n


def _bar_style():
    """Progress-bar settings: live on a terminal, sparse in a log file."""
    if sys.stderr.isatty():
        return {"dynamic_ncols": True}
    return {"ncols": 120, "mininterval": 10.0}


class Trainer:
    """Runs a ``Recipe``; ``resume`` continues from a checkpoint (file or dir)."""

    def __init__(self, recipe, resume=None, log=print):
        recipe.validate()
        self.recipe = recipe
        self.log = log
        self.stop_signal = None
        self.resume_ckpt = None
        if resume:
            self.resume_ckpt = load_checkpoint(resume)
            if self.resume_ckpt.meta.get("epoch") is None:
                raise CheckpointError(f"{self.resume_ckpt.path} holds no training state to "
                                      f"resume from")

    # -- setup ---------------------------------------------------------------
    def _setup(self):
        from .data import DataLoader, eval_transform, train_transform
        r = self.recipe
        os.makedirs(r.out, exist_ok=True)
        self.train_ds, self.val_ds = make_datasets(r)
        self.classes = list(self.train_ds.classes)
        if len(self.train_ds) == 0 or len(self.val_ds) == 0:
            raise ValueError(f"empty data set: {len(self.train_ds)} training and "
                             f"{len(self.val_ds)} validation images")
        ck = self.resume_ckpt
        if ck is not None:
            if ck.meta["model"]["cfg"] != r.cfg or ck.meta["classes"] != self.classes:
                raise ValueError(f"--resume {ck.path}: it trained VGG-{ck.meta['model']['cfg']} on "
                                 f"{len(ck.meta['classes'])} classes; this run asks for VGG-{r.cfg}"
                                 f" on {len(self.classes)}")
            self.mean_rgb = np.asarray(ck.meta["mean_rgb"], np.float64)
        else:  # §2.1: one training-set mean for every stage of the S schedule
            inherited = read_meta(r.init_from).get("mean_rgb") if r.init_from else None
            self.mean_rgb = (np.asarray(inherited, np.float64) if inherited is not None
                             else mean_rgb_cached(r, self.train_ds))
        self.model = vgg(r.cfg, num_classes=len(self.classes), fc_width=r.resolved_fc_width(),
                         input_size=r.crop, width_mult=r.width_mult, dropout=r.dropout,
                         init=r.init, init_std=r.init_std, seed=r.seed, fc_bias=r.fc_bias)
        self.copied = []
        if ck is None and r.init_from:
            self.copied = init_from_checkpoint(self.model, r.init_from)
            self.log(f"initialised {len(self.copied)} tensors from {r.init_from}")
        self.optimizer = SGD(self.model.parameters(), r.lr, r.momentum, r.weight_decay)
        self.scheduler = ReduceLROnPlateau(self.optimizer, "max", 0.1, r.patience,
                                           min_lr=r.min_lr, max_reductions=r.max_lr_drops)
        scale = parse_scale(r.scale)
        self.train_loader = DataLoader(self.train_ds, r.batch_size,
                                       train_transform(r.crop, scale, self.mean_rgb,
                                                       pixel_scale=r.pixel_scale),
                                       shuffle=True, seed=r.seed, workers=r.workers,
                                       strict=r.strict)
        self.val_loader = DataLoader(self.val_ds, max(r.batch_size, 64),
                                     eval_transform(r.crop, scale, self.mean_rgb,
                                                    pixel_scale=r.pixel_scale),
                                     shuffle=False, seed=r.seed, workers=r.workers,
                                     strict=r.strict)
        self.epoch, self.batch, self.global_step = 0, 0, 0
        self.history = []
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0, "skipped": 0}
        mrandom.manual_seed(r.seed)
        if ck is not None:
            self.model.load_state_dict(ck.model_state)
            self.optimizer.load_state_dict(ck.optimizer_state)
            self.scheduler.load_state_dict(ck.meta["scheduler"])
            mrandom.set_state(ck.meta["rng"])
            self.epoch, self.batch = ck.meta["epoch"], ck.meta["batch"]
            self.global_step = ck.meta["global_step"]
            self.history = ck.meta.get("history", [])
            self.partial = ck.meta.get("partial", self.partial)
            self.log(f"resumed from {ck.path}: epoch {self.epoch + 1}, batch {self.batch}, "
                     f"step {self.global_step}, lr {self.optimizer.lr:g}")
        with open(os.path.join(r.out, "recipe.json"), "w") as f:
            json.dump(dataclasses.asdict(r), f, indent=2)

    # -- checkpoints -----------------------------------------------------------
    def checkpoint_path(self):
        return os.path.join(self.recipe.out, "last.npz")

    def save(self, path=None):
        r = self.recipe
        meta = {"classes": self.classes, "mean_rgb": [float(v) for v in self.mean_rgb],
                "train": {"scale": scale_for_meta(r.scale), "crop": r.crop,
                          "recipe": dataclasses.asdict(r)},
                "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
                "scheduler": self.scheduler.state_dict(), "rng": mrandom.get_state(),
                "history": self.history, "partial": self.partial}
        return save_checkpoint(path or self.checkpoint_path(), self.model, meta, self.optimizer)

    # -- the loop ----------------------------------------------------------------
    def _handle_signal(self, signum, frame):
        self.stop_signal = signum

    def train_step(self, x, y):
        """One SGD step on a batch (split into micro-batches); (loss, correct)."""
        r = self.recipe
        n = len(y)
        micro = r.micro_batch or n
        self.optimizer.zero_grad()
        loss_total, correct = 0.0, 0
        for s in range(0, n, micro):
            xb, yb = x[s:s + micro], y[s:s + micro]
            logits = self.model(Tensor(xb))
            loss = F.softmax_cross_entropy(logits, yb)
            value = float(loss.item())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the loss became {value} at step {self.global_step + 1} (epoch "
                    f"{self.epoch + 1}, batch {self.batch + 1}); no checkpoint was written after "
                    f"it, so {self.checkpoint_path()} still holds the last good state. Lower "
                    f"--lr (now {self.optimizer.lr:g}) or check the data")
            # Weight each micro-batch by its share so the summed gradient is the
            # gradient of the mean loss over the whole batch.
            (loss * (len(yb) / n)).backward()
            loss_total += value * len(yb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
        if r.warmup_steps and self.global_step < r.warmup_steps:
            # Ramp the rate linearly over the first steps; large early steps kill
            # ReLUs of the narrow FC layers for good (docs/training.md).
            lr = self.optimizer.lr
            self.optimizer.lr = lr * (self.global_step + 1) / r.warmup_steps
            self.optimizer.step()
            self.optimizer.lr = lr
        else:
            self.optimizer.step()
        return loss_total / n, correct

    def run(self):
        """Train to the end of the recipe; returns the metrics history."""
        from tqdm import tqdm
        self._setup()
        r = self.recipe
        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < r.epochs:
                if r.max_steps and self.global_step >= r.max_steps:
                    break
                self.train_loader.set_epoch(self.epoch)
                t0 = time.perf_counter()
                bar = tqdm(total=len(self.train_loader), initial=self.batch,
                           desc=f"epoch {self.epoch + 1}/{r.epochs}", unit="batch",
                           disable=not r.progress, **_bar_style())
                p = self.partial
                for x, y in self.train_loader.iter_from(self.batch):
                    ts = time.perf_counter()
                    loss, correct = self.train_step(x, y)
                    self.batch = self.train_loader.position
                    self.global_step += 1
                    p["loss"] += loss * len(y)
                    p["correct"] += correct
                    p["seen"] += len(y)
                    bar.update(self.batch - bar.n)
                    bar.set_postfix(loss=f"{p['loss'] / p['seen']:.3f}",
                                    acc=f"{p['correct'] / p['seen']:.3f}",
                                    img_s=f"{len(y) / (time.perf_counter() - ts):.1f}",
                                    lr=f"{self.optimizer.lr:g}")
                    if self.stop_signal is not None or (r.max_steps and
                                                        self.global_step >= r.max_steps):
                        break
                bar.close()
                p["time"] += time.perf_counter() - t0
                p["skipped"] += len(self.train_loader.skipped)
                if self.stop_signal is not None or self.batch < len(self.train_loader):
                    path = self.save()
                    if self.stop_signal is not None:
                        self.log(f"stopped by signal {self.stop_signal}; state saved to {path}; "
                                 f"continue with --resume {r.out}")
                        raise KeyboardInterrupt
                    self.log(f"stopped at --max-steps {r.max_steps}; state saved to {path}")
                    break
                self._end_epoch()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if r.plot and self.history:
            self.plot()
        return self.history

    def _end_epoch(self):
        r = self.recipe
        p = self.partial
        val_loss, top1, top5 = evaluate_loader(self.model, self.val_loader, r.progress)
        row = {"epoch": self.epoch + 1, "step": self.global_step,
               "train_loss": p["loss"] / max(p["seen"], 1),
               "train_top1_err": 1.0 - p["correct"] / max(p["seen"], 1),
               "val_loss": val_loss, "val_top1_err": top1, "val_top5_err": top5,
               "lr": self.optimizer.lr, "time_s": p["time"],
               "images_per_s": p["seen"] / max(p["time"], 1e-9),
               "skipped_images": p["skipped"] + len(self.val_loader.skipped)}
        self.history.append(row)
        with open(os.path.join(r.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        self.log(f"epoch {row['epoch']}/{r.epochs}: train loss {row['train_loss']:.4f}, "
                 f"top-1 err {100 * row['train_top1_err']:.2f}% | val top-1 err "
                 f"{100 * top1:.2f}%, top-5 err {100 * top5:.2f}% | lr {row['lr']:g} | "
                 f"{row['time_s']:.1f} s, {row['images_per_s']:.1f} img/s | skipped "
                 f"{row['skipped_images']} images")
        if self.scheduler.step(1.0 - top1):
            self.log(f"validation accuracy stopped improving: lr divided by 10 to "
                     f"{self.optimizer.lr:g}")
        self.epoch += 1
        self.batch = 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0, "skipped": 0}
        self.save()
        if row["skipped_images"]:
            warnings.warn(f"epoch {row['epoch']}: {row['skipped_images']} unreadable images "
                          f"were skipped (use --strict to stop on them)")

    def plot(self):
        """Write out/curves.png: training loss and validation errors per epoch."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise RuntimeError("--plot needs matplotlib: pip install -e .[plot]") from e
        ep = [h["epoch"] for h in self.history]
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        a.plot(ep, [h["train_loss"] for h in self.history], "o-", label="train")
        a.plot(ep, [h["val_loss"] for h in self.history], "o-", label="val")
        a.set_xlabel("epoch")
        a.set_ylabel("loss")
        a.legend()
        b.plot(ep, [100 * h["val_top1_err"] for h in self.history], "o-", label="val top-1")
        b.plot(ep, [100 * h["val_top5_err"] for h in self.history], "o-", label="val top-5")
        b.plot(ep, [100 * h["train_top1_err"] for h in self.history], "o--", label="train top-1")
        b.set_xlabel("epoch")
        b.set_ylabel("error (%)")
        b.legend()
        fig.suptitle(f"VGG-{self.recipe.cfg} on {self.recipe.data}")
        fig.tight_layout()
        path = os.path.join(self.recipe.out, "curves.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
