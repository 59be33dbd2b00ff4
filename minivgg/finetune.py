"""Starting a run from trained weights (§3.1), including other people's.

§3.1: "we initialised the first four convolutional layers and the last three
fully-connected layers with the layers of net A (the intermediate layers were
initialised randomly)", and the S = 384 and multi-scale nets started from
the S = 256 net. The same operation is what fine-tuning pretrained weights
is: a torchvision or timm VGG (Table 1's A, B, D, E) started on a new data
set, whose last layer (fc8) has as many outputs as the new set has classes.

    weights_defaults     the command line's model settings taken from the file
                         (configuration, widths, FC width, crop, scale), so that
                         ``--init-from vgg16.pth`` needs no other flag
    init_from_weights    the copy: every layer for the same configuration, the
                         §3.1 layers for a deeper one; fc8 re-initialised when
                         the number of classes differs
    training_preprocess  the input convention a run trains with: the weights'
                         own (mean, std, channel order, pixel units), unless
                         ``--preset``/``--pixel-scale`` say otherwise
    freeze               keep the convolutional layers fixed (``--freeze features``)
    photo_hint           one line for photos trained at the 32x32 default crop

Every decision is reported in one line, so a run's log says which weights,
which layers and which preprocessing it started from.
"""
import math
import os

import numpy as np

__all__ = ["FREEZE", "weights_defaults", "preset_flags", "init_from_weights",
           "training_preprocess", "describe_preprocess", "freeze", "photo_hint"]

#: What ``--freeze`` may keep fixed: nothing, or every convolutional layer.
FREEZE = ("none", "features")

#: The scale S of fine-tuning runs on weights that record none (torchvision,
#: timm): torchvision's resize to 256 before its 224 crop, the paper's S = 256.
FOREIGN_SCALE_AT_224 = 256


def _scale_text(scale):
    if isinstance(scale, (list, tuple)):
        return f"{int(scale[0])}:{int(scale[1])}"
    return str(int(scale))


def weights_defaults(values, given, path):
    """Fill the model settings of a new run from the ``--init-from`` file.

    values: {Recipe field: value} of the command line (changed in place);
    given: the fields set explicitly on it, which are kept. Taken from the
    file when not given: cfg, width_mult, fc_width, crop (its input size)
    and scale (its training scale S, else S = 256 x crop / 224, at least
    crop + 32 so that §4.2's test scales S - 32, S, S + 32 fit the crop).
    Returns the lines that say what was taken.
    """
    from .io import WeightsError, inspect_weights
    try:
        info = inspect_weights(path)
    except WeightsError as e:
        raise WeightsError(f"--init-from: {e}") from None
    c = info.config
    taken = {}
    for field, value in (("cfg", c["cfg"]), ("width_mult", float(c["width_mult"])),
                         ("fc_width", int(c["fc_width"])), ("crop", int(c["input_size"]))):
        if field not in given:
            taken[field] = value
    if "scale" not in given:
        crop = taken.get("crop", values.get("crop"))
        if info.train_scale is not None:
            taken["scale"] = _scale_text(info.train_scale)
        else:  # S - 32 >= crop keeps §4.2's default test scales usable
            taken["scale"] = str(max(int(round(crop * FOREIGN_SCALE_AT_224 / 224)), crop + 32))
    values.update(taken)
    lines = []
    if taken:
        flags = " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else
                         f"--{k.replace('_', '-')} {v}" for k, v in taken.items())
        lines.append(f"model settings from {info.path} ({info.layout} names, .{info.format}, "
                     f"{c['num_classes']} classes): {flags}; flags given here win")
    return lines


def preset_flags(values, given):
    """The command line's preprocessing flags: --pixel-scale sets the units of
    the "minivgg" preset, so giving it without --preset selects that preset
    (over the --init-from file's), and giving it with another preset is an
    error."""
    if "pixel_scale" not in given:
        return
    preset = values.get("preset", "auto")
    if "preset" not in given or preset == "auto":
        values["preset"] = "minivgg"
    elif preset != "minivgg":
        raise ValueError(f"--pixel-scale {values['pixel_scale']:g} sets the units of the minivgg "
                         f"preset, and --preset {preset} has its own; give one of the two")


def _pairs(model, src):
    """(destination module, source module) pairs: every layer of the same
    configuration, or §3.1's first four conv layers and fc6-fc8."""
    src_layers, dst_layers = src.paper_layer_names(), model.paper_layer_names()
    if src.cfg == model.cfg:
        return [(dst_layers[n], src_layers[n], n) for n in dst_layers]
    names = [n for n in src_layers if n.startswith("conv")][:4] + ["fc6", "fc7", "fc8"]
    missing = [n for n in names if n not in dst_layers]
    if missing:
        raise ValueError(f"VGG-{model.cfg} has no layer {missing[0]} to receive VGG-{src.cfg}'s")
    return [(dst_layers[n], src_layers[n], n) for n in names]


def init_from_weights(model, src, where="--init-from"):
    """Initialise ``model`` from the VGG ``src`` (a model loaded from a file).

    Same configuration (S = 384 from S = 256, or fine-tuning): every layer is
    copied. A different, deeper configuration (§3.1, B-E from A): the
    source's first four conv layers (A: conv1_1, conv2_1, conv3_1, conv3_2)
    go to the layers of the same name, and fc6-fc8 to fc6-fc8; the others
    keep their random initialisation. fc8 is left at its random
    initialisation when the numbers of classes differ (a new data set);
    any other shape difference is an error naming the layer and the
    settings to use. Returns (copied, reinitialised): parameter names of
    ``model``.
    """
    plan, fresh = [], []
    try:
        pairs = _pairs(model, src)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    for dst, s, paper in pairs:
        for attr in ("weight", "bias"):
            a, b = getattr(s, attr), getattr(dst, attr)
            name = f"{dst.name}.{attr}"
            if a.shape == b.shape:
                plan.append((name, b, a))
            elif paper == "fc8" and a.shape[1:] == b.shape[1:]:
                fresh.append(name)  # another number of classes: a new last layer
            else:
                raise ValueError(
                    f"{where}: {paper} ({name}) has shape {tuple(a.shape)} in the weights' "
                    f"VGG-{src.cfg} (widths x{src.width_mult:g}, FC {src.fc_width}, "
                    f"{src.input_size}x{src.input_size} crops) but {tuple(b.shape)} in this "
                    f"run's VGG-{model.cfg} (widths x{model.width_mult:g}, FC {model.fc_width}, "
                    f"{model.input_size}x{model.input_size} crops); train with --width-mult "
                    f"{src.width_mult:g} --fc-width {src.fc_width} --crop {src.input_size}, or "
                    f"leave them out to take the file's")
    for _, dst_p, src_p in plan:
        dst_p.data[...] = src_p.data
    return [name for name, _, _ in plan], fresh


def describe_preprocess(p):
    """'torchvision: RGB, [0, 1] units, minus [0.485, ...], divided by [...]'."""
    if math.isclose(p.scale, 1 / 255):
        units = "[0, 1]"
    elif p.scale == 1:
        units = "0-255"
    else:
        units = f"[0, {255 * p.scale:g}]"
    text = (f"{p.name}: {p.channels}, {units} pixel units, minus "
            f"{np.round(p.mean, 4).tolist()}")
    if np.any(p.std != 1):
        text += f", divided by {np.round(p.std, 4).tolist()}"
    return text


def _source_mean(source):
    """The source's training-set mean RGB in [0, 1], as recorded (exactly)."""
    recorded = (source.meta or {}).get("mean_rgb")
    return np.asarray(recorded if recorded is not None else source.preprocess.mean_rgb,
                      np.float64)


def training_preprocess(recipe, source=None):
    """The input convention of a new run: (Preprocess, mean RGB, origin).

    (None, None, origin) means §2.1's "minivgg" preset with the mean RGB of
    this training set, still to be computed, in ``recipe.pixel_scale``
    units. ``source``: the ``--init-from`` file's LoadedWeights. The mean
    RGB is the [0, 1] RGB mean in force (for the checkpoint's ``mean_rgb``).
    ``recipe.preset``:

      auto         the source's own preprocessing (torchvision's for torchvision
                   and timm files, which record none); without a source, None
      minivgg      the training-set mean RGB: the source's when it is a minivgg
                   model (§2.1: the later stages keep the first stage's mean),
                   else None; in ``recipe.pixel_scale`` units
      torchvision, caffe   those fixed constants

    origin is the text that says where the choice came from. The recipe is
    not changed: the checkpoint's ``preprocess`` records what was in force.
    """
    from .data.preprocess import preset as make_preset
    name = recipe.preset
    src = source.preprocess if source is not None else None
    where = source.path if source is not None else None
    if name == "auto":
        if src is None:
            return None, None, "(§2.1: the mean RGB of this training set)"
        note = ""
        if src.name == "minivgg":
            unit = 255.0 * src.scale
            if not math.isclose(unit, recipe.pixel_scale):
                note = (f"; its --pixel-scale {unit:g} replaces this run's default "
                        f"{recipe.pixel_scale:g}")
            mean = _source_mean(source)
            pre = make_preset("minivgg", mean, unit)
        else:
            if recipe.pixel_scale != 1:
                note = (f"; --pixel-scale {recipe.pixel_scale:g} (a default of this profile) "
                        f"does not apply to it")
            pre, mean = src, src.mean_rgb
        if source.preprocess_origin == "default":
            return pre, mean, (f"(the convention of torchvision's and timm's ImageNet weights, "
                               f"which {where} was trained with: such files record none){note}; "
                               f"--preset changes it")
        return pre, mean, (f"(the weights' own, recorded in {where}){note}; --preset "
                           f"changes it")
    differs = ""
    if src is not None and src.name != name:
        differs = f"; the weights in {where} were trained with {src.name}"
    if name == "minivgg":
        if src is not None and src.name == "minivgg":
            mean = _source_mean(source)
            return (make_preset("minivgg", mean, recipe.pixel_scale), mean,
                    f"(--preset minivgg: the mean RGB inherited from {where}, --pixel-scale "
                    f"{recipe.pixel_scale:g})")
        return None, None, (f"(--preset minivgg: the mean RGB of this training set, "
                            f"--pixel-scale {recipe.pixel_scale:g}){differs}")
    note = ""
    if recipe.pixel_scale != 1:
        note = (f"; --pixel-scale {recipe.pixel_scale:g} does not apply to it (it has its own "
                f"pixel units)")
    pre = make_preset(name)
    return pre, pre.mean_rgb, f"(--preset {name}){differs}{note}"


def freeze(model, what):
    """Keep part of ``model`` fixed: "none", or "features" (every conv
    layer: only fc6-fc8 train, and backward stops at fc6). Returns the
    number of parameter tensors frozen."""
    if what not in FREEZE:
        raise ValueError(f"unknown --freeze {what!r}; expected one of {', '.join(FREEZE)}")
    if what == "none":
        return 0
    params = list(model.features.parameters())
    for p in params:
        p.requires_grad = False
    return len(params)


def photo_hint(recipe, dataset, samples=8):
    """One line when an image folder of photos is trained at small crops
    (the small profile's 32x32 default), else None. Reads the headers of a
    few images only."""
    from PIL import Image
    if not recipe.data.startswith("imagefolder:") or recipe.crop >= 64 or len(dataset) == 0:
        return None
    n = len(dataset)
    sides = []
    for i in np.unique(np.linspace(0, n - 1, min(samples, n)).round().astype(np.int64)):
        try:
            with Image.open(dataset.describe(int(i))) as im:  # the header only
                sides.append(min(im.size))
        except (OSError, SyntaxError, ValueError):
            continue
    if not sides or float(np.median(sides)) < 4 * recipe.crop:
        return None
    root = recipe.data.split(":", 1)[1]
    return (f"hint: the images of {os.path.join(root, 'train')} have shorter sides of about "
            f"{int(np.median(sides))} pixels and are trained here as {recipe.crop}x{recipe.crop} "
            f"crops of images rescaled to S = {recipe.scale}; for photos use --crop 224 "
            f"--scale 256 (or --init-from pretrained weights: docs/training.md, \"Fine-tuning "
            f"pretrained weights\")")


def init_from_checkpoint(model, path):
    """Initialise ``model`` from trained weights, as in §3.1.

    ``path``: any file ``io.load_model`` reads (a checkpoint or run
    directory, .safetensors, a torchvision or timm .pth). Same configuration
    (e.g. S=384 started from S=256, or multi-scale from S=384, or
    fine-tuning): every weight is copied. A different, deeper configuration
    (the paper's B-E from A): the source's first four conv layers (A:
    conv1_1, conv2_1, conv3_1, conv3_2) go to the layers of the same name in
    ``model``, and the three FC layers to fc6-fc8; everything else keeps its
    random initialisation. fc8 keeps its random initialisation when the
    numbers of classes differ (finetune.init_from_weights). Returns the list
    of parameter names copied.
    """
    from .io import load_model
    copied, _ = init_from_weights(model, load_model(path).model, f"--init-from {path}")
    return copied
