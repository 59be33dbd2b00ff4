"""Checkpoints without pickle: one ``.npz`` file of arrays plus JSON metadata.

Layout of the archive (loaded with ``allow_pickle=False``, so a crafted
file cannot run code):

    model/<param name>        the model's state dict
    optim/velocity/<i>        SGD momentum buffers (absent where None)
    __meta__                  UTF-8 JSON as a uint8 array: model config,
                              classes, mean RGB and the input preprocessing
                              (data.preprocess), training recipe, epoch,
                              step, optimizer scalars, scheduler and RNG
                              states, metrics

Writes are atomic: the file is written next to its destination under a
temporary name, flushed to disk, then renamed over it, so an interrupted
write leaves the previous checkpoint intact. Loading checks the format tag,
every array's presence and shape, and the zip CRCs; any problem raises
``CheckpointError`` before anything is handed back, so a caller never sees a
half-loaded model.
"""
import contextlib
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .files import atomic_write  # noqa: F401  (where the run folder's writers find it)

FORMAT = "minivgg-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, truncated, corrupted or not a minivgg checkpoint."""


def save_checkpoint(path, model, meta, optimizer=None):
    """Atomically write ``model`` (and ``optimizer``) with ``meta`` to ``path``.

    meta: a JSON-serialisable dict (recipe, epoch, ...); the model config
    and the optimizer's scalars are added here.
    """
    arrays = OrderedDict()
    for name, arr in model.state_dict().items():
        arrays[f"model/{name}"] = arr
    meta = dict(meta)
    meta["format"], meta["version"] = FORMAT, VERSION
    if "preprocess" not in meta and meta.get("mean_rgb") is not None:
        from .data.preprocess import preset
        recipe = (meta.get("train") or {}).get("recipe") or {}
        meta["preprocess"] = preset("minivgg", meta["mean_rgb"],
                                    recipe.get("pixel_scale", 1.0)).to_meta()
    meta["model"] = model_config(model)
    meta["model_keys"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    if optimizer is not None:
        st = optimizer.state_dict()
        meta["optimizer"] = {k: st[k] for k in ("lr", "momentum", "weight_decay", "steps")}
        meta["optimizer"]["velocity"] = [v is not None for v in st["velocity"]]
        for i, v in enumerate(st["velocity"]):
            if v is not None:
                arrays[f"optim/velocity/{i}"] = v
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def model_config(model):
    """The keyword arguments that rebuild ``model`` with ``models.vgg``."""
    return {"cfg": model.cfg, "num_classes": model.num_classes, "fc_width": model.fc_width,
            "input_size": model.input_size, "width_mult": model.width_mult,
            "dropout": model.classifier[2].p}


class Checkpoint:
    """What ``load_checkpoint`` returns: ``model_state`` (OrderedDict of
    arrays), ``optimizer_state`` (dict for ``SGD.load_state_dict`` or None)
    and ``meta`` (dict)."""

    def __init__(self, model_state, optimizer_state, meta, path):
        self.model_state, self.optimizer_state, self.meta, self.path = \
            model_state, optimizer_state, meta, path

    def build_model(self):
        """A VGG with this checkpoint's configuration and weights."""
        from .models import vgg
        model = vgg(**self.meta["model"], init=None)
        model.load_state_dict(self.model_state)
        return model


def resolve_checkpoint_path(path):
    """A file path as is; a directory -> its ``last.npz``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        cand = os.path.join(path, "last.npz")
        if not os.path.exists(cand):
            raise CheckpointError(f"no checkpoint in directory {path!r} (expected {cand!r})")
        return cand
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    return path


@contextlib.contextmanager
def _damage_is_checkpoint_error(path):
    """Any error of reading ``path`` (a damaged zip, a bad array or JSON)
    becomes one CheckpointError naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError,
            UnicodeDecodeError, json.JSONDecodeError) as e:
        state = ("cannot be read" if isinstance(e, OSError) and e.errno is not None  # an I/O error
                 else "is truncated or corrupted")
        raise CheckpointError(f"checkpoint {path!r} {state} ({type(e).__name__}: {e})") from e


def _meta(z, path):
    """The JSON metadata of the open .npz ``z``."""
    if "__meta__" not in z.files:
        raise CheckpointError(f"{path!r} is not a minivgg checkpoint (no __meta__ entry)")
    return json.loads(bytes(z["__meta__"]).decode("utf-8"))


def read_meta(path):
    """Only the JSON metadata of a checkpoint (no weights are read): a dict."""
    path = resolve_checkpoint_path(path)
    with _damage_is_checkpoint_error(path), np.load(path, allow_pickle=False) as z:
        return _meta(z, path)


def load_checkpoint(path):
    """Read and validate a checkpoint (file, or directory holding last.npz)."""
    path = resolve_checkpoint_path(path)
    with _damage_is_checkpoint_error(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":  # every .npz is a zip archive
            raise CheckpointError(f"{path!r} is not a minivgg checkpoint: it is not an .npz "
                                  f"archive (a checkpoint is the last.npz or best.npz that "
                                  f"train_vgg.py writes)")
        with np.load(path, allow_pickle=False) as z:
            meta = _meta(z, path)
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path!r} is not a minivgg checkpoint "
                                      f"(format {meta.get('format')!r})")
            if meta.get("version", 0) > VERSION:
                raise CheckpointError(f"{path!r} was written by a newer minivgg (checkpoint "
                                      f"version {meta['version']}, this one reads {VERSION})")
            model_state = OrderedDict()
            for name, shape in meta["model_keys"].items():
                key = f"model/{name}"
                if key not in z.files:
                    raise CheckpointError(f"{path!r} lacks the array {key!r}")
                arr = z[key]  # reading checks the zip CRC
                if list(arr.shape) != list(shape):
                    raise CheckpointError(f"{path!r}: {key} has shape {arr.shape}, metadata says "
                                          f"{tuple(shape)}")
                model_state[name] = arr
            optimizer_state = None
            if "optimizer" in meta:
                o = meta["optimizer"]
                velocity = []
                for i, present in enumerate(o["velocity"]):
                    key = f"optim/velocity/{i}"
                    if present and key not in z.files:
                        raise CheckpointError(f"{path!r} lacks the array {key!r}")
                    velocity.append(z[key] if present else None)
                optimizer_state = {k: o[k] for k in ("lr", "momentum", "weight_decay", "steps")}
                optimizer_state["velocity"] = velocity
    return Checkpoint(model_state, optimizer_state, meta, path)
