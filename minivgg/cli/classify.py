"""Classify images with a VGG and print the top-5 classes with their probabilities.

    python examples/classify.py cat.jpg dog.png --weights vgg16.pth --cfg D
    python examples/classify.py cat.jpg --weights vgg16.safetensors --protocol dense+multicrop
    python examples/classify.py shapes.png --weights runs/a/last.npz      # a minivgg checkpoint

Weights (--weights): a .safetensors file, a torchvision or timm state dict
(.pth/.pt, read with PyTorch, weights_only=True) or a minivgg .npz checkpoint.
The configuration (Table 1 column), width, classes and crop size are read from
the shapes; --cfg, when given, must match them.

Preprocessing (--preset): the file's own for minivgg files (the training mean
RGB, or what save_weights recorded); torchvision's ImageNet normalisation for
torchvision and timm weights, which record none; "caffe" (BGR, 0-255, mean
pixel subtracted) for weights converted from the paper's Caffe release.

Protocols (--protocol, see docs/testing_protocols.md):
  single           one centre crop at one scale Q, no flip (§4.1)
  dense            fully-convolutional net over the whole image + flip (§3.2)
  multicrop        5x5 grid of crops x 2 flips = 50 crops per scale (§4.3)
  dense+multicrop  the two posteriors averaged (Table 5)

Test scales (--scales): by default from the training scale S the file
records (§4.1, §4.2); for weights that record none (torchvision, timm),
Q = 256 for "single" (torchvision's resize-256 / centre-crop-224 test) and
Q = {256, 384, 512} for the others (the paper's scales for its S in
[256, 512] models), multiplied by crop/224 for crops other than 224.

Class names: the file's (a minivgg checkpoint keeps its data set's folder
names), else the ImageNet-1k names when the model has 1000 outputs, else
--classes FILE (one name a line) or --classes DIR (a data set folder: its
sub-folder names), else "class <k>".

Every request is checked before the model runs: a missing or unreadable image
or weights file, weights of another configuration than --cfg, a class list of
the wrong length, or a bad scale ends with exit status 2 and a message naming
the file or value and what was expected; nothing is written. A failure while
classifying (memory running out...) is one line and exit status 1; --debug
prints its traceback first.
"""
import argparse
import os
import sys

from minivgg.data import CorruptImageError, load_rgb
from minivgg.data.classes import read_class_names
from minivgg.data.preprocess import PRESETS
from minivgg.evaluate import PROTOCOLS, EvalNet, parse_scales
from minivgg.failures import add_debug_flag, run_command
from minivgg.fast.select import add_ops_flag, use_ops
from minivgg.models import CONFIGS
from minivgg.threads import OtherWork, add_threads_flag, apply_threads_flag

#: Test scales for weights that record no training scale, at a 224 crop.
FOREIGN_SINGLE_Q = 256
FOREIGN_MULTI_Q = (256, 384, 512)


def make_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--weights", required=True,
                   help=".safetensors, .pth/.pt or .npz file (or a training run directory)")
    p.add_argument("--cfg", default=None, choices=list(CONFIGS),
                   help="the Table 1 configuration the weights must be (default: the file's)")
    p.add_argument("--protocol", default="dense", choices=PROTOCOLS)
    p.add_argument("--preset", default=None, choices=PRESETS,
                   help="input preprocessing (default: the file's, torchvision for "
                        "torchvision/timm weights)")
    p.add_argument("--scales", default=None, help="test scales Q1,Q2,... (default: see above)")
    p.add_argument("--classes", default=None,
                   help="class names: a text file (one a line) or a data set folder")
    p.add_argument("--topk", type=int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="crops per forward pass (dense inputs: the same number of pixels)")
    add_threads_flag(p)
    add_ops_flag(p)
    add_debug_flag(p)
    return p


def default_scales(net, protocol):
    """The file's training scale's test scales, else the foreign-weights defaults."""
    if net.train_scale is not None:
        return None  # EvalNet derives them from train_scale (§4.1, §4.2)
    qs = [FOREIGN_SINGLE_Q] if protocol == "single" else list(FOREIGN_MULTI_Q)
    return [int(round(q * net.crop / 224)) for q in qs]


def read_images(paths):
    """[(path, (H, W, 3) uint8)]; ValueError naming the first bad file."""
    images = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"image {path!r} does not exist" if not os.path.exists(path)
                             else f"image {path!r} is not a file")
        try:
            images.append((path, load_rgb(path)))
        except CorruptImageError as e:
            raise ValueError(f"{path!r} is not a readable image ({e}); expected an image file "
                             f"(JPEG, PNG, BMP, GIF, TIFF, WebP)") from None
    return images


def class_names(net, spec):
    """Names for the model's K outputs: --classes, the file's, ImageNet's or 'class k'."""
    k = net.model.num_classes
    if spec is not None:
        names = read_class_names(spec)
        if len(names) != k:
            raise ValueError(f"--classes {spec!r} names {len(names)} classes, but the model has "
                             f"{k} outputs; expected {k} names")
        return names
    if net.classes_known:
        return net.classes
    return [f"class {i}" for i in range(k)]


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    use_ops(args.ops)
    other_work = OtherWork()  # what other programs do while we load: --threads 0
    try:
        if args.topk < 1:
            raise ValueError(f"--topk must be >= 1, got {args.topk}")
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        scales = parse_scales(args.scales) if args.scales is not None else None
        images = read_images(args.images)
        net = EvalNet.from_file(args.weights, cfg=args.cfg, preset=args.preset)
        names = class_names(net, args.classes)
        scales = net.scales_for(args.protocol, scales or default_scales(net, args.protocol))
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    apply_threads_flag(args.threads, other_work)

    w = net.weights
    origin = {"asked": "--preset", "file": "from the file",
              "default": "default for weights without metadata"}[w.preprocess_origin]
    print(f"weights: {w.path} ({w.format}, {w.layout} names): VGG-{net.cfg}, "
          f"{net.crop}x{net.crop} crops, {net.model.num_classes} classes; "
          f"preprocess {w.preprocess.name} ({origin})")
    print(f"protocol: {args.protocol}, test scales Q = {','.join(map(str, scales))}")
    k = min(args.topk, net.model.num_classes)
    results = []
    for path, img in images:
        post = net.predict(img, args.protocol, scales, batch_size=args.batch_size)
        top = sorted(range(len(post)), key=lambda i: (-post[i], i))[:k]
        results.append((path, [(names[i], float(post[i])) for i in top]))
        print(f"\n{path} ({img.shape[1]}x{img.shape[0]})")
        for rank, i in enumerate(top, 1):
            print(f"  {rank}. {post[i]:7.4f}  {names[i]}")
    return results


def console(argv=None):
    """The ``minivgg-classify`` command: main(), then exit status 0; a wrong
    request exits 2 inside, a failure while classifying is one line and status
    1 (minivgg.failures; --debug adds the traceback)."""
    args = make_parser().parse_args(argv)  # a bad command line exits here, as in main
    return run_command(lambda: main(argv), args.debug,
                       memory_advice=f"use a smaller --batch-size (now {args.batch_size} crops, "
                                     f"or their pixels, per forward pass)")


if __name__ == "__main__":
    sys.exit(console())
