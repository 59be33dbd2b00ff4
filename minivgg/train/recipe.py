"""Every setting of a training run (§3.1), and what makes a recipe impossible.

``Recipe`` is what the command line of examples/train_vgg.py maps onto, one
field per option; its defaults are the small CPU profile (docs/training.md
explains each one and the paper's value beside it; minivgg/profiles.py holds
the paper's).
"""
import dataclasses
import math
import os

from ..backend import parse_device
from ..data.preprocess import PRESETS
from ..data.transforms import parse_scale
from ..fast.select import TIERS
from ..finetune import FREEZE
from ..models import CONFIGS
from ..nn.init import INIT_SCHEMES


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


def _absolute_data(data):
    """--data with its directory made absolute, so that evaluation finds the
    data set from any directory."""
    kind, sep, path = data.partition(":")
    return f"{kind}:{os.path.abspath(path)}" if sep and path else data


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
    init_from: str = ""               # any weights file io.load_model reads (fine-tuning, §3.1)
    freeze: str = "none"              # none | features: keep the conv layers fixed
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
    best_with_optimizer: bool = False  # best.npz also keeps the momentum buffers (resumable)
    strict: bool = False
    mean_images: int = 0              # images read for the mean RGB; 0: all
    pixel_scale: float = 1.0          # input units: 1 -> [0, 1] minus mean; paper (Caffe): 255
    preset: str = "auto"              # auto: the --init-from file's, else minivgg (§2.1) |
                                      # minivgg | torchvision | caffe (data/preprocess.py)
    progress: bool = True
    device: str = "cpu"               # cpu | cuda | cuda:N | emu (the CUDA kernels on the CPU)
    tf32: bool = False                # allow TF32 tensor-core GEMMs on a cuda device
    dtype: str = "float32"            # float64: for exact equivalence and gradient checks
    threads: int = 0                  # CPU threads for BLAS and copies; 0: what is free, per epoch
    ops: str = "fast"                 # fast | reference (the textbook ops, minivgg/functional)
    keep_freed_memory: bool = True    # keep freed memory in the process: no page faults (memory.py)
    distributed: str = "none"         # none | mpi (CPU processes) | nccl (one GPU per process)
    overlap: bool = True              # average gradient buckets during backward
    bucket_mb: float = 25.0           # size of those buckets
    overwrite: bool = False           # start over in a folder that holds another run
    resume_lr: float = 0.0            # >0: the lr to continue with on resume (a manual drop)

    def resolved_fc_width(self):
        return self.fc_width or (4096 if self.crop >= 224 else 128)

    def validate(self, resuming=False):
        """Reject impossible recipes before any work, saying what to change.
        ``resuming``: the run continues a checkpoint, so its --init-from file
        is not read again and need not exist any more."""
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
        if self.ops not in TIERS:
            raise ValueError(f"--ops must be one of {', '.join(TIERS)}, got {self.ops!r}")
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
        if self.init_from and not resuming and not os.path.exists(self.init_from):
            raise FileNotFoundError(f"--init-from {self.init_from!r} does not exist")
        if self.preset not in ("auto",) + PRESETS:
            raise ValueError(f"unknown --preset {self.preset!r}; expected auto, "
                             f"{', '.join(PRESETS)}")
        if self.freeze not in FREEZE:
            raise ValueError(f"unknown --freeze {self.freeze!r}; expected one of "
                             f"{', '.join(FREEZE)}")
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
