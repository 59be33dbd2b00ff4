"""Classify images with a VGG and print the top-5 classes with their probabilities
(the top-K of a model with K < 5 classes).

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
[256, 512] models), multiplied by crop/224 for crops other than 224. These
are examples/evaluate_vgg.py's defaults too.

Class names: the file's (a minivgg checkpoint keeps its data set's folder
names), else the ImageNet-1k names when the model has 1000 outputs, else
--classes FILE (one name a line) or --classes DIR (a data set folder: its
sub-folder names), else "class <k>".

Every request is checked before the model runs: a missing or unreadable
weights file, weights of another configuration than --cfg, a class list of
the wrong length, a bad scale or device, or images none of which can be read
end with exit status 2 and a message naming the file or value and what was
expected; nothing is written. Among several images, one that is missing or
cannot be decoded is skipped with a warning line and the others are
classified; the exit status is then 1. A failure while classifying (memory
running out...) is one line and exit status 1; --debug prints its traceback
first.
"""
import os
import sys

from minivgg.backend import DeviceError, device, set_tf32
from minivgg.cli.common import (RawHelpFormatter, add_device_flags, parser, scales_origin,
                                warn_unreadable, weights_line)
from minivgg.data import CorruptImageError, load_rgb
from minivgg.data.classes import read_class_names
from minivgg.data.folder import ImageFile
from minivgg.data.preprocess import PRESETS
from minivgg.evaluate import PROTOCOLS, EvalNet, parse_scales
from minivgg.failures import add_debug_flag, run_command
from minivgg.fast.select import add_ops_flag, use_ops
from minivgg.models import CONFIGS
from minivgg.threads import OtherWork, add_threads_flag, apply_threads_flag


def make_parser():
    p = parser(description=__doc__, formatter_class=RawHelpFormatter)
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
    p.add_argument("--topk", type=int, default=5,
                   help="classes to print per image (default 5, at most the model's classes)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="crops per forward pass (dense inputs: the same number of pixels)")
    add_device_flags(p)
    add_threads_flag(p)
    add_ops_flag(p)
    add_debug_flag(p)
    return p


def _problem(path):
    """(error message, decoder's message or None) when image ``path``
    cannot be classified, judged from its header; None when it can."""
    if not os.path.isfile(path):
        return (f"image {path!r} does not exist" if not os.path.exists(path)
                else f"image {path!r} is not a file"), None
    f = ImageFile(path)
    try:
        f.size()
    except CorruptImageError as e:
        return (f"{path!r} is not a readable image ({e}); expected an image file (JPEG, PNG, "
                f"BMP, GIF, TIFF, WebP)"), str(e)
    finally:
        f.close()
    return None


def check_images(paths):
    """The images whose header reads, and the others, each reported in one
    warning line. ValueError when none can be read (naming the first), so
    that a request of bad images only stops before any work."""
    ok, problems = [], []
    for path in paths:
        why = _problem(path)
        if why is None:
            ok.append(path)
        else:
            problems.append((path, why))
    if not ok:
        more = f" (and {len(problems) - 1} more image(s) that cannot be read)" \
            if len(problems) > 1 else ""
        raise ValueError(problems[0][1][0] + more)
    for path, (message, decoder) in problems:
        if decoder is None:
            what = "no such file" if not os.path.exists(path) else "not a file"
            print(f"warning: skipping {path}: {what}", file=sys.stderr, flush=True)
        else:
            warn_unreadable(path, decoder)
    return ok, [path for path, _ in problems]


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


def run(argv=None):
    """Classify; returns (results, skipped): [(path, [(name, probability)])]
    and the paths of the images that could not be read."""
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
        dev = device(args.device)  # a missing GPU is reported before anything is loaded
        set_tf32(dev, args.tf32)
        paths, skipped = check_images(args.images)
        net = EvalNet.from_file(args.weights, cfg=args.cfg, preset=args.preset)
        net.model.to(dev)
        names = class_names(net, args.classes)
        qs = net.scales_for(args.protocol, scales)
    except (ValueError, FileNotFoundError, DeviceError) as e:
        p.error(str(e))
    apply_threads_flag(args.threads, other_work)

    print(weights_line(net))
    print(f"protocol: {args.protocol}, test scales Q = {','.join(map(str, qs))} "
          f"({scales_origin(net, scales is not None)})")
    k = min(args.topk, net.model.num_classes)
    results = []
    for path in paths:
        try:
            img = load_rgb(path)  # one image in memory at a time
        except CorruptImageError as e:
            warn_unreadable(path, str(e))
            skipped.append(path)
            continue
        post = net.predict(img, args.protocol, qs, batch_size=args.batch_size)
        top = sorted(range(len(post)), key=lambda i: (-post[i], i))[:k]
        results.append((path, [(names[i], float(post[i])) for i in top]))
        print(f"\n{path} ({img.shape[1]}x{img.shape[0]})")
        for rank, i in enumerate(top, 1):
            print(f"  {rank}. {post[i]:7.4f}  {names[i]}")
    if skipped:
        print(f"classified {len(results)} of {len(args.images)} images; skipped "
              f"{len(skipped)} that cannot be read: {', '.join(skipped[:5])}"
              + (", ..." if len(skipped) > 5 else ""), file=sys.stderr)
    if not results:
        p.exit(2, "error: none of the images could be decoded\n")
    return results, skipped


def main(argv=None):
    """Classify; returns [(path, [(name, probability)])] for the images read."""
    return run(argv)[0]


def console(argv=None):
    """The ``minivgg-classify`` command: exit status 0; 1 when some images
    could not be read (the others were classified) or when classifying failed
    (one line, minivgg.failures; --debug adds the traceback); 2 for a bad
    request."""
    args = make_parser().parse_args(argv)  # a bad command line exits here, as in run
    skipped = []

    def classify():
        skipped.extend(run(argv)[1])
    status = run_command(classify, args.debug,
                         memory_advice=f"use a smaller --batch-size (now {args.batch_size} "
                                       f"crops, or their pixels, per forward pass)")
    return status or (1 if skipped else 0)


if __name__ == "__main__":
    sys.exit(console())
