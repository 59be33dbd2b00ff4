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
from .backend import DeviceError, as_numpy, device as get_device, parse_device, set_tf32
from .checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from .data.transforms import parse_scale
from .distributed import GradientSync
from .memory import keep_freed_memory
from .threads import OtherWork, auto_threads, set_threads, threads
from .models import CONFIGS, vgg
from .nn.init import INIT_SCHEMES
from .optim import SGD, ReduceLROnPlateau


#: Recipe fields the command line spells other than --field-name.
_FLAG_SPELLING = {"overlap": "--no-overlap", "progress": "--no-progress",
                  "keep_freed_memory": "--release-freed-memory",
                  "resume_lr": "--lr (continue with this rate)"}


def _flag(name):
    """The command-line flag of Recipe field ``name``, for messages."""
    return _FLAG_SPELLING.get(name, "--" + name.replace("_", "-"))


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
    train_size: int = 0               # synthetic: images generated (0: 48,000); real data: a
                                      # class-stratified sample of this many (0: all)
    val_size: int = 1000              # synthetic images in the validation split
    crop: int = 32                    # paper: 224
    scale: str = "32:40"              # paper: 256, 384 or 256:512
    batch_size: int = 64              # paper: 256
    micro_batch: int = 0              # 0: the whole batch at once
    lr: float = 0.01                  # the paper's 1e-2 (1e-3 when fine-tuning S=384)
    warmup_steps: int = 0             # linear lr ramp over the first steps (not in the paper)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 6                   # paper: 74
    max_steps: int = 0                # 0: no limit
    init: str = "kaiming"             # paper: gauss (config A), then init-from
    init_std: float = 0.01
    init_from: str = ""
    fc_width: int = 0                 # 0: 4096 for crops >= 224, else 128
    width_mult: float = 0.25          # scales every conv's channels (paper: 1)
    fc_bias: float = 0.1              # initial FC1/FC2 bias (paper: 0)
    dropout: float = 0.0              # paper: 0.5 (delays the start of small nets)
    patience: int = 2                 # paper: not given
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
    device: str = "cpu"               # cpu | cuda | cuda:N | emu (the CUDA kernels on the CPU)
    tf32: bool = False                # allow TF32 tensor-core GEMMs on a cuda device
    dtype: str = "float32"            # float64: for exact equivalence and gradient checks
    threads: int = 0                  # CPU threads for BLAS and copies; 0: what is free, per epoch
    keep_freed_memory: bool = True    # keep freed memory in the process: no page faults (memory.py)
    distributed: str = "none"         # none | mpi (CPU processes) | nccl (one GPU per process)
    overlap: bool = True              # average gradient buckets during backward
    bucket_mb: float = 25.0           # size of those buckets
    overwrite: bool = False           # start over in a folder that holds another run
    resume_lr: float = 0.0            # >0: the lr to continue with on resume (a manual drop)

    def resolved_fc_width(self):
        return self.fc_width or (4096 if self.crop >= 224 else 128)

    def validate(self):
        """Reject impossible recipes before any work, saying what to change."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"--{f.name.replace('_', '-')} must be a finite number, got {v}")
        if not 0 < self.lr <= 10:
            raise ValueError(f"--lr must be in (0, 10], got {self.lr} (the paper: 0.01)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.init_std <= 0:
            raise ValueError(f"--init-std must be positive, got {self.init_std}")
        if self.resume_lr < 0:
            raise ValueError(f"resume_lr must be >= 0 (0: keep the checkpoint's), got "
                             f"{self.resume_lr}")
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
        if self.train_size < 0:
            raise ValueError(f"--train-size must be >= 0 (0: the default), got {self.train_size}")
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
        kind, _ = parse_device(self.device)
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0 (0: one per core), got {self.threads}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {self.dtype!r}")
        if self.distributed not in ("none", "mpi", "nccl"):
            raise ValueError(f"unknown --distributed {self.distributed!r}; use none, mpi or nccl")
        if not self.bucket_mb > 0:
            raise ValueError(f"--bucket-mb must be positive, got {self.bucket_mb}")
        if self.tf32 and kind != "cuda":
            raise ValueError(f"--tf32 selects the GPU's TF32 matrix products; it needs "
                             f"--device cuda, not {self.device!r}")


#: Generated training images of the synthetic data when --train-size is 0.
SYNTHETIC_TRAIN_SIZE = 48000

#: With --threads 0, a run whose training step does fewer multiply-adds
#: than this in its forward pass (per rank) uses one thread: its products
#: are too small for a second BLAS thread to pay, and that thread's waiting
#: takes the core the data preparation runs on. Measured 2026-11-29 on the
#: project's 2-core machine, epochs of the default example's model (VGG-A
#: x0.25, FC 128, 32x32, batch 64: 0.6e9 per step) ran at 1,364 img/s with
#: one thread and 1,053 with two (two epochs of 9,600 images; the whole
#: default run: 227 against 241 s of training); at width x0.5 (2.5e9) two
#: were faster, 560 against 526 img/s, and at full width (9.8e9) 211
#: against 184.
AUTO_ONE_THREAD_MACS = 1 << 30


def make_datasets(recipe):
    """(train, val) datasets for ``recipe.data``.

    ``imagefolder:DIR`` is the data set root: DIR/train/ for training and
    DIR/val/ (else DIR/test/) for validation. ``--train-size N`` takes a
    class-stratified sample of N training images of a real data set (all of
    them by default); of the synthetic data it generates N (default 48,000).
    """
    from .data import CIFAR10, ImageFolder, SyntheticShapes, split_folder, stratified_subset
    kind, _, path = recipe.data.partition(":")
    if kind == "synthetic":
        return (SyntheticShapes(recipe.train_size or SYNTHETIC_TRAIN_SIZE, recipe.image_size,
                                recipe.seed, "train"),
                SyntheticShapes(recipe.val_size, recipe.image_size, recipe.seed, "val"))
    if kind == "cifar10":
        train, val = CIFAR10(path, train=True), CIFAR10(path, train=False)
    else:
        train_dir, _ = split_folder(path, "train")
        val_dir, _ = split_folder(path)
        train, val = ImageFolder(train_dir), ImageFolder(val_dir)
        if train.classes != val.classes:
            raise ValueError(f"class folders differ between {train_dir} and {val_dir}: "
                             f"{sorted(set(train.classes) ^ set(val.classes))}")
    if recipe.train_size and recipe.train_size < len(train):
        train = stratified_subset(train, recipe.train_size, recipe.seed)
    return train, val


def mean_rgb_cached(recipe, train_ds):
    """Mean RGB of the training set, computed once and kept in out/mean_rgb.json."""
    from .data import compute_mean_rgb
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


def evaluate_loader(model, loader, progress=False, desc="val", comm=None):
    """Single-crop validation: (mean loss, top-1 error, top-5 error).

    With a communicator, each rank evaluates its shard of ``loader`` and the
    sums are added over ranks, so every rank returns the whole set's figures.
    """
    from tqdm import tqdm

    from .evaluate import topk_correct
    was_training = model.training
    model.eval()
    sums = np.zeros(4)  # loss sum, top-1 correct, top-5 correct, images
    try:
        with no_grad():
            dev = model.device
            param = next(iter(model.parameters()), None)
            dtype = None if param is None else param.dtype
            for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
                if len(y) == 0:  # this rank's share of a short batch is empty
                    continue
                logits = model(Tensor(dev.asarray(x, dtype=dtype), device=dev))
                scores = as_numpy(logits.data)
                sums += [float(F.softmax_cross_entropy(logits, y).item()) * len(y),
                         topk_correct(scores, y, 1).sum(), topk_correct(scores, y, 5).sum(),
                         len(y)]
    finally:
        model.train(was_training)
    if comm is not None:
        sums = comm.sum_host(sums)
    loss_sum, c1, c5, n = sums
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    return loss_sum / n, 1.0 - c1 / n, 1.0 - c5 / n


def _bar_style():
    """Progress-bar settings: live on a terminal, sparse in a log file."""
    if sys.stderr.isatty():
        return {"dynamic_ncols": True}
    return {"ncols": 120, "mininterval": 10.0}


class Trainer:
    """Runs a ``Recipe``; ``resume`` continues from a checkpoint (file or dir).

    ``comm``: a communicator (``minivgg.distributed``) for data-parallel
    training; by default one process. Every rank runs this same loop on its
    slice of each batch; gradients are averaged before each update; rank 0
    alone logs, shows progress and writes files.
    """

    def __init__(self, recipe, resume=None, log=print, comm=None):
        from .distributed import SingleProcess
        self.recipe = recipe
        self.comm = comm if comm is not None else SingleProcess()
        self.is_root = self.comm.rank == 0
        self.log = log if self.is_root else (lambda *a, **k: None)
        self.stop_signal = None
        self.resume_ckpt = None
        self.other_work = OtherWork()
        self._agree(self._check, resume)

    def _agree(self, fn, *args):
        """Run ``fn`` on every rank; if it failed with an expected error (bad
        recipe, data, checkpoint or device) on any rank, raise that error on
        every rank, so that all stop together and rank 0 can report it."""
        expected = (ValueError, FileNotFoundError, CheckpointError, DeviceError)
        error = None
        try:
            fn(*args)
        except expected as e:
            error = e
        if self.comm.size == 1:
            if error is not None:
                raise error
            return
        failures = self.comm.gather_errors(
            None if error is None else f"{type(error).__name__}\t{error}")
        if failures:
            rank, msg = failures[0]
            if error is not None and rank == self.comm.rank:
                raise error
            name, text = msg.split("\t", 1)
            cls = next((c for c in expected if c.__name__ == name), RuntimeError)
            raise cls(text if rank == 0 else f"rank {rank}: {text}")

    def _check(self, resume):
        """Everything about the request that can be wrong, before any work."""
        recipe = self.recipe
        recipe.validate()
        if recipe.batch_size % self.comm.size:
            raise ValueError(f"--batch-size {recipe.batch_size} (the global batch) cannot be "
                             f"split evenly over {self.comm.size} ranks; use a multiple of "
                             f"{self.comm.size}")
        dev = recipe.device
        if self.comm.device_index is not None:  # NCCL: one GPU per rank, its local index
            dev = f"cuda:{self.comm.device_index}"
        self.device = get_device(dev)  # DeviceError now, before any work
        set_tf32(self.device, recipe.tf32)
        self._set_threads()
        if recipe.keep_freed_memory:
            # The step's big arrays are reused from the process's heap
            # instead of being mapped, faulted in and unmapped every step.
            keep_freed_memory()
        if resume:
            self.resume_ckpt = load_checkpoint(resume)
            if self.resume_ckpt.meta.get("epoch") is None:
                raise CheckpointError(f"{self.resume_ckpt.path} holds no training state to "
                                      f"resume from")
            self._check_same_run(self.resume_ckpt)
        else:
            self._check_run_folder()

    #: Output files of a run, in its --out folder.
    RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "recipe.json", "curves.png")
    #: Recipe fields a resumed run may change; the others must be the checkpoint's.
    MAY_CHANGE_ON_RESUME = ("epochs", "max_steps", "workers", "threads", "keep_freed_memory",
                            "micro_batch", "device",
                            "tf32", "distributed", "overlap", "bucket_mb", "plot", "progress",
                            "strict", "resume_lr", "out", "overwrite")

    def _check_run_folder(self):
        """A new run must not mix its files with another run's."""
        out = self.recipe.out
        found = [f for f in self.RUN_FILES if os.path.exists(os.path.join(out, f))]
        if found and not self.recipe.overwrite:
            raise ValueError(f"{out} already holds a run ({', '.join(found)}); continue it with "
                             f"--resume {out}, write this one elsewhere with --out DIR, or "
                             f"replace it with --overwrite")

    def _check_same_run(self, ck):
        """The recipe of a resumed run must be the checkpoint's, but for the
        settings that may change (MAY_CHANGE_ON_RESUME)."""
        saved = (ck.meta.get("train") or {}).get("recipe") or {}
        for f in dataclasses.fields(self.recipe):
            if f.name in self.MAY_CHANGE_ON_RESUME or f.name not in saved:
                continue
            mine = getattr(self.recipe, f.name)
            if mine != saved[f.name]:
                may = ", ".join(_flag(n) for n in self.MAY_CHANGE_ON_RESUME
                                if n not in ("out", "overwrite"))  # the folder, not the run
                raise ValueError(f"--resume {ck.path}: {_flag(f.name)} is {mine!r} here but "
                                 f"{saved[f.name]!r} in the checkpoint; give the same value, or "
                                 f"none (the checkpoint's is used). Settings that may change on "
                                 f"resume: {may}")

    def step_macs(self):
        """Multiply-adds of one training step's forward pass on this rank,
        the classifier's last layer left out (its size depends on classes
        not known yet at the first call): Table 1's layers at the crop size,
        times this rank's share of the batch."""
        from .summary import layer_rows
        r = self.recipe
        rows = layer_rows(r.cfg, r.crop, 1, r.width_mult, r.resolved_fc_width())
        per_image = sum(row.mult_adds for row in rows if row.name != "fc8")
        return per_image * (r.batch_size // self.comm.size)

    def _set_threads(self):
        """--threads N, or (0) what other programs left free of this rank's
        share of the cores since the last call (minivgg/threads.py), and
        one thread for a step too small for more (AUTO_ONE_THREAD_MACS)."""
        n = self.recipe.threads or (1 if self.step_macs() < AUTO_ONE_THREAD_MACS else
                                    auto_threads(self.other_work, self.comm.local_size))
        if n != threads():
            set_threads(n)
        self.other_work.mark()

    # -- setup ---------------------------------------------------------------
    def _setup(self):
        """Build everything; the steps that talk to other ranks come last."""
        self._agree(self._prepare)
        comm = self.comm
        # Rank 0 computed (or found) the mean RGB; the others receive it.
        self.mean_rgb = np.asarray(comm.broadcast_object(self.mean_rgb), np.float64)
        self._make_loaders()
        # Every rank starts from rank 0's weights, and exchanges gradients
        # through the optimizer's flat buffer.
        comm.broadcast(self.optimizer.buffers().data)
        self.sync = GradientSync(comm, self.optimizer.buffers(), self.recipe.bucket_mb,
                                 self.recipe.overlap)
        if self.is_root:
            with open(os.path.join(self.recipe.out, "recipe.json"), "w") as f:
                json.dump(dataclasses.asdict(self.recipe), f, indent=2)

    def _prepare(self):
        """Data, model, optimizer, schedule and resumed state, on this rank alone."""
        r = self.recipe
        if self.is_root:
            os.makedirs(r.out, exist_ok=True)
            if r.overwrite and self.resume_ckpt is None:
                for f in self.RUN_FILES:  # the run being replaced
                    if os.path.exists(os.path.join(r.out, f)):
                        os.unlink(os.path.join(r.out, f))
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
            if inherited is not None:
                self.mean_rgb = np.asarray(inherited, np.float64)
            else:  # rank 0 computes (or finds) it; the others receive it in _setup
                self.mean_rgb = mean_rgb_cached(r, self.train_ds) if self.is_root else None
        self.model = vgg(r.cfg, num_classes=len(self.classes), fc_width=r.resolved_fc_width(),
                         input_size=r.crop, width_mult=r.width_mult, dropout=r.dropout,
                         init=r.init, init_std=r.init_std, seed=r.seed, fc_bias=r.fc_bias,
                         dtype=np.dtype(r.dtype))
        self.copied = []
        if ck is None and r.init_from:
            self.copied = init_from_checkpoint(self.model, r.init_from)
            self.log(f"initialised {len(self.copied)} tensors from {r.init_from}")
        self.model.to(self.device)
        self.optimizer = SGD(self.model.parameters(), r.lr, r.momentum, r.weight_decay)
        self.scheduler = ReduceLROnPlateau(self.optimizer, "max", 0.1, r.patience,
                                           min_lr=r.min_lr, max_reductions=r.max_lr_drops)
        self.epoch, self.batch, self.global_step = 0, 0, 0
        self.history = []
        self.best = None  # {"epoch", "val_top1_err", "val_top5_err"} of best.npz
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0, "skipped": 0}
        # Dropout masks: one stream per rank, rank 0's being the single-process one.
        mrandom.manual_seed(mrandom.rank_seed(r.seed, self.comm.rank))
        if ck is not None:
            self._restore(ck)

    def _restore(self, ck):
        """Continue the state saved in checkpoint ``ck``."""
        self.model.load_state_dict(ck.model_state)
        self.optimizer.load_state_dict(ck.optimizer_state)
        self.scheduler.load_state_dict(ck.meta["scheduler"])
        state = ck.meta["rng"]  # rank 0's stream, whose seed is the run's seed
        mrandom.set_state(state)
        mrandom.manual_seed(mrandom.rank_seed(state["seed"], self.comm.rank), state["counter"])
        ranks = ck.meta.get("world_size", 1)
        if ranks != self.comm.size:
            self.log(f"note: the checkpoint was written by a run on {ranks} rank(s), this one "
                     f"has {self.comm.size}: weights, momentum, schedule and data position "
                     f"continue exactly; the dropout masks (drawn per rank) differ")
        if self.recipe.resume_lr:  # a manual step of the schedule
            self.log(f"lr set to {self.recipe.resume_lr:g} (was {self.optimizer.lr:g})")
            self.optimizer.lr = self.recipe.resume_lr
        self.epoch, self.batch = ck.meta["epoch"], ck.meta["batch"]
        self.global_step = ck.meta["global_step"]
        self.history = ck.meta.get("history", [])
        self.partial = ck.meta.get("partial", self.partial)
        self.best = ck.meta.get("best")
        self.log(f"resumed from {ck.path}: epoch {self.epoch + 1}, batch {self.batch}, "
                 f"step {self.global_step}, lr {self.optimizer.lr:g}")

    def _make_loaders(self):
        """Training and validation loaders: each rank loads its slice of every batch."""
        from .data import DataLoader, eval_transform, train_transform
        r, comm = self.recipe, self.comm
        scale = parse_scale(r.scale)
        shard = (comm.rank, comm.size)
        self.train_loader = DataLoader(self.train_ds, r.batch_size,
                                       train_transform(r.crop, scale, self.mean_rgb,
                                                       pixel_scale=r.pixel_scale),
                                       shuffle=True, seed=r.seed, workers=r.workers,
                                       strict=r.strict, shard=shard)
        val_batch = -(-max(r.batch_size, 64) // comm.size) * comm.size
        self.val_loader = DataLoader(self.val_ds, val_batch,
                                     eval_transform(r.crop, scale, self.mean_rgb,
                                                    pixel_scale=r.pixel_scale),
                                     shuffle=False, seed=r.seed, workers=r.workers,
                                     strict=r.strict, shard=shard)

    # -- checkpoints -----------------------------------------------------------
    def checkpoint_path(self, name="last.npz"):
        return os.path.join(self.recipe.out, name)

    def save(self, path=None):
        r = self.recipe
        meta = {"classes": self.classes, "mean_rgb": [float(v) for v in self.mean_rgb],
                "train": {"scale": scale_for_meta(r.scale), "crop": r.crop,
                          "recipe": dataclasses.asdict(r)},
                "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
                "scheduler": self.scheduler.state_dict(), "rng": mrandom.get_state(),
                "history": self.history, "partial": self.partial, "best": self.best,
                "world_size": self.comm.size}
        path = path or self.checkpoint_path()
        if self.is_root:
            save_checkpoint(path, self.model, meta, self.optimizer)
        return path

    # -- the loop ----------------------------------------------------------------
    def _handle_signal(self, signum, frame):
        self.stop_signal = signum

    def train_step(self, x, y):
        """One SGD step on this rank's slice of a batch (in micro-batches).

        Returns (mean loss, correct, images) over the whole global batch.
        Each rank back-propagates the *sum* of its images' losses; the
        gradients are averaged over ranks (during backward, by buckets) and
        the update scales them by ranks / images, which makes them the
        gradient of the mean loss over the global batch whatever the sizes
        of the slices (the last batch of an epoch may leave a rank empty).
        """
        r = self.recipe
        n = len(y)
        micro = r.micro_batch or max(n, 1)
        self.optimizer.zero_grad()
        dev = self.device
        stats = []   # per micro-batch, on the device: (mean loss, correct predictions)
        starts = list(range(0, n, micro))
        for k, s in enumerate(starts):
            xb, yb = x[s:s + micro], y[s:s + micro]
            with self.sync.during_backward(k == len(starts) - 1):
                logits = self.model(Tensor(dev.asarray(xb, dtype=self.recipe.dtype),
                                           device=dev))
                loss = F.softmax_cross_entropy(logits, yb)
                (loss * len(yb)).backward()
            with dev.context():
                hits = (logits.data.argmax(axis=1) == dev.asarray(yb)).sum()
                stats.append(dev.xp.stack([loss.data.astype(np.float64), hits.astype(np.float64)]))
        self.sync.finish()
        # The one wait of the step for the device, once all of its work is
        # queued (the gradient exchange included): reading a loss right after
        # its forward pass would keep the host from queueing backward meanwhile.
        with dev.context():
            read = as_numpy(dev.xp.stack(stats)) if stats else []
        loss_total, correct, bad = 0.0, 0, None
        for s, (value, hits) in zip(starts, read):
            if not math.isfinite(value) and bad is None:
                bad = float(value)
            loss_total += float(value) * len(y[s:s + micro])
            correct += int(hits)
        stop = self.stop_signal is not None
        loss_total, correct, images, bad_ranks, stops = self.comm.sum_host(
            [loss_total, correct, n, bad is not None, stop])
        if stops and not stop:
            self.stop_signal = "on another rank"
        if bad_ranks:
            value = bad if bad is not None else "non-finite on another rank"
            last = self.checkpoint_path()
            kept = (f"no checkpoint was written after it, so {last} still holds the last good "
                    f"state" if os.path.exists(last) else
                    "no checkpoint was written (the run had not finished an epoch)")
            raise TrainingDiverged(
                f"the loss became {value} at step {self.global_step + 1} (epoch "
                f"{self.epoch + 1}, batch {self.batch + 1}); {kept}. Lower --lr (now "
                f"{self.optimizer.lr:g}) or check the data")
        scale = self.comm.size / max(images, 1)
        if r.warmup_steps and self.global_step < r.warmup_steps:
            # Ramp the rate linearly over the first steps; large early steps kill
            # ReLUs of the narrow FC layers for good (docs/training.md).
            lr = self.optimizer.lr
            self.optimizer.lr = lr * (self.global_step + 1) / r.warmup_steps
            self.optimizer.step(grad_scale=scale)
            self.optimizer.lr = lr
        else:
            self.optimizer.step(grad_scale=scale)
        return loss_total / max(images, 1), int(correct), int(images)

    def describe(self):
        """One line: the model, its size, the data, where it runs, what it writes."""
        r, m = self.recipe, self.model
        files = ", ".join(f for f in self.RUN_FILES if f != "curves.png" or r.plot)
        return (f"VGG-{r.cfg} (widths x{r.width_mult:g}, FC {r.resolved_fc_width()}, "
                f"{len(self.classes)} classes, {r.crop}x{r.crop} crops): "
                f"{m.num_parameters():,} parameters | data {r.data}: {len(self.train_ds):,} "
                f"training and {len(self.val_ds):,} validation images | {self.device}, "
                f"{self.comm.size} rank(s), {threads()} thread(s) | writing {r.out}/ "
                f"({files})")

    def run(self):
        """Train to the end of the recipe; returns the metrics history."""
        self._setup()
        self.log(self.describe())
        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # A diverging run is reported once, by the loss check, not by
            # NumPy's overflow warnings along the way.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._epochs()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if self.recipe.plot and self.history:
            self.plot()
        return self.history

    def _epochs(self):
        """The §3.1 loop: epochs of SGD steps, each ended by validation."""
        from tqdm import tqdm
        r = self.recipe
        while self.epoch < r.epochs:
            if r.max_steps and self.global_step >= r.max_steps:
                break
            self._set_threads()  # the machine's other work may have changed
            self.train_loader.set_epoch(self.epoch)
            t0 = time.perf_counter()
            bar = tqdm(total=len(self.train_loader), initial=self.batch,
                       desc=f"epoch {self.epoch + 1}/{r.epochs}", unit="batch",
                       disable=not (r.progress and self.is_root), **_bar_style())
            p = self.partial
            for x, y in self.train_loader.iter_from(self.batch):
                ts = time.perf_counter()
                loss, correct, images = self.train_step(x, y)
                self.batch = self.train_loader.position
                self.global_step += 1
                p["loss"] += loss * images
                p["correct"] += correct
                p["seen"] += images
                bar.update(self.batch - bar.n)
                bar.set_postfix(loss=f"{p['loss'] / max(p['seen'], 1):.3f}",
                                acc=f"{p['correct'] / max(p['seen'], 1):.3f}",
                                img_s=f"{images / (time.perf_counter() - ts):.1f}",
                                lr=f"{self.optimizer.lr:g}")
                if self.stop_signal is not None or (r.max_steps and
                                                    self.global_step >= r.max_steps):
                    break
            bar.close()
            p["time"] += time.perf_counter() - t0
            p["skipped"] += int(self.comm.sum_host([len(self.train_loader.skipped)])[0])
            if self.stop_signal is not None or self.batch < len(self.train_loader):
                path = self.save()
                if self.stop_signal is not None:
                    self.log(f"stopped by signal {self.stop_signal}; state saved to {path}; "
                             f"continue with --resume {r.out}")
                    raise KeyboardInterrupt
                self.log(f"stopped at --max-steps {r.max_steps}; state saved to {path}")
                break
            self._end_epoch()

    def _end_epoch(self):
        r = self.recipe
        p = self.partial
        val_loss, top1, top5 = evaluate_loader(self.model, self.val_loader,
                                               r.progress and self.is_root, comm=self.comm)
        val_skipped = int(self.comm.sum_host([len(self.val_loader.skipped)])[0])
        row = {"epoch": self.epoch + 1, "step": self.global_step,
               "train_loss": p["loss"] / max(p["seen"], 1),
               "train_top1_err": 1.0 - p["correct"] / max(p["seen"], 1),
               "val_loss": val_loss, "val_top1_err": top1, "val_top5_err": top5,
               "lr": self.optimizer.lr, "time_s": p["time"],
               "images_per_s": p["seen"] / max(p["time"], 1e-9),
               "skipped_images": p["skipped"] + val_skipped}
        self.history.append(row)
        if self.is_root:
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
        if self.best is None or top1 < self.best["val_top1_err"]:
            self.best = {"epoch": row["epoch"], "val_top1_err": top1, "val_top5_err": top5}
            self.save(self.checkpoint_path("best.npz"))
        self.save()
        if row["skipped_images"] and self.is_root:
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
