"""Weights in and out: safetensors, PyTorch state dicts (.pth/.pt) and .npz.

    from minivgg.io import load_model, load_weights, save_weights
    w = load_model("vgg16.safetensors")      # configuration read from the shapes
    w.model, w.preprocess, w.classes          # VGG-D, the torchvision preset, 1000 names
    load_weights(model, "vgg16.pth")          # into an existing model: all or nothing
    save_weights(model, "d.safetensors", preprocess="torchvision", layout="timm")

    format              read                                  written with
    ------------------  ------------------------------------  ----------------------------
    .safetensors        streamed into the model (no torch,     safetensors.numpy.save_file
                        no safetensors package needed)
    .pth, .pt           torch.load(weights_only=True)          torch.save (a plain state dict
                                                               torchvision loads)
    .npz                a minivgg checkpoint, or plain arrays  checkpoint.save_checkpoint

Any of torchvision's or timm's key names (see ``layouts``) are accepted and
the Table 1 configuration, width, number of classes and crop size are read
from the shapes. Loading checks everything it can before it reads a weight:
the file's header (sizes, offsets, dtypes), the keys, every shape against the
model that will receive them; a model is handed back only complete, and
``load_weights`` changes its model only once every array has been read.

Why safetensors is read here rather than with ``safetensors.numpy``: that
API hands out each tensor as a new array, which must then be copied into
the model; for VGG-16 the FC1 matrix alone is 74% of the file, so the peak is
1.49x the file with its pread backend (2.23x with its default memory-mapped
one, whose pages count as resident). Safetensors is a documented, simple format (an 8-byte
little-endian header length, a JSON header of dtype, shape and byte offsets
per tensor, then the raw bytes), so this module parses the header and reads
each tensor's bytes straight into the parameter that receives it, with no
intermediate copy: the peak is the model itself (docs/benchmarks.md). The
tests check files written by the safetensors package load here, and files
written here load with it.

minivgg metadata (configuration, preprocessing, class names, training
scale) travels in the safetensors header's ``__metadata__`` under the key
"minivgg" (a JSON string) and in a checkpoint's ``__meta__``; ``.pth`` files
stay plain state dicts, so torchvision loads them as they are.
"""
import contextlib
import dataclasses
import json
import os
import re
import struct
import sys
from collections import OrderedDict

import numpy as np

from ..backend import as_numpy
from ..data.preprocess import PRESETS, Preprocess, from_meta, preset as make_preset
from .layouts import (LAYOUTS, WeightsError, describe_cfg, detect_layout, file_key, file_shape,
                      infer_config, minivgg_shape, to_minivgg_names)

__all__ = ["WeightsError", "LoadedWeights", "WeightsInfo", "FORMATS", "weights_format",
           "inspect_weights", "load_model", "load_weights", "save_weights"]

#: File extension -> format name.
FORMATS = {".safetensors": "safetensors", ".pth": "pth", ".pt": "pth", ".npz": "npz"}

#: safetensors dtype name -> (numpy dtype or "bf16", bytes per element). The
#: float ones can be loaded; the others only occur in files we then refuse.
_ST_DTYPES = {"F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2),
              "BF16": ("bf16", 2), "I64": (None, 8), "I32": (None, 4), "I16": (None, 2),
              "I8": (None, 1), "U64": (None, 8), "U32": (None, 4), "U16": (None, 2),
              "U8": (None, 1), "BOOL": (None, 1), "F8_E4M3": (None, 1), "F8_E5M2": (None, 1)}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "float64", "float32", "float16", "bfloat16"}
_MAX_HEADER = 100 << 20  # the safetensors package's own limit
_CHUNK = 16 << 20        # bytes per read when a dtype is converted


def weights_format(path):
    """'safetensors', 'pth' or 'npz' from the file name; WeightsError otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise WeightsError(f"weights file {os.fspath(path)!r}: unknown extension "
                           f"{ext or '(none)'!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[ext]


# ---------------------------------------------------------------------------
# Readers: each exposes entries {key: (shape, dtype)}, meta (minivgg metadata,
# a checkpoint's meta layout, {} for foreign files), position(key) (where the
# tensor sits in the file) and read_into(key, out), which fills a float32
# array of the same size.
# ---------------------------------------------------------------------------

class _SafetensorsReader:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb", buffering=0)
        try:
            self._parse_header()
        except BaseException:
            self.f.close()
            raise

    def _bad(self, what):
        return WeightsError(f"weights file {self.path!r} is not a valid safetensors file or is "
                            f"truncated or corrupt: {what}")

    def _parse_header(self):
        size = os.fstat(self.f.fileno()).st_size
        head = self.f.read(8)
        if len(head) < 8:
            raise self._bad(f"{size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise self._bad(f"header length {n} does not fit in the {size}-byte file")
        try:
            header = json.loads(self.f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._bad(f"the header is not JSON ({e})") from None
        if not isinstance(header, dict):
            raise self._bad("the header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        self.start, self.entries, self.offsets = 8 + n, OrderedDict(), {}
        for key, e in header.items():
            try:
                dtype, shape, (begin, end) = e["dtype"], tuple(e["shape"]), e["data_offsets"]
                itemsize = _ST_DTYPES[dtype][1]
                ok = (all(isinstance(d, int) and d >= 0 for d in shape)
                      and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end)
            except (TypeError, KeyError, ValueError):
                raise self._bad(f"bad entry for {key!r}: {e!r}") from None
            if not ok or end - begin != int(np.prod(shape, dtype=np.int64)) * itemsize:
                raise self._bad(f"entry {key!r} ({dtype} {list(shape)}) has byte range "
                                f"[{begin}, {end}), which does not match its size")
            if self.start + end > size:
                raise self._bad(f"{key!r} ends at byte {self.start + end} but the file has "
                                f"{size} bytes")
            self.entries[key] = (shape, dtype)
            self.offsets[key] = begin
        self.meta = {}
        if isinstance(meta, dict) and "minivgg" in meta:
            try:
                self.meta = json.loads(meta["minivgg"])
            except (TypeError, json.JSONDecodeError) as e:
                raise self._bad(f"the minivgg metadata is not JSON ({e})") from None
            if not isinstance(self.meta, dict):
                raise self._bad("the minivgg metadata is not a JSON object")

    def position(self, key):
        return self.offsets[key]

    def read_into(self, key, out):
        shape, dtype = self.entries[key]
        np_dtype, itemsize = _ST_DTYPES[dtype]
        self.f.seek(self.start + self.offsets[key])
        flat = out.reshape(-1)
        if np_dtype is np.float32 and sys.byteorder == "little" and out.flags.c_contiguous:
            self._readinto(memoryview(flat).cast("B"), key)
            return
        step = max(1, _CHUNK // itemsize)
        for i in range(0, flat.size, step):
            m = min(step, flat.size - i)
            raw = np.empty(m * itemsize, np.uint8)
            self._readinto(memoryview(raw), key)
            if np_dtype == "bf16":  # bfloat16 is the top half of a float32
                flat[i:i + m] = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                flat[i:i + m] = raw.view(np.dtype(np_dtype).newbyteorder("<"))

    def _readinto(self, buf, key):
        done = 0
        while done < len(buf):
            n = self.f.readinto(buf[done:])
            if not n:
                raise self._bad(f"the data of {key!r} ends early")
            done += n

    def close(self):
        self.f.close()


class _ArrayReader:
    """Arrays already in memory (npz) or torch tensors (pth)."""

    def __init__(self, path, arrays, meta):
        self.path, self.arrays, self.meta = path, arrays, meta
        self.entries = OrderedDict(
            (k, (tuple(v.shape), str(v.dtype).replace("torch.", ""))) for k, v in arrays.items())
        self._position = {k: i for i, k in enumerate(arrays)}

    def position(self, key):
        return self._position[key]

    def read_into(self, key, out):
        a = self.arrays[key]
        if not isinstance(a, np.ndarray):  # a torch tensor
            import torch
            a = a.detach().to(torch.float32).numpy()
        np.copyto(out, a.reshape(out.shape), casting="same_kind")

    def close(self):
        pass


def _import_torch(path, writing=False):
    try:
        import torch
    except ImportError:
        if writing:
            raise WeightsError(f"writing {path!r} (.pth/.pt) needs PyTorch, which is not "
                               f"installed: pip install torch, or write .safetensors") from None
        raise WeightsError(
            f"weights file {path!r} is a PyTorch pickle (.pth/.pt), which only PyTorch can read "
            f"and PyTorch is not installed. Install it (pip install torch), or use the weights "
            f"as .safetensors, which minivgg reads without PyTorch (convert once where PyTorch "
            f"is installed: python -c \"from minivgg.io import load_model, save_weights; "
            f"w = load_model('{os.path.basename(path)}'); save_weights(w.model, "
            f"'weights.safetensors', preprocess=w.preprocess)\")") from None
    return torch


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _torch_load_error(path, e):
    """One readable line for a failed ``torch.load(weights_only=True)``."""
    text = _ANSI.sub("", str(e))
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:  # a pickled object, e.g. torch.save(model), not a dict of tensors
        return WeightsError(
            f"weights file {path!r} holds a pickled Python object ({found.group(1)}), not a plain "
            f"state dict: it was saved with torch.save(model) rather than "
            f"torch.save(model.state_dict(), ...). minivgg does not unpickle objects, which can "
            f"run code from the file; where the model was saved, write its weights with "
            f"torch.save(model.state_dict(), 'weights.pth') and load that file")
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(first) > 300:
        first = first[:300].rsplit(" ", 1)[0] + " ..."
    return WeightsError(f"weights file {path!r} is truncated, corrupt, or not a plain PyTorch "
                        f"state dict ({type(e).__name__}: {first})")


def _pth_reader(path, mmap=False):
    torch = _import_torch(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            # Files in the legacy (pre-zip) format cannot be memory-mapped.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds: pickle, zip, runtime errors
        raise _torch_load_error(path, e) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"weights file {path!r} holds a {type(obj).__name__}, not a state dict "
                           f"(a dict of parameter name -> tensor)")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"weights file {path!r} is not a plain state dict: {bad[:5]} hold "
                           f"{type(obj[bad[0]]).__name__}, not tensors")
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return _ArrayReader(path, OrderedDict(obj), {})


def _npz_reader(path):
    import zipfile

    from ..checkpoint import CheckpointError, load_checkpoint
    try:
        with np.load(path, allow_pickle=False) as z:
            is_checkpoint = "__meta__" in z.files
            arrays = None if is_checkpoint else OrderedDict((k, z[k]) for k in z.files)
        if is_checkpoint:
            ck = load_checkpoint(path)
            meta = ck.meta
            return _ArrayReader(path, ck.model_state, ck.meta)
    except CheckpointError as e:
        raise WeightsError(str(e)) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightsError(f"weights file {path!r} is truncated or corrupt, or not an .npz "
                           f"archive ({type(e).__name__}: {e})") from None
    return _ArrayReader(path, arrays, {})


def _resolve(path):
    """The file a path names: a run directory's last.npz, else the path; a
    missing path is reported as missing before its extension is judged."""
    path = os.fspath(path)
    if os.path.isdir(path):
        cand = os.path.join(path, "last.npz")
        if not os.path.exists(cand):
            raise WeightsError(f"{path!r} is a directory without last.npz; expected a weights "
                               f"file ({', '.join(FORMATS)}) or a training run directory")
        path = cand
    if not os.path.exists(path):
        raise WeightsError(f"weights file {path!r} does not exist")
    return path, weights_format(path)


def _open(path):
    path, fmt = _resolve(path)
    if fmt == "safetensors":
        return _SafetensorsReader(path), fmt
    return (_pth_reader(path) if fmt == "pth" else _npz_reader(path)), fmt


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class _FileFacts:
    """What a weights file says beside its tensors (see LoadedWeights)."""
    preprocess: Preprocess
    preprocess_origin: str
    classes: list
    train_scale: object
    layout: str
    format: str
    path: str
    meta: dict


@dataclasses.dataclass
class LoadedWeights(_FileFacts):
    """What ``load_model`` returns.

    model: the VGG, every parameter from the file (in training mode, as built).
    preprocess: the data.preprocess.Preprocess its inputs need.
    preprocess_origin: "asked" (the preset argument), "file" (its metadata) or
        "default" (torchvision's, for files that carry none).
    classes: K class names, or None when neither the file nor K = 1000 tells.
    train_scale: the training scale S (int or [S_min, S_max]) if recorded.
    layout: "torchvision" or "timm"; format: "safetensors", "pth" or "npz".
    meta: the file's minivgg metadata (a checkpoint's ``meta``; {} for
        torchvision and timm files).
    """
    model: object = None


def _check_asked(config, cfg, num_classes, where):
    if cfg is not None and cfg != config["cfg"]:
        raise WeightsError(f"{where} holds {describe_cfg(config['cfg'])} weights, but "
                           f"configuration {cfg} was asked ({describe_cfg(cfg)}); ask for {config['cfg']} or "
                           f"leave the configuration out to take the file's")
    if num_classes is not None and num_classes != config["num_classes"]:
        raise WeightsError(f"{where} holds weights for {config['num_classes']} classes (FC3 has "
                           f"{config['num_classes']} outputs), but {num_classes} classes were "
                           f"asked")


def _model_config(reader, shapes, where):
    """The model keyword arguments: from the shapes, refined by the file's
    minivgg metadata where it agrees (exact width multiplier, dropout, and the
    crop, which the shapes give only as 32 x the last feature map's side)."""
    config = infer_config(shapes, where)
    stored = reader.meta.get("model")
    if isinstance(stored, dict):
        keys = ("cfg", "num_classes", "fc_width")
        crop = stored.get("input_size")
        side = crop // 32 if isinstance(crop, int) else None
        if any(stored.get(k) != config[k] for k in keys) or side != config["input_size"] // 32:
            keys += ("input_size",)
            raise WeightsError(f"{where} is corrupt: its metadata describes "
                               f"{ {k: stored.get(k) for k in keys} } but the arrays are "
                               f"{ {k: config[k] for k in keys} }")
        config.update({k: stored[k] for k in ("input_size", "width_mult", "dropout")
                       if k in stored})
    return config


def _preprocess(preset, meta, where):
    if isinstance(preset, Preprocess):
        return preset, "asked"
    if preset is not None:
        if preset not in PRESETS:
            raise WeightsError(f"unknown preprocessing preset {preset!r}; expected one of "
                               f"{', '.join(PRESETS)}")
        if preset == "minivgg":
            mean = meta.get("mean_rgb")
            if mean is None:
                raise WeightsError(f"preset 'minivgg' subtracts the training set's mean RGB, and "
                                   f"{where} records none; use --preset torchvision or caffe")
            return make_preset("minivgg", mean), "asked"
        return make_preset(preset), "asked"
    try:
        if meta.get("preprocess") is not None:
            return from_meta(meta["preprocess"], where), "file"
        if meta.get("mean_rgb") is not None:
            return make_preset("minivgg", meta["mean_rgb"]), "file"
    except ValueError as e:
        raise WeightsError(str(e)) from None
    return make_preset("torchvision"), "default"


def _classes(meta, num_classes, where):
    classes = meta.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or len(classes) != num_classes:
            n = len(classes) if isinstance(classes, list) else type(classes).__name__
            raise WeightsError(f"{where} is corrupt: it names {n} classes for a model with "
                               f"{num_classes} outputs")
        return [str(c) for c in classes]
    if num_classes == 1000:
        from ..data.classes import imagenet_classes
        return imagenet_classes()
    return None


@contextlib.contextmanager
def _small_pages():
    """Allocate the parameters without NumPy's transparent-huge-page request.

    NumPy asks the kernel for 2 MiB pages (madvise MADV_HUGEPAGE) for large
    arrays. With Linux's common "defrag=madvise" setting, the first write to
    such a page may wait for the kernel to compact memory to find one: on a
    busy machine the median load of VGG-16 then took 3.6x to 5.4x the time
    of reading the file, against 0.75x to 0.89x with ordinary pages, the ones
    ``open().read()`` uses (docs/benchmarks.md). The setting is restored
    afterwards; NumPy versions without the switch are left alone.
    """
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    previous = switch(False) if switch is not None else None
    try:
        yield
    finally:
        if switch is not None:
            switch(previous)


def _layout_and_shapes(reader, where):
    """(layout, {minivgg name: file key}, {minivgg name: minivgg shape}) of a reader."""
    layout = detect_layout(reader.entries, where)
    names = to_minivgg_names(reader.entries, layout, where)
    not_float = [f"{k} ({reader.entries[k][1]})" for k in names.values()
                 if reader.entries[k][1] not in _FLOAT_DTYPES]
    if not_float:
        raise WeightsError(f"{where}: parameters must be floating point, got {not_float[:5]}")
    shapes = {n: minivgg_shape(n, reader.entries[k][0], where) for n, k in names.items()}
    return layout, names, shapes


@dataclasses.dataclass
class WeightsInfo(_FileFacts):
    """What ``inspect_weights`` returns: the model a file holds, without its
    weights. config: the ``models.vgg`` keyword arguments (cfg, num_classes,
    fc_width, input_size, width_mult, and dropout where recorded); the other
    fields as in LoadedWeights."""
    config: dict = None


class _ShapesReader:
    """A checkpoint's parameter shapes, from its metadata alone."""

    def __init__(self, path, meta):
        self.path, self.meta = path, meta
        keys = meta.get("model_keys")
        if not isinstance(keys, dict):
            raise WeightsError(f"weights file {path!r} is corrupt: its metadata lists no "
                               f"parameter shapes (model_keys)")
        self.entries = OrderedDict((k, (tuple(v), "float32")) for k, v in keys.items())

    def close(self):
        pass


def _open_shapes(path):
    """A reader that knows every tensor's shape, reading as few weights as
    the format allows: a checkpoint's metadata, a safetensors header, a
    memory-mapped .pth."""
    path, fmt = _resolve(path)
    if fmt == "safetensors":
        return _SafetensorsReader(path), fmt
    if fmt == "pth":
        return _pth_reader(path, mmap=True), fmt
    import zipfile

    from ..checkpoint import CheckpointError, read_meta
    try:
        with np.load(path, allow_pickle=False) as z:
            is_checkpoint = "__meta__" in z.files
        if is_checkpoint:
            return _ShapesReader(path, read_meta(path)), fmt
    except CheckpointError as e:
        raise WeightsError(str(e)) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightsError(f"weights file {path!r} is truncated or corrupt, or not an .npz "
                           f"archive ({type(e).__name__}: {e})") from None
    return _npz_reader(path), fmt


def inspect_weights(path, preset=None):
    """The model a weights file holds, its preprocessing, classes and training
    scale, without building the model or reading its weights (a ``.pth`` is
    memory-mapped): a WeightsInfo. Takes the files ``load_model`` takes and
    raises the same WeightsError for files it would refuse by their shapes."""
    reader, fmt = _open_shapes(path)
    where = f"weights file {reader.path!r}"
    try:
        layout, _, shapes = _layout_and_shapes(reader, where)
        config = _model_config(reader, shapes, where)
        preprocess, origin = _preprocess(preset, reader.meta, where)
        classes = _classes(reader.meta, config["num_classes"], where)
    finally:
        reader.close()
    train_scale = (reader.meta.get("train") or {}).get("scale")
    return WeightsInfo(preprocess, origin, classes, train_scale, layout, fmt, reader.path,
                       reader.meta, config=config)


def load_model(path, cfg=None, num_classes=None, preset=None):
    """Build the VGG that a weights file holds and fill it: a LoadedWeights.

    path: a .safetensors, .pth/.pt or .npz file (or a run directory's last.npz).
    cfg, num_classes: when given, the file must hold that configuration and
        number of classes (WeightsError otherwise, naming both).
    preset: "minivgg", "torchvision", "caffe" or a Preprocess; default: the
        file's own (minivgg files), else "torchvision" (torchvision and timm
        weights).
    Raises WeightsError (a ValueError) for a missing, truncated or corrupt
    file, unknown or batch-norm keys, shapes of no Table 1 configuration,
    or a mismatch with ``cfg``/``num_classes``; nothing is returned half-filled.
    """
    from ..models import vgg
    reader, fmt = _open(path)
    where = f"weights file {reader.path!r}"
    try:
        layout, names, shapes = _layout_and_shapes(reader, where)
        config = _model_config(reader, shapes, where)
        _check_asked(config, cfg, num_classes, where)
        preprocess, origin = _preprocess(preset, reader.meta, where)
        classes = _classes(reader.meta, config["num_classes"], where)
        with _small_pages():
            model = vgg(**config, init=None)
        params = OrderedDict(model.named_parameters())
        missing = [n for n in params if n not in shapes]
        wrong = [f"{names[n]}: {shapes[n]}, expected {tuple(p.shape)}" for n, p in params.items()
                 if n in shapes and shapes[n] != tuple(p.shape)]
        extra = [names[n] for n in shapes if n not in params]
        if missing or wrong or extra:
            raise WeightsError(
                f"{where} does not fit {describe_cfg(config['cfg'])}: "
                + "; ".join(part for part in (
                    missing and "missing " + ", ".join(file_key(n, layout) for n in missing),
                    wrong and "wrong shapes " + "; ".join(wrong),
                    extra and "unexpected keys " + ", ".join(extra)) if part))
        file_order = sorted(params, key=lambda n: reader.position(names[n]))
        for n in file_order:  # sequential reads
            reader.read_into(names[n], params[n].data)
    finally:
        reader.close()
    train_scale = (reader.meta.get("train") or {}).get("scale")
    return LoadedWeights(preprocess, origin, classes, train_scale, layout, fmt, reader.path,
                         reader.meta, model=model)


def load_weights(model, path, preset=None):
    """Load a weights file into an existing VGG, all or nothing.

    The file must hold ``model``'s configuration, classes and shapes; any
    problem raises WeightsError and leaves ``model`` unchanged (the file is
    read into a new model first, then copied over). Returns the LoadedWeights
    (its ``model`` is ``model``).
    """
    loaded = load_model(path, cfg=model.cfg, num_classes=model.num_classes, preset=preset)
    try:
        model.load_state_dict(OrderedDict(
            (n, p.data) for n, p in loaded.model.named_parameters()))
    except ValueError as e:
        raise WeightsError(f"weights file {loaded.path!r}: {e}") from None
    loaded.model = model
    return loaded


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------

def _minivgg_meta(model, preprocess, classes, train_scale):
    """The metadata of a minivgg weights file, laid out as a checkpoint's."""
    meta = {}
    if preprocess is not None:
        p = preprocess if isinstance(preprocess, Preprocess) else make_preset(preprocess)
        meta["preprocess"] = p.to_meta()
        meta["mean_rgb"] = [float(v) for v in p.mean_rgb]
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != model.num_classes:
            raise WeightsError(f"{len(classes)} class names for a model with {model.num_classes} "
                               f"outputs")
        meta["classes"] = classes
    if train_scale is not None:
        meta["train"] = {"scale": train_scale}
    return meta


def save_weights(model, path, layout="torchvision", preprocess=None, classes=None,
                 train_scale=None):
    """Write ``model``'s weights to ``path`` in the format its extension names.

    layout: "torchvision" (also minivgg's names) or "timm" (.safetensors and
        .pth only; .npz files are minivgg checkpoints).
    preprocess: a Preprocess or a preset name ("minivgg" needs a Preprocess,
        which carries the mean); classes: K names; train_scale: S or
        [S_min, S_max]. They are stored in .safetensors and .npz files;
        .pth files stay plain state dicts. The write is atomic.
    """
    from ..checkpoint import atomic_write, save_checkpoint
    path = os.fspath(path)
    fmt = weights_format(path)
    if layout not in LAYOUTS:
        raise WeightsError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if fmt == "npz" and layout != "torchvision":
        raise WeightsError(f"{path!r}: .npz files are minivgg checkpoints, in minivgg's "
                           f"(torchvision's) names; use .safetensors or .pth for layout {layout!r}")
    meta = _minivgg_meta(model, preprocess, classes, train_scale)
    if fmt == "npz":
        return save_checkpoint(path, model, meta)
    from ..checkpoint import model_config
    meta.update(model=model_config(model), layout=layout)
    tensors = OrderedDict()
    for name, p in model.named_parameters():
        arr = np.ascontiguousarray(as_numpy(p.data), dtype=np.float32)
        tensors[file_key(name, layout)] = arr.reshape(
            file_shape(name, arr.shape, layout, model.feature_channels))
    if fmt == "safetensors":
        try:
            from safetensors.numpy import save_file
        except ImportError:
            raise WeightsError("writing .safetensors needs the safetensors package: pip install "
                               "safetensors (or pip install minivgg[io])") from None
        st_meta = {"format": "np", "minivgg": json.dumps(meta)}
        return atomic_write(path, lambda name: save_file(tensors, name, metadata=st_meta),
                            suffix=".safetensors", by_name=True)
    torch = _import_torch(path, writing=True)
    state = OrderedDict((k, torch.from_numpy(v)) for k, v in tensors.items())
    return atomic_write(path, lambda f: torch.save(state, f), suffix=".pth")
