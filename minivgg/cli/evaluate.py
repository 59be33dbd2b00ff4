"""Evaluate trained VGG checkpoints with the paper's test protocols (§3.2, §4).

    python examples/evaluate_vgg.py --checkpoint runs/a/last.npz --data synthetic \\
        --protocol dense+multicrop
    python examples/evaluate_vgg.py --checkpoint d.npz,e.npz --data imagefolder:/data/imagenet \\
        --split val --protocol multicrop --scales 256,384,512 --format markdown --output table.md

Protocols (see docs/testing_protocols.md):
  single           one centre crop at Q = S (mid-range Q for jittered S), no flip: a quick
                   check, not a paper protocol (Table 3 is dense at one Q: --scales Q)
  dense            fully-convolutional net over the whole image + flip (§3.2; Tables 3-5)
  multicrop        5x5 grid of crops x 2 flips = 50 crops per scale (§4.3)
  dense+multicrop  the two posteriors averaged (Table 5)

What a file records is not asked again: the data set, the preprocessing and
the test scales default to the first checkpoint's, with the same defaults as
examples/classify.py.

Each model's input is normalised as its file records (the checkpoint's
preprocessing: the "minivgg" preset with the training mean RGB, or the
pretrained weights' convention a fine-tuned run kept; torchvision's for
torchvision and timm weights, which record none); --preset overrides it (see
docs/interop.md).

Test scales default per checkpoint to Q = {S-32, S, S+32} (fixed S) or
{S_min, (S_min+S_max)/2, S_max} (jittered S) (§4.2), or one Q for "single";
for files that record no training scale (torchvision, timm), Q = 256 for
"single" and {256, 384, 512} otherwise, times crop/224. --scales overrides
them for every checkpoint. Several checkpoints are also fused (posteriors
averaged, §4.4, Table 6).

Data (--data; default: the data set the first checkpoint was trained on, as
its recipe records it; synthetic for a model of the synthetic classes that
records none):
  synthetic        SyntheticShapes split "val" (--val-size, --image-size, --seed; the
                   defaults are the training run's, from the first checkpoint's
                   meta["train"]["recipe"] or meta["data"], else 1000, 32, 0)
  cifar10:DIR      the CIFAR-10 test batch under DIR/cifar-10-batches-bin
  imagefolder:DIR  DIR is the data set root, as in training: DIR/val/<class>/* (or
                   --split test: DIR/test/<class>/*); without --split, val/ if it
                   exists, else test/ (the report names the folder)

--limit N evaluates a class-stratified sample of N images, chosen with
--limit-seed, and says so; unreadable images are skipped with one line each;
Ctrl-C stops with exit status 130. A failure while evaluating (memory running
out, an --output that cannot be written) is one line and exit status 1;
--debug prints its traceback first.
"""
import os
import signal
import sys
import time

from minivgg.backend import DeviceError, device, set_tf32
from minivgg.checkpoint import atomic_write
from minivgg.cli.common import (RawHelpFormatter, add_device_flags, parser, scales_origin,
                                warn_unreadable, weights_line)
from minivgg.data import stratified_subset
from minivgg.data.preprocess import PRESETS
from minivgg.evaluate import (
    PROTOCOLS, EvalNet, check_same_classes, evaluate, format_report, parse_scales)
from minivgg.failures import add_debug_flag, run_command
from minivgg.fast.select import add_ops_flag, use_ops
from minivgg.threads import OtherWork, add_threads_flag, apply_threads_flag

DEFAULT_VAL_SIZE, DEFAULT_IMAGE_SIZE, DEFAULT_SEED = 1000, 32, 0


def _data_meta(meta, key):
    """A synthetic-data setting recorded at training: meta["train"]["recipe"]
    (minivgg.train) or meta["data"]; None if absent."""
    recipe = (meta.get("train") or {}).get("recipe")
    for source in (recipe, meta.get("data")):
        if isinstance(source, dict) and source.get(key) is not None:
            if source is recipe and str(source.get("data", "synthetic")) != "synthetic":
                continue
            return source[key]
    return None


def build_dataset(spec, args, first_meta):
    """The evaluation data set named by --data."""
    from minivgg.data import CIFAR10, ImageFolder, SyntheticShapes, split_folder
    kind, _, path = spec.partition(":")
    if kind == "synthetic":
        if path:
            raise ValueError(f"--data synthetic takes no directory, got {spec!r}")
        n = args.val_size or _data_meta(first_meta, "val_size") or DEFAULT_VAL_SIZE
        size = args.image_size or _data_meta(first_meta, "image_size") or DEFAULT_IMAGE_SIZE
        seed = args.seed if args.seed is not None else _data_meta(first_meta, "seed")
        seed = DEFAULT_SEED if seed is None else seed
        return SyntheticShapes(int(n), image_size=int(size), seed=int(seed), split="val")
    if kind in ("cifar10", "imagefolder"):
        if not path:
            raise ValueError(f"--data {kind} needs a directory: --data {kind}:DIR")
        if kind == "cifar10":
            return CIFAR10(path, train=False)
        folder, _ = split_folder(path, args.split)
        return ImageFolder(folder)
    raise ValueError(f"unknown --data {spec!r}; expected synthetic, cifar10:DIR or imagefolder:DIR")


def recorded_data(nets):
    """(--data value, where it came from) when --data is not given: the data
    set the first model was trained on, as its recipe records it; synthetic
    for a model of the synthetic data's classes that records none."""
    from minivgg.data import SHAPE_CLASSES
    net = nets[0]
    train = net.weights.meta.get("train") or {}
    data = (train.get("recipe") or {}).get("data")
    if data:
        kind, _, path = str(data).partition(":")
        if path and not os.path.isdir(path):  # given relative to another directory?
            absolute = str(train.get("data") or "").partition(":")[2]
            if not (absolute and os.path.isdir(absolute)):
                raise ValueError(f"{net.weights.path} was trained on --data {data}, and "
                                 f"{absolute or path!r} is not a directory here; give "
                                 f"--data {kind}:DIR")
            data = train["data"]
        return str(data), f"recorded in {net.weights.path}"
    if net.classes_known and list(net.classes) == list(SHAPE_CLASSES):
        return "synthetic", f"the classes of {net.weights.path}"
    raise ValueError(f"{net.weights.path} records no data set to evaluate on (only training "
                     f"checkpoints do); give --data imagefolder:DIR (or cifar10:DIR, synthetic)")


def make_parser():
    p = parser(description=__doc__, formatter_class=RawHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint file or run directory, or any weights file minivgg.io reads "
                        "(.safetensors, .pth); several, comma-separated, are fused")
    p.add_argument("--preset", default=None, choices=PRESETS,
                   help="input preprocessing for every model (default: each file's own; "
                        "torchvision for files that record none)")
    p.add_argument("--data", default=None,
                   help="synthetic | cifar10:DIR | imagefolder:DIR (default: the data set the "
                        "first checkpoint was trained on)")
    p.add_argument("--val-size", type=int, default=None, help="synthetic: number of images")
    p.add_argument("--image-size", type=int, default=None, help="synthetic: image side")
    p.add_argument("--seed", type=int, default=None, help="synthetic: data set seed")
    p.add_argument("--protocol", default="dense", choices=PROTOCOLS)
    p.add_argument("--scales", default=None,
                   help="test scales Q1,Q2,... for every checkpoint (default: per checkpoint "
                        "from its training scale)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="crops per forward pass (dense inputs: the same number of pixels)")
    p.add_argument("--split", default=None, choices=("val", "test", "train"),
                   help="imagefolder: which split of the data set root (default: val/ if "
                        "present, else test/)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate a class-stratified sample of N images (seeded by --limit-seed)"
                        " instead of all")
    p.add_argument("--limit-seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--format", default="table", choices=("table", "markdown", "csv"))
    p.add_argument("--output", default=None, help="also write the table to this file")
    p.add_argument("--per-class", action="store_true",
                   help="print per-class accuracy of the final (fused) posteriors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flags(p)
    add_threads_flag(p)
    add_ops_flag(p)
    add_debug_flag(p)
    return p


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    use_ops(args.ops)
    other_work = OtherWork()  # what other programs do while we load: --threads 0
    # Everything that can be wrong with the request is checked before any image is read.
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        dev = device(args.device)  # a missing GPU is reported before anything is loaded
        set_tf32(dev, args.tf32)
        scales = parse_scales(args.scales) if args.scales is not None else None
        paths = [c.strip() for c in args.checkpoint.split(",") if c.strip()]
        if not paths:
            raise ValueError(f"--checkpoint {args.checkpoint!r} names no checkpoint")
        nets = [EvalNet.from_file(path, preset=args.preset) for path in paths]
        for net in nets:
            net.model.to(dev)
        _disambiguate(nets)
        for net in nets:
            net.scales_for(args.protocol, scales)
        check_same_classes(nets)
        data, data_origin = (args.data, "--data") if args.data else recorded_data(nets)
        dataset = build_dataset(data, args, nets[0].weights.meta)
        if args.limit is not None and args.limit < len(dataset):
            dataset = stratified_subset(dataset, args.limit, args.limit_seed)
    except (ValueError, FileNotFoundError, DeviceError) as e:
        p.error(str(e))
    apply_threads_flag(args.threads, other_work)
    where = getattr(getattr(dataset, "dataset", dataset), "root", None)
    t0 = time.perf_counter()
    old = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops it like Ctrl-C
        print(f"data: {data}" + (f" ({where})" if where else "") +
              (f", {dataset.note}" if getattr(dataset, "note", "") else
               f", {len(dataset)} images") + ("" if data_origin == "--data" else
                                              f" ({data_origin})"))
        for net in nets:
            print(weights_line(net))
            print(f"  test scales Q = {','.join(map(str, net.scales_for(args.protocol, scales)))}"
                  f" ({scales_origin(net, scales is not None)})", flush=True)
        report = evaluate(nets, dataset, args.protocol, scales, batch_size=args.batch_size,
                          progress=not args.no_progress, on_skip=warn_unreadable)
    except ValueError as e:
        p.error(str(e))
    except KeyboardInterrupt:
        print(f"interrupted after {time.perf_counter() - t0:.0f} s; nothing reported (the "
              f"images seen so far are no fair sample of the set)", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    elapsed = time.perf_counter() - t0

    text = format_report(report, args.format)
    n = len(report.labels)
    summary = (f"{n} image(s) evaluated in {elapsed:.1f} s ({n / max(elapsed, 1e-9):.1f} img/s), "
               f"{len(report.skipped)} skipped as unreadable")
    print(text, end="")
    if args.per_class:
        acc = report.per_class_accuracy()
        print("\nper-class accuracy (%):")
        for name, a in zip(report.classes, acc):
            print(f"  {name:<20} {'n/a' if a != a else f'{100 * a:6.2f}'}")
    print(summary)
    if args.output:
        data = text.encode("utf-8")
        atomic_write(args.output, lambda f: f.write(data), suffix=".tmp")
        print(f"wrote {args.output}")
    return report


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _disambiguate(nets):
    """Name models 'VGG-D', or 'VGG-D (file)' when two share config and scale."""
    keys = [(n.name, n.train_scale_label) for n in nets]
    for n, key in zip(nets, keys):
        if keys.count(key) > 1 and n.path:
            n.name = f"{n.name} ({os.path.relpath(n.path)})"


def console(argv=None):
    """The ``minivgg-evaluate`` command: main(), then exit status 0; a wrong
    request exits 2 inside, a failure while evaluating is one line and status
    1 (minivgg.failures; --debug adds the traceback)."""
    args = make_parser().parse_args(argv)  # a bad command line exits here, as in main
    return run_command(lambda: main(argv), args.debug,
                       memory_advice=f"use a smaller --batch-size (now {args.batch_size} crops, "
                                     f"or their pixels, per forward pass)")


if __name__ == "__main__":
    sys.exit(console())
