"""The §3.1 loop: epochs of SGD steps, each ended by validation, the
learning rate divided by 10 when validation accuracy stops improving, and
checkpoints from which a run continues bit for bit.

``Trainer(recipe).run()`` trains. Checkpoints hold everything needed to
continue bit-identically on the CPU: weights, momentum buffers, scheduler,
epoch and batch position, the dropout RNG state, the recipe and the mean RGB.
One step is step.py's; what a failure saves and says is failures.py's.
"""
import dataclasses
import math
import os
import signal
import sys
import time

import numpy as np

from .. import random as mrandom
from .. import runfolder
from ..autograd import Tensor
from ..backend import DeviceError, as_numpy, device as get_device, set_tf32
from ..checkpoint import CheckpointError, atomic_write, save_checkpoint
from ..data.preprocess import from_meta, preset as make_preset
from ..data.transforms import parse_scale
from ..distributed import DistributedError, GradientSync
from ..fast.select import use_ops
from ..finetune import describe_preprocess, freeze, init_from_weights, photo_hint, \
    training_preprocess
from ..memory import keep_freed_memory
from ..models import vgg
from ..optim import SGD, ReduceLROnPlateau
from ..threads import OtherWork, auto_threads, set_threads, threads
from .data import make_datasets, mean_rgb_cached
from .failures import training_failure
from .recipe import TrainingDiverged, _absolute_data, _flag, scale_for_meta
from .step import accumulate, warmup
from .validation import evaluate_loader


#: With --threads 0, a run whose training step does fewer multiply-adds
#: than this in its forward pass (per rank) uses one thread: its ops are too
#: small for the hand-offs to a second thread to pay. Measured 2026-12-07 on
#: the project's 2-core machine (docs/benchmarks.md, "Default example run:
#: one thread against two"): the default example's model (VGG-A x0.25, FC
#: 128, 32x32, batch 64: 0.6e9 per step) took 4 min 43 s with two threads
#: and 4 min 0 s and 4 min 12 s with one, its step 1.02x faster on two
#: ("Threads: where a training step's time goes"); full width at 32x32
#: (9.8e9) ran 1.6x faster on two.
AUTO_ONE_THREAD_MACS = 1 << 30


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

    def __init__(self, recipe, resume=None, log=print, comm=None, notes=()):
        from ..distributed import SingleProcess
        self.recipe = recipe
        self.comm = comm if comm is not None else SingleProcess()
        self.is_root = self.comm.rank == 0
        self.log = log if self.is_root else (lambda *a, **k: None)
        self.stop_signal = None
        self.step_rng = None  # dropout's state when the step under way began
        self.resume_ckpt = None
        self.source = None  # the --init-from weights (io.LoadedWeights), until copied
        self.notes = list(notes)  # lines logged after the first one
        self._unreadable = set()  # images already reported as unreadable in this run
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
        recipe.validate(resuming=bool(resume))
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
            self.resume_ckpt = runfolder.load_for_resume(resume)
            if self.resume_ckpt.meta.get("epoch") is None:
                raise CheckpointError(f"{self.resume_ckpt.path} holds no training state to "
                                      f"resume from")
            if self.resume_ckpt.optimizer_state is None:
                folder = os.path.dirname(self.resume_ckpt.path) or "."
                raise CheckpointError(
                    f"{self.resume_ckpt.path} holds the model without the optimizer's state "
                    f"(best.npz keeps none unless the run had --best-with-optimizer); resume "
                    f"from the run's last.npz: --resume {folder}")
            self._check_same_run(self.resume_ckpt)
            runfolder.check_best(self.resume_ckpt, recipe.out)
        else:
            self._check_run_folder()
            if recipe.init_from:  # a file that cannot start this run fails now
                from ..io import load_model
                self.source = load_model(recipe.init_from)

    #: Output files of a run, in its --out folder.
    RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "recipe.json", "curves.png")
    #: Recipe fields a resumed run may change; the others must be the checkpoint's.
    MAY_CHANGE_ON_RESUME = ("epochs", "max_steps", "workers", "threads", "keep_freed_memory",
                            "micro_batch", "device", "ops",
                            "tf32", "distributed", "overlap", "bucket_mb", "plot", "progress",
                            "strict", "resume_lr", "out", "overwrite", "best_with_optimizer")

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
        from ..models.rows import layer_rows
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
        use_ops(self.recipe.ops)    # the tier every op, the model and the data pipeline use
        self._agree(self._prepare)
        comm = self.comm
        # Rank 0 computed (or found) the mean RGB; the others receive it.
        self.mean_rgb = np.asarray(comm.broadcast_object(self.mean_rgb), np.float64)
        if self.preprocess is None:  # §2.1: this training set's mean, in the recipe's units
            self.preprocess = make_preset("minivgg", self.mean_rgb, self.recipe.pixel_scale)
        self._make_loaders()
        # Every rank starts from rank 0's weights, and exchanges gradients
        # through the optimizer's flat buffer.
        comm.broadcast(self.optimizer.buffers().data)
        self.sync = GradientSync(comm, self.optimizer.buffers(), self.recipe.bucket_mb,
                                 self.recipe.overlap)
        if self.is_root:
            # The settings, and the input preprocessing they resolved to.
            runfolder.write_json(os.path.join(self.recipe.out, "recipe.json"),
                                 {**dataclasses.asdict(self.recipe),
                                  "preprocess": self.preprocess.to_meta()}, indent=2)
            if self.resume_ckpt is not None:  # its log, not one cut short or run past it
                runfolder.reconcile_metrics(self.recipe.out, self.history, self.log)

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
            saved = ck.meta.get("preprocess")
            self.preprocess = from_meta(saved, ck.path) if saved is not None else None
            self.preprocess_origin = f"(as {ck.path} records)"
        else:  # §2.1: one training-set mean for every stage of the S schedule
            self.preprocess, mean, self.preprocess_origin = training_preprocess(r, self.source)
            if mean is not None:
                self.mean_rgb = np.asarray(mean, np.float64)
            else:  # rank 0 computes (or finds) it; the others receive it in _setup
                self.mean_rgb = (mean_rgb_cached(r, self.train_ds, self._report_skip)
                                 if self.is_root else None)
        self.model = vgg(r.cfg, num_classes=len(self.classes), fc_width=r.resolved_fc_width(),
                         input_size=r.crop, width_mult=r.width_mult, dropout=r.dropout,
                         init=r.init, init_std=r.init_std, seed=r.seed, fc_bias=r.fc_bias,
                         dtype=np.dtype(r.dtype))
        self.copied = []
        if ck is None and r.init_from:
            self._init_from_source()
        frozen = freeze(self.model, r.freeze)
        if frozen and ck is None:
            self.notes.append(f"--freeze {r.freeze}: the {frozen} tensors of the conv layers stay "
                              f"as they are; fc6-fc8 train")
        self.model.to(self.device)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = SGD(trainable, r.lr, r.momentum, r.weight_decay)
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

    def _init_from_source(self):
        """Copy the --init-from weights (§3.1, or fine-tuning), then let them go."""
        r, src = self.recipe, self.source.model
        self.copied, fresh = init_from_weights(self.model, src, f"--init-from {r.init_from}")
        self.notes.append(f"initialised {len(self.copied)} tensors from {self.source.path} "
                          f"(VGG-{src.cfg}, {src.num_classes} classes, {self.source.layout} "
                          f"names, .{self.source.format})")
        if fresh:
            self.notes.append(f"fc8 ({', '.join(fresh)}) re-initialised ({r.init}): the weights "
                              f"have {src.num_classes} classes, this data set "
                              f"{len(self.classes)}")
        self.source = None

    def _report_skip(self, desc, message):
        """One line per unreadable image per run (the loaders meet it every epoch)."""
        if desc in self._unreadable:
            return
        self._unreadable.add(desc)
        why = message.replace(f"cannot decode image {desc}: ", "").replace(f" '{desc}'", "")
        rank = f"rank {self.comm.rank}: " if self.comm.size > 1 else ""
        print(f"{rank}warning: skipping unreadable image {desc} in every epoch ({why}); --strict "
              f"stops on it instead", file=sys.stderr, flush=True)

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
        self.best = runfolder.best_on_resume(ck.meta.get("best"), self.recipe.out, self.log)
        self.log(f"resumed from {ck.path}: epoch {self.epoch + 1}, batch {self.batch}, "
                 f"step {self.global_step}, lr {self.optimizer.lr:g}")

    def _make_loaders(self):
        """Training and validation loaders: each rank loads its slice of every batch."""
        from ..data import DataLoader, eval_transform, train_transform
        r, comm = self.recipe, self.comm
        scale = parse_scale(r.scale)
        shard = (comm.rank, comm.size)
        # §2.1's mean subtraction as always (in the recipe's pixel units, or in
        # those of the --init-from checkpoint); other weights' conventions whole.
        if self.preprocess.name == "minivgg":
            norm, units = self.mean_rgb, 255.0 * self.preprocess.scale
            units = r.pixel_scale if math.isclose(units, r.pixel_scale) else units
        else:
            norm, units = self.preprocess, 1.0
        self.train_loader = DataLoader(self.train_ds, r.batch_size,
                                       train_transform(r.crop, scale, norm,
                                                       pixel_scale=units),
                                       shuffle=True, seed=r.seed, workers=r.workers,
                                       strict=r.strict, shard=shard, on_skip=self._report_skip)
        val_batch = -(-max(r.batch_size, 64) // comm.size) * comm.size
        self.val_loader = DataLoader(self.val_ds, val_batch,
                                     eval_transform(r.crop, scale, norm,
                                                    pixel_scale=units),
                                     shuffle=False, seed=r.seed, workers=r.workers,
                                     strict=r.strict, shard=shard, on_skip=self._report_skip)

    # -- checkpoints -----------------------------------------------------------
    def checkpoint_path(self, name="last.npz"):
        return os.path.join(self.recipe.out, name)

    def save(self, path=None, optimizer=True):
        """Write the model and its metadata (and, with ``optimizer``, the SGD
        state that resuming needs) to ``path`` (default last.npz)."""
        r = self.recipe
        meta = {"classes": self.classes, "mean_rgb": [float(v) for v in self.mean_rgb],
                "preprocess": self.preprocess.to_meta(),
                "train": {"scale": scale_for_meta(r.scale), "crop": r.crop,
                          "recipe": dataclasses.asdict(r), "data": _absolute_data(r.data)},
                "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
                "scheduler": self.scheduler.state_dict(), "rng": mrandom.get_state(),
                "history": self.history, "partial": self.partial, "best": self.best,
                "world_size": self.comm.size}
        path = path or self.checkpoint_path()
        if self.is_root:
            save_checkpoint(path, self.model, meta, self.optimizer if optimizer else None)
        return path

    # -- the loop ----------------------------------------------------------------
    def _handle_signal(self, signum, frame):
        self.stop_signal = signum

    def train_step(self, x, y):
        """One SGD step (step.py) on this rank's slice of a batch: the plain
        step's forward, backward and update, in --micro-batch pieces, the
        gradients averaged over ranks, the loss checked. Returns (mean loss,
        correct, images) over the whole global batch."""
        r = self.recipe
        self.optimizer.zero_grad()
        stats = accumulate(self.model, x, y, r.micro_batch, self._input, self.sync)
        self.sync.finish()
        # The one wait of the step for the device, once all of its work is
        # queued (the gradient exchange included): reading a loss right after
        # its forward pass would keep the host from queueing backward meanwhile.
        with self.device.context():
            loss_sum, correct = (0.0, 0) if stats is None else as_numpy(stats).tolist()
        stop = self.stop_signal is not None
        loss_total, correct, images, bad_ranks, stops = self.comm.sum_host(
            [loss_sum, correct, len(y), not math.isfinite(loss_sum), stop])
        if stops and not stop:
            self.stop_signal = "on another rank"
        if bad_ranks:
            self._diverged(loss_sum / max(len(y), 1) if not math.isfinite(loss_sum) else None)
        with warmup(self.optimizer, self.global_step, r.warmup_steps):
            self.optimizer.step(grad_scale=self.comm.size / max(images, 1))
        return loss_total / max(images, 1), int(correct), int(images)

    def _input(self, xb):
        """Host images -> the model's input Tensor on this run's device and dtype."""
        return Tensor(self.device.asarray(xb, dtype=self.recipe.dtype), device=self.device)

    def _diverged(self, value):
        """Stop: the loss became ``value`` (None: on another rank)."""
        value = value if value is not None else "non-finite on another rank"
        last = self.checkpoint_path()
        kept = (f"no checkpoint was written after it, so {last} still holds the last good "
                f"state" if os.path.exists(last) else
                "no checkpoint was written (the run had not finished an epoch)")
        raise TrainingDiverged(
            f"the loss became {value} at step {self.global_step + 1} (epoch "
            f"{self.epoch + 1}, batch {self.batch + 1}); {kept}. Lower --lr (now "
            f"{self.optimizer.lr:g}) or check the data")

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
        """Train to the end of the recipe; returns the metrics history.

        A failure that is not the request's (a full disk, a killed loader
        worker, memory running out) is raised as one failures.RunFailed line,
        after saving the state of the last completed step where it is intact
        (failures.training_failure)."""
        try:
            self._setup()
        except (ValueError, FileNotFoundError, DeviceError, DistributedError):  # the request's
            raise
        except Exception as e:
            raise training_failure(self, e, "setup") from e
        self.log(self.describe())
        for line in self.notes:
            self.log(line)
        self.log(f"preprocessing: {describe_preprocess(self.preprocess)} "
                 f"{self.preprocess_origin}")
        if self.resume_ckpt is None and self.is_root:
            hint = photo_hint(self.recipe, self.train_ds)
            if hint:
                self.log(hint)
        old = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # A diverging run is reported once, by the loss check, not by
            # NumPy's overflow warnings along the way.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._epochs()
        except (KeyboardInterrupt, TrainingDiverged):
            raise
        except Exception as e:
            raise training_failure(self, e, "train") from e
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if self.recipe.plot and self.history:
            try:
                self.plot()
            except Exception as e:
                raise training_failure(self, e, "plot") from e
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
                self.step_rng = mrandom.get_state()  # what a failure in the step goes back to
                loss, correct, images = self.train_step(x, y)
                self.step_rng = None
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
                                               r.progress and self.is_root, comm=self.comm,
                                               chunk=r.micro_batch)
        val_skipped = int(self.comm.sum_host([len(self.val_loader.skipped)])[0])
        row = {"epoch": self.epoch + 1, "step": self.global_step,
               "train_loss": p["loss"] / max(p["seen"], 1),
               "train_top1_err": 1.0 - p["correct"] / max(p["seen"], 1),
               "val_loss": val_loss, "val_top1_err": top1, "val_top5_err": top5,
               "lr": self.optimizer.lr, "time_s": p["time"],
               "images_per_s": p["seen"] / max(p["time"], 1e-9),
               "skipped_images": p["skipped"] + val_skipped}
        self.history.append(row)
        k = min(5, len(self.classes))  # top-5 of 3 classes is a top-3
        self.log(f"epoch {row['epoch']}/{r.epochs}: train loss {row['train_loss']:.4f}, "
                 f"top-1 err {100 * row['train_top1_err']:.2f}% | val top-1 err "
                 f"{100 * top1:.2f}%, top-{k} err {100 * top5:.2f}% | lr {row['lr']:g} | "
                 f"{row['time_s']:.1f} s, {row['images_per_s']:.1f} img/s | skipped "
                 f"{row['skipped_images']} images"
                 + (" (unreadable; --strict stops on them)" if row["skipped_images"] else ""))
        if self.scheduler.step(1.0 - top1):
            self.log(f"validation accuracy stopped improving: lr divided by 10 to "
                     f"{self.optimizer.lr:g}")
        self.epoch += 1
        self.batch = 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0, "skipped": 0}
        if self.best is None or top1 < self.best["val_top1_err"]:
            self.best = {"epoch": row["epoch"], "val_top1_err": top1, "val_top5_err": top5}
            # The model and what evaluation needs; the momentum buffers (as
            # large as the model) only when asked: last.npz is the one to resume.
            self.save(self.checkpoint_path("best.npz"), optimizer=r.best_with_optimizer)
        self.save()
        if self.is_root:  # the log gains the row once the checkpoint holds it
            runfolder.write_metrics(r.out, self.history)

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
        try:
            atomic_write(path, lambda name: fig.savefig(name, dpi=100, format="png"),
                         suffix=".png", by_name=True)
        finally:
            plt.close(fig)
        return path
