"""Write a model to another weights format, or to ONNX, with no Python to write.

    python examples/export.py runs/ft/best.npz ft.safetensors     # weights + what they need
    python examples/export.py runs/ft ft.pth                       # a plain state dict
    python examples/export.py vgg16.pth vgg16.safetensors --layout timm
    python examples/export.py runs/ft ft.onnx                      # (N, 3, crop, crop) -> logits
    python examples/export.py runs/ft ft_dense.onnx --dense        # (N, 3, H, W) -> score map

SOURCE is any file minivgg.io reads: a checkpoint or run directory (its
last.npz), a .safetensors, a torchvision or timm .pth. The format of DEST
follows its extension:

  .safetensors  the weights, with the source's preprocessing, class names and
                training scale in the header, so that classify.py,
                evaluate_vgg.py, train_vgg.py --init-from and summary read them
                back without a setting repeated (needs the safetensors package)
  .pth          a plain state dict in --layout's names (torchvision's loads in
                torchvision as it is); it records nothing else (needs PyTorch)
  .npz          a minivgg checkpoint of the model, with the same metadata as
                .safetensors (no optimizer state)
  .onnx         the network as an ONNX graph (opset 13) for onnxruntime and other
                runtimes (needs onnx); --dense writes §3.2's fully-convolutional
                net, whose H and W stay free unless --input-size fixes them. ONNX
                carries no preprocessing: the line printed says what the inputs
                must be.

The write is atomic and the file gets the mode of the user's umask; a
problem ends with exit status 2 and one line naming it, before anything is
written.
"""
import os
import sys

from minivgg.cli.common import RawHelpFormatter, parser
from minivgg.finetune import describe_preprocess
from minivgg.io import FORMATS, LAYOUTS, load_model, save_weights

#: Extensions DEST may have: the weights formats and ONNX.
EXTENSIONS = tuple(FORMATS) + (".onnx",)


def make_parser():
    p = parser(description=__doc__, formatter_class=RawHelpFormatter)
    p.add_argument("source", metavar="SOURCE",
                   help="checkpoint, run directory, .safetensors or .pth/.pt to read")
    p.add_argument("dest", metavar="DEST", help=f"file to write: {', '.join(EXTENSIONS)}")
    p.add_argument("--layout", default="torchvision", choices=list(LAYOUTS),
                   help="parameter names of a .safetensors or .pth (default torchvision)")
    p.add_argument("--dense", action="store_true",
                   help=".onnx: the fully-convolutional net of §3.2 (class score maps of any "
                        "image size) instead of the classifier on crops")
    p.add_argument("--input-size", type=int, default=None,
                   help=".onnx with --dense: fix the input's H = W (default: left free)")
    return p


def export(source, dest, layout="torchvision", dense=False, input_size=None):
    """Write the model of ``source`` to ``dest``; returns the line that says what was written."""
    ext = os.path.splitext(dest)[1].lower()
    if ext not in EXTENSIONS:
        raise ValueError(f"{dest!r}: unknown extension {ext or '(none)'!r}; expected one of "
                         f"{', '.join(EXTENSIONS)}")
    if ext != ".onnx" and (dense or input_size is not None):
        raise ValueError("--dense and --input-size are for .onnx files")
    if input_size is not None and not dense:
        raise ValueError("--input-size fixes the dense net's input: give --dense too")
    if ext == ".npz" and layout != "torchvision":
        raise ValueError(f"{dest!r}: .npz files are minivgg checkpoints, in torchvision's "
                         f"names; use .safetensors or .pth for --layout {layout}")
    w = load_model(source)
    m = w.model
    what = (f"VGG-{m.cfg}, widths x{m.width_mult:g}, FC {m.fc_width}, {m.input_size}x"
            f"{m.input_size} crops, {m.num_classes} classes")
    if ext == ".onnx":
        net = m.to_fully_conv() if dense else m
        net.export_onnx(dest, input_size)
        shape = (f"(N, 3, {input_size or 'H'}, {input_size or 'W'}) -> scores (N, "
                 f"{m.num_classes}, OH, OW)" if dense else
                 f"(N, 3, {m.input_size}, {m.input_size}) -> logits (N, {m.num_classes})")
        return (f"wrote {dest}: {what}; ONNX input {shape}, images normalised as "
                f"{describe_preprocess(w.preprocess)}")
    save_weights(m, dest, layout=layout, preprocess=w.preprocess,
                 classes=w.meta.get("classes"), train_scale=w.train_scale)
    kept = ("records nothing but the weights" if ext in (".pth", ".pt") else
            f"records preprocessing {w.preprocess.name}"
            + (", class names" if w.meta.get("classes") else "")
            + (f", training scale {w.train_scale}" if w.train_scale is not None else ""))
    return f"wrote {dest} ({layout} names): {what}; {kept}"


def main(argv=None):
    p = make_parser()
    args = p.parse_args(argv)
    try:
        line = export(args.source, args.dest, args.layout, args.dense, args.input_size)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as e:
        p.error(str(e))
    print(line)
    return 0


console = main  # the minivgg-export command: main() returns the exit status

if __name__ == "__main__":
    sys.exit(main())
