"""Evaluate trained VGG checkpoints with the paper's test protocols (§3.2, §4).

    python examples/evaluate_vgg.py --checkpoint runs/a/last.npz --data synthetic \\
        --protocol dense+multicrop
    python examples/evaluate_vgg.py --checkpoint d.npz,e.npz --data imagefolder:/data/val \\
        --protocol multicrop --scales 256,384,512 --format markdown --output table.md

Protocols (see docs/testing_protocols.md):
  single           one centre crop at Q = S (mid-range Q for jittered S), no flip: a quick
                   check, not a paper protocol (Table 3 is dense at one Q: --scales Q)
  dense            fully-convolutional net over the whole image + flip (§3.2; Tables 3-5)
  multicrop        5x5 grid of crops x 2 flips = 50 crops per scale (§4.3)
  dense+multicrop  the two posteriors averaged (Table 5)

Test scales default per checkpoint to Q = {S-32, S, S+32} (fixed S) or
{S_min, (S_min+S_max)/2, S_max} (jittered S) (§4.2), or one Q for "single";
--scales overrides them for every checkpoint. Several checkpoints are also
fused (posteriors averaged, §4.4, Table 6).

Data:
  synthetic        SyntheticShapes split "val" (--val-size, --image-size, --seed; the
                   defaults are the training run's, from the first checkpoint's
                   meta["train"]["recipe"] or meta["data"], else 1000, 32, 0)
  cifar10:DIR      the CIFAR-10 test batch under DIR/cifar-10-batches-bin
  imagefolder:DIR  DIR is the validation folder (one sub-folder per class)
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivgg.evaluate import (  # noqa: E402
    PROTOCOLS, EvalNet, check_same_classes, evaluate, format_report)

DEFAULT_VAL_SIZE, DEFAULT_IMAGE_SIZE, DEFAULT_SEED = 1000, 32, 0


def parse_scales(text):
    """'256,384,512' -> [256, 384, 512]; raises ValueError naming the bad part."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ValueError(f"--scales {text!r} lists no scale; expected e.g. 224,256,288")
    out = []
    for p in parts:
        if not p.isdigit() or int(p) <= 0:
            raise ValueError(f"--scales: {p!r} is not a positive integer (in {text!r}); "
                             f"expected e.g. 224,256,288")
        out.append(int(p))
    return out


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
    from minivgg.data import CIFAR10, ImageFolder, SyntheticShapes
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
        return CIFAR10(path, train=False) if kind == "cifar10" else ImageFolder(path)
    raise ValueError(f"unknown --data {spec!r}; expected synthetic, cifar10:DIR or imagefolder:DIR")


def make_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint file or run directory; several, comma-separated, are fused")
    p.add_argument("--data", default="synthetic",
                   help="synthetic | cifar10:DIR | imagefolder:DIR (default synthetic)")
    p.add_argument("--val-size", type=int, default=None, help="synthetic: number of images")
    p.add_argument("--image-size", type=int, default=None, help="synthetic: image side")
    p.add_argument("--seed", type=int, default=None, help="synthetic: data set seed")
    p.add_argument("--protocol", default="dense", choices=PROTOCOLS)
    p.add_argument("--scales", default=None,
                   help="test scales Q1,Q2,... for every checkpoint (default: per checkpoint "
                        "from its training scale)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="crops per forward pass (dense inputs: the same number of pixels)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--format", default="table", choices=("table", "markdown", "csv"))
    p.add_argument("--output", default=None, help="also write the table to this file")
    p.add_argument("--per-class", action="store_true",
                   help="print per-class accuracy of the final (fused) posteriors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    # Everything that can be wrong with the request is checked before any image is read.
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        scales = parse_scales(args.scales) if args.scales is not None else None
        paths = [c.strip() for c in args.checkpoint.split(",") if c.strip()]
        if not paths:
            raise ValueError(f"--checkpoint {args.checkpoint!r} names no checkpoint")
        nets = [EvalNet.from_checkpoint(path) for path in paths]
        _disambiguate(nets)
        for net in nets:
            net.scales_for(args.protocol, scales)
        check_same_classes(nets)
        from minivgg.checkpoint import load_checkpoint
        first_meta = load_checkpoint(paths[0]).meta
        dataset = build_dataset(args.data, args, first_meta)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))

    t0 = time.perf_counter()
    try:
        report = evaluate(nets, dataset, args.protocol, scales, batch_size=args.batch_size,
                          limit=args.limit, progress=not args.no_progress)
    except ValueError as e:
        p.error(str(e))
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
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}")
    return report


def _disambiguate(nets):
    """Name models 'VGG-D', or 'VGG-D (file)' when two share config and scale."""
    keys = [(n.name, n.train_scale_label) for n in nets]
    for n, key in zip(nets, keys):
        if keys.count(key) > 1 and n.path:
            n.name = f"{n.name} ({os.path.relpath(n.path)})"


if __name__ == "__main__":
    main()
