"""What a failure during training saves, and the one line that says so
(the rule of minivgg/failures.py, applied to the trainer).

``training_failure`` decides whether the state in memory can be saved: not
when the failure interrupted the weight update (the weights would be
half-updated), nor when it came from writing a checkpoint (the disk that
refused one checkpoint refuses the next). docs/training.md, "When things
fail", lists each case.
"""
import os
import traceback

from .. import random as mrandom
from ..checkpoint import atomic_write, read_meta, save_checkpoint
from ..data.base import CorruptImageError
from ..data.loader import WorkerDied
from ..failures import RunFailed, WriteError, _first_line, describe
from ..optim import SGD
from ..runfolder import checkpoint_state
from .recipe import _flag
from .validation import evaluate_loader


def _raised_in(e, *functions):
    """True if one of ``functions`` was running when ``e`` was raised."""
    codes = {f.__code__ for f in functions}
    return any(frame.f_code in codes for frame, _ in traceback.walk_tb(e.__traceback__))


#: How the command line turns a setting back on that a resumed run may change.
_SWITCHES = {("plot", True): "--plot", ("strict", True): "--strict", ("tf32", True): "--tf32",
             ("progress", False): "--no-progress", ("overlap", False): "--no-overlap",
             ("keep_freed_memory", False): "--release-freed-memory"}


def repeat_flags(trainer, path, skip=()):
    """The flags of this run that differ from the recipe in checkpoint
    ``path`` (among those a resumed run may change): resuming from ``path``
    must repeat them to go on with what this run was doing."""
    try:
        saved = (read_meta(path).get("train") or {}).get("recipe") or {}
    except Exception:  # advice must never hide the failure it comes with
        return ""
    flags = []
    for name in trainer.MAY_CHANGE_ON_RESUME:
        mine = getattr(trainer.recipe, name)
        if name in ("out", "overwrite") or name in skip or name not in saved \
                or saved[name] == mine:
            continue
        if isinstance(mine, bool):
            flag = _SWITCHES.get((name, mine))
            if flag:  # a switch that cannot be turned off again is left to the user
                flags.append(flag)
        elif name == "resume_lr":
            if mine:
                flags.append(f"--lr {mine:g}")
        else:
            flags.append(f"{_flag(name)} {mine}")
    return "".join(" " + f for f in flags)


def how_to_continue(trainer, skip=()):
    """The command-line advice that continues the run from what is on disk
    (with the flags this run changed; ``skip``: those the caller adds)."""
    out, last = trainer.recipe.out, trainer.checkpoint_path()
    ck = trainer.resume_ckpt
    if os.path.exists(last) and (checkpoint_state(last) is not None or ck is None
                                 or os.path.abspath(ck.path) == os.path.abspath(last)):
        return f"continue with --resume {out}" + repeat_flags(trainer, last, skip)
    if ck is not None and os.path.exists(ck.path):
        return f"continue with --resume {ck.path}" + repeat_flags(trainer, ck.path, skip)
    if any(os.path.exists(os.path.join(out, f)) for f in trainer.RUN_FILES):
        return "start again with the same command and --overwrite"
    return "start again with the same command"


def _kept(trainer):
    """What the run folder still holds after a failure that saved nothing."""
    last = trainer.checkpoint_path()
    if not os.path.exists(last):
        return "no checkpoint was written yet"
    state = checkpoint_state(last)
    if state is None:
        return f"{last} cannot be read"
    return f"{last} still holds {state}"


def _memory_advice(trainer):
    """What to pass on resume when a training step ran out of memory."""
    r = trainer.recipe
    now = r.micro_batch or r.batch_size
    if now <= 1:
        return None
    return (f"--micro-batch {max(now // 2, 1)}", f"the same update in pieces of "
            f"{max(now // 2, 1)} images instead of {now}: less memory")


def training_failure(trainer, e, stage):
    """The RunFailed that reports ``e``, raised in ``stage`` ('setup', 'train'
    or 'plot') of ``trainer.run``, after saving the state of the last
    completed step where that state is intact (``stage == 'train'``)."""
    r = trainer.recipe
    half_updated = _raised_in(e, SGD.step, SGD._update)
    # After validation, the end of an epoch changes the state (history,
    # schedule, epoch counter, best) step by step until last.npz is written.
    epoch_end = (_raised_in(e, type(trainer)._end_epoch)
                 and not _raised_in(e, evaluate_loader))
    in_write = isinstance(e, WriteError) or _raised_in(e, type(trainer).save, save_checkpoint,
                                                       atomic_write)
    where = ""
    if stage == "train" and not in_write and not epoch_end:  # a failed write names its file
        where = (f" in step {trainer.global_step + 1} (epoch {trainer.epoch + 1}, batch "
                 f"{trainer.batch + 1})")
        if trainer.batch >= len(trainer.train_loader):
            where = f" while validating epoch {trainer.epoch + 1}"
    what, todo = describe(e)
    flags, given = "", ()  # flags the advice adds, and the settings they give
    if isinstance(e, MemoryError) and stage == "train":
        advice = _memory_advice(trainer)
        if advice is not None:
            flags, todo, given = f" {advice[0]} ({advice[1]})", None, ("micro_batch",)
        else:
            todo = "free some memory: the step already takes one image at a time"
    elif isinstance(e, WorkerDied):
        what = f"data-loading worker {e.wid} (pid {e.pid}) {e.how}"
        if e.deaths > 1:
            what += (f" (worker death {e.deaths} in this pass over the data; {e.deaths - 1} "
                     f"were replaced)")
        if e.killed_for_memory:
            flags = (f" --workers {r.workers // 2} (SIGKILL is what the kernel sends when memory "
                     f"runs out: fewer workers hold fewer batches)")
            given = ("workers",)
    elif isinstance(e, CorruptImageError):
        what, todo = (f"an unreadable image stopped the run (--strict): {_first_line(e)}",
                      "replace or remove the file")

    if stage == "setup":
        kept = (f"{trainer.resume_ckpt.path} is unchanged" if trainer.resume_ckpt is not None
                else "nothing was trained")
        return RunFailed(_join(what, kept, _then(todo, how_to_continue(trainer, given) + flags)))
    if stage == "plot":
        return RunFailed(_join(f"could not draw {os.path.join(r.out, 'curves.png')}: {what}"
                               if not isinstance(e, WriteError) else what,
                               f"training is complete ({trainer.checkpoint_path()}, "
                               f"{trainer.checkpoint_path('best.npz')})",
                               _then(todo, f"draw the curves with --resume {r.out} --plot")))

    # Can the state in memory be saved? Not in the middle of the weight
    # update, nor after a checkpoint write failed: then the last checkpoint
    # written stays the run's state.
    saved = None
    note = ""
    if half_updated:
        note = "the failure came in the middle of the weight update, so that state is not saved"
    elif epoch_end and not in_write:
        note = ("the failure came while the end of the epoch was being recorded, so that state "
                "is not saved")
    elif not in_write and trainer.is_root:
        if trainer.step_rng is not None:  # the failed step drew dropout masks: undo them
            mrandom.set_state(trainer.step_rng)
        try:
            saved = trainer.save()
        except Exception as e2:
            note = f"saving the state failed too ({describe(e2)[0]})"
    if saved is not None:
        state = checkpoint_state(saved) or f"step {trainer.global_step}"
        kept = f"the state at {state} was saved to {saved}"
        how = f"continue with --resume {r.out}"
    else:
        kept = _kept(trainer)
        how = how_to_continue(trainer, given)
    return RunFailed(_join(what + where, note, kept, _then(todo, how + flags)))


def _then(todo, how):
    """'free some space, then continue with ...'."""
    return f"{todo}, then {how}" if todo else how


def _join(*parts):
    """The parts of a one-line message, '; '-separated, empty ones left out."""
    text = "; ".join(p for p in parts if p)
    return " ".join(text.split())  # one line, whatever the parts held
