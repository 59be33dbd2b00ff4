"""The files of a training run's folder (``--out``), kept consistent with its
checkpoint whatever stops the run (§3.1's training runs; docs/training.md,
"When things fail").

Every file is written atomically (checkpoint.atomic_write): a write that
fails, on a full disk or a failing one, leaves the previous file whole.
``metrics.jsonl`` holds one row per epoch *whose checkpoint was written*:
it is rewritten from the checkpoint's history after each ``last.npz``, and
on ``--resume`` it is made the resumed checkpoint's history again (rows of
epochs after it cut, missing or half-written rows restored), so a log never
holds an orphan or a repeated epoch.
"""
import json
import os

from .checkpoint import CheckpointError, atomic_write, load_checkpoint, read_meta

METRICS = "metrics.jsonl"


def write_json(path, obj, **kwargs):
    """Write ``obj`` as JSON to ``path``, atomically."""
    text = json.dumps(obj, **kwargs).encode("utf-8")
    return atomic_write(path, lambda f: f.write(text), suffix=".json")


def metrics_text(history):
    """metrics.jsonl's content for a history: one JSON row per epoch."""
    return "".join(json.dumps(row) + "\n" for row in history)


def write_metrics(out, history):
    """Write ``out``/metrics.jsonl with the rows of ``history``, atomically."""
    text = metrics_text(history).encode("utf-8")
    return atomic_write(os.path.join(out, METRICS), lambda f: f.write(text), suffix=".jsonl")


def _epochs_held(text):
    """'epochs 1, 2, 2' (and 'a half-written row') for a metrics.jsonl text."""
    epochs, bad = [], 0
    for line in text.splitlines():
        try:
            epochs.append(str(json.loads(line)["epoch"]))
        except (ValueError, KeyError, TypeError):
            bad += 1
    held = f"epochs {', '.join(epochs)}" if epochs else "no epoch"
    return held + (f" and {bad} unreadable row(s)" if bad else "")


def reconcile_metrics(out, history, log):
    """On resume: make ``out``/metrics.jsonl the checkpoint's ``history``,
    saying what changed. Returns True if the file was rewritten."""
    path = os.path.join(out, METRICS)
    want = metrics_text(history)
    try:
        with open(path, "rb") as f:
            held = f.read().decode("utf-8")
    except FileNotFoundError:
        held = None
    except (OSError, UnicodeDecodeError) as e:
        held = f"<unreadable: {e}>"
    if held == want or (held is None and not history):
        return False
    write_metrics(out, history)
    last = history[-1]["epoch"] if history else 0
    was = ("was missing" if held is None else "could not be read" if held.startswith("<unreadable")
           else f"held {_epochs_held(held)}")
    log(f"{path} {was}; rewritten from the checkpoint, which ends at epoch {last}")
    return True


def _resumable(path):
    """True if ``path`` is a checkpoint that holds a whole training state."""
    try:
        ck = load_checkpoint(path)
    except CheckpointError:
        return False
    return ck.meta.get("epoch") is not None and ck.optimizer_state is not None


def resume_advice(path):
    """What to do when the checkpoint ``path`` given to --resume cannot be
    used: None unless it belongs to a run folder."""
    path = os.fspath(path)
    file = os.path.join(path, "last.npz") if os.path.isdir(path) else path
    folder = os.path.dirname(os.path.abspath(file))
    run_files = ("last.npz", "best.npz", METRICS, "recipe.json")
    if os.path.basename(file) not in run_files[:2] and not any(
            os.path.exists(os.path.join(folder, f)) for f in run_files[2:]):
        return None  # not a run's checkpoint: the error itself says what is wrong
    folder = os.path.dirname(file) or "."
    best = os.path.join(folder, "best.npz")
    options = ["restore it from a backup"]
    if os.path.abspath(best) != os.path.abspath(file) and _resumable(best):
        options.append(f"continue from the best epoch's state ({checkpoint_state(best)}) with "
                       f"--resume {best}")
    options.append(f"start over in {folder} with --overwrite")
    return "; or ".join(options)


def load_for_resume(path):
    """load_checkpoint(path) for --resume: a damaged checkpoint of a run is
    reported with what to do about it."""
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        advice = resume_advice(path)
        if advice is None:
            raise
        raise CheckpointError(f"{e}; {advice}") from e


def check_best(ck, out):
    """On resume: a best.npz in ``out`` that cannot be read is refused, since
    the run would otherwise go on naming it as its best model."""
    best = os.path.join(out, "best.npz")
    if not ck.meta.get("best") or not os.path.exists(best) or \
            os.path.abspath(best) == os.path.abspath(ck.path):
        return
    try:
        read_meta(best)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; it is the model of the run's best epoch "
                              f"({ck.meta['best']['epoch']}): restore it from a backup, or delete "
                              f"it to go on without it (the next epoch to end becomes the best so "
                              f"far)") from e


def best_on_resume(best, out, log):
    """The resumed record of the best epoch: forgotten, with a note, when its
    best.npz is not in ``out`` (deleted, or a resume into another folder), so
    that the next epoch writes one."""
    path = os.path.join(out, "best.npz")
    if best and not os.path.exists(path):
        log(f"note: {path} does not exist; the best epoch so far (epoch {best['epoch']}, top-1 "
            f"error {100 * best['val_top1_err']:.2f}%) is forgotten, and the next epoch to end "
            f"writes a new best.npz")
        return None
    return best


def checkpoint_state(path):
    """'the end of epoch 2 (step 8)' or 'epoch 3 up to batch 4 (step 12)' for
    the training state in checkpoint ``path``; None if it cannot be read."""
    try:
        meta = read_meta(path)
        epoch, batch, step = meta["epoch"], meta["batch"], meta["global_step"]
    except Exception:  # a message must never hide the failure it reports
        return None
    if batch == 0:
        return f"the end of epoch {epoch} (step {step})" if epoch else "the start"
    return f"epoch {epoch + 1} up to batch {batch} (step {step})"
