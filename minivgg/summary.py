"""Layer-by-layer numbers of the VGG configurations (Table 1, Table 2, §2.3).

    python -m minivgg.summary --profile paper --cfg D      # VGG-16 at 224, 1000 classes
    python -m minivgg.summary                              # the default training model
    python -m minivgg.summary runs/train/last.npz          # the model in a file (.npz, .pth,
                                                           # .safetensors)
    python -m minivgg.summary --profile paper --all --format markdown   # Table 1 side by side

The defaults are those of examples/train_vgg.py: ``--profile small`` (VGG-A
at a quarter of the widths, 32x32 input, FC 128, the 10 synthetic classes),
``--profile paper`` the paper's (224 input, full widths, FC 4096, 1000
classes); each flag overrides its profile's value, and ``--fc-width 0`` is
training's rule (4096 for inputs of at least 224, else 128). A FILE gives
the model instead: its configuration, widths, classes and input size are
read from its shapes (``io.inspect_weights``, no weight is read).

One row per layer, in Table 1's notation ("conv3-64" is a 3x3 convolution
with 64 output channels, "conv1-256" configuration C's 1x1 convolution,
"LRN" local response normalisation, "FC-4096" a fully connected layer),
with:

- the paper's name for the layer: conv{block}_{i} (§3.1 "the first four
  convolutional layers"), pool{block}, fc6, fc7, fc8;
- the output shape, channels first;
- parameters (weights and biases); the totals are Table 2's;
- multiply-adds of one forward pass on one image (a k x k convolution from C
  to K channels on an H x W output: H*W*K*C*k*k; a layer from F_in to F_out
  units: F_in*F_out; bias additions, ReLU, pooling, LRN and soft-max are
  cheap element-wise work and not counted);
- the receptive field: the side of the input window one output value
  depends on (a k x k convolution widens it by (k - 1) * j pixels, a 2x2
  pooling by j and doubles the step j between neighbouring outputs; fc6,
  a 7x7 window of pool5 when the FCs are seen as convolutions, as in §3.2,
  sees more than a whole 224 crop, padding included);
- activation memory for training with a batch of one image: each row's
  output in float32, kept from the forward pass for the backward pass, plus
  its gradient of the same size during the backward pass (ReLU counted in
  place inside its conv or FC row; dropout masks and parameters not counted).
  It is a model of the memory, not a measurement of minivgg's allocator.

Everything is computed from ``models.vgg.CONFIGS`` without building a
network, so VGG-E at 224 costs nothing to summarise.

``--algorithms`` prints instead, for a batch of ``--batch`` images, which
implementation of each layer runs and why: the convolution algorithm the
fast tier's selector picks (minivgg/fast/select.py) for that input, or the
textbook op with ``--ops reference``:

    python -m minivgg.summary --cfg A --input 32 --batch 64 --algorithms
"""
import sys

from .models.rows import BYTES_PER_VALUE, LayerRow, layer_rows, totals
from .models.vgg import CONFIGS, DEPTHS, LRN, M, NUM_POOLS
from .tables import render_table

__all__ = ["LayerRow", "TABLE2_MILLIONS", "layer_rows", "totals", "format_rows",
           "format_all", "main"]

#: Table 2: "Number of parameters (in millions)".
TABLE2_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}

#: The column Table 1 compares each configuration with (its new layers are bold).
_PREVIOUS = {"A-LRN": "A", "B": "A", "C": "B", "D": "C", "E": "D"}

def _shape(shape):
    return "x".join(str(v) for v in shape)


def _mib(nbytes):
    return f"{nbytes / 2 ** 20:.2f}"


def _si(n, unit=""):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n} {unit}".rstrip()


def _is_paper_model(rows, input_size):
    """Whether ``rows`` are Table 1's model as Table 2 counts it (224 input,
    the paper's widths, FC 4096, 1000 classes)."""
    by_name = {r.name: r for r in rows}
    return (input_size == 224 and by_name["conv1_1"].shape[0] == 64
            and by_name["fc6"].shape == (4096,) and by_name["fc8"].shape == (1000,))


def format_rows(cfg, rows, fmt="text", input_size=224):
    """One configuration, one row per layer, a totals row; ``fmt``: text, markdown, csv."""
    csv_fmt = fmt == "csv"
    header = ["Table 1", "layer", "output", "params", "mult-adds", "receptive field",
              "train act. MiB" if not csv_fmt else "train act. bytes"]
    body = [["image", "input", _shape((3, input_size, input_size)), 0, 0, 1,
             2 * BYTES_PER_VALUE * 3 * input_size * input_size]]
    for r in rows:
        rf = r.receptive_field or ""
        if r.name == "fc6" and r.receptive_field > input_size:
            rf = f"{r.receptive_field} (> the {input_size} input)"
        body.append([r.notation, r.name, _shape(r.shape), r.params, r.mult_adds, rf,
                     r.train_bytes])
    t = totals(rows)
    t_bytes = t["train_bytes"] + body[0][6]
    body.append(["total", f"{t['weight_layers']} weight layers", "", t["params"],
                 t["mult_adds"], "", t_bytes])
    if not csv_fmt:
        for row in body:
            row[3] = f"{row[3]:,}"
            row[4] = f"{row[4]:,}"
            row[6] = _mib(row[6])
    text = render_table(header, body, fmt, right=(3, 4, 5, 6))
    if not csv_fmt:
        note = (f"VGG-{cfg}: {t['params']:,} parameters ({t['params'] / 1e6:.1f} M"
                + (f"; Table 2: {TABLE2_MILLIONS[cfg]} M" if cfg in TABLE2_MILLIONS
                   and _is_paper_model(rows, input_size) else "")
                + f"), {_si(t['mult_adds'])} multiply-adds per {input_size}x{input_size} "
                f"image (forward), {_mib(t_bytes)} MiB of activations and their gradients "
                f"for one training image.")
        text += "\n" + note + "\n"
    return text


def _block_items(cfg):
    """CONFIGS[cfg] split into the five blocks, max-pools removed."""
    blocks, cur = [], []
    for item in CONFIGS[cfg]:
        if item == M:
            blocks.append(cur)
            cur = []
        else:
            cur.append(item)
    return blocks


def _notation(item, width_mult):
    if item == LRN:
        return "LRN"
    k_out, k = item if isinstance(item, tuple) else (item, 3)
    return f"conv{k}-{max(1, int(round(k_out * width_mult)))}"


def format_all(fmt="text", input_size=224, num_classes=1000, width_mult=1.0, fc_width=4096):
    """Table 1: the six configurations side by side, block by block, with
    Table 2's parameter counts and the multiply-adds below. In markdown the
    layers a column adds to the one Table 1 compares it with are bold."""
    cfgs = list(CONFIGS)
    blocks = {c: _block_items(c) for c in cfgs}
    header = [f"{c} ({DEPTHS[c]} weight layers)" for c in cfgs]
    body = [[f"input ({input_size}x{input_size} RGB image)"] * len(cfgs)]
    for b in range(NUM_POOLS):
        height = max(len(blocks[c][b]) for c in cfgs)
        for row in range(height):
            cells = []
            for c in cfgs:
                items = blocks[c][b]
                if row >= len(items):
                    cells.append("")
                    continue
                text = _notation(items[row], width_mult)
                prev = blocks[_PREVIOUS[c]][b] if c in _PREVIOUS else None
                new = prev is not None and (row >= len(prev) or prev[row] != items[row])
                cells.append(f"**{text}**" if new and fmt == "markdown" else text)
            body.append(cells)
        body.append(["maxpool"] * len(cfgs))
    for f in (fc_width, fc_width, num_classes):
        body.append([f"FC-{f}"] * len(cfgs))
    body.append(["soft-max"] * len(cfgs))
    t = {c: totals(layer_rows(c, input_size, num_classes, width_mult, fc_width)) for c in cfgs}
    body.append([f"{t[c]['params'] / 1e6:.1f} M params" for c in cfgs])
    if (input_size, num_classes, width_mult, fc_width) == (224, 1000, 1.0, 4096):
        body.append([f"(Table 2: {TABLE2_MILLIONS[c]} M)" for c in cfgs])
    body.append([f"{_si(t[c]['mult_adds'])} mult-adds" for c in cfgs])
    return render_table(header, body, fmt)


def format_algorithms(cfg, input_size=224, batch=64, width_mult=1.0, fc_width=4096,
                      num_classes=1000, device="cpu", ops="fast", fmt="text"):
    """One row per layer: its input (N, C, H, W), what runs and why, by the
    selector (minivgg/fast/select.py) for ``device`` under tier ``ops``."""
    from .backend import device as get_device
    from .fast import select
    dev = get_device(device)
    rows = layer_rows(cfg, input_size, num_classes, width_mult, fc_width)
    body, c = [], 3
    with select.use_ops(ops):
        fast = select.tier() == "fast"
        for r in rows:
            shape = (batch, c) + r.shape[1:] if r.name.startswith(("pool", "lrn")) else None
            if r.notation.startswith("conv"):
                k = int(r.notation[4])
                x_shape = (batch, c, r.shape[1], r.shape[2])
                what = select.describe_conv(dev, x_shape, (r.shape[0], c, k, k), (1, 1),
                                            (k // 2, k // 2))
                body.append([r.name, r.notation, _shape(x_shape)] + what.split(": ", 1))
            elif r.notation == "maxpool":
                body.append([r.name, r.notation, _shape((batch, c, r.shape[1] * 2,
                                                         r.shape[2] * 2)),
                             "max-pool, no stored argmax" if fast and not dev.uses_kernels
                             else "max-pool keeping its argmax",
                             "fast tier (fast/pooling.py)" if fast and not dev.uses_kernels
                             else "textbook (functional/pooling.py)" if not dev.uses_kernels
                             else "the kernels of kernels/pool.cu"])
            elif r.notation == "LRN":
                body.append([r.name, r.notation, _shape(shape), "LRN",
                             "one implementation in both tiers (functional/normalization.py)"])
            elif r.notation.startswith("FC"):
                body.append([r.name, r.notation, _shape((batch, r.params // r.shape[0] - 1)),
                             "linear, dW into the optimizer's buffer" if fast else "linear",
                             "fast tier (fast/linear.py)" if fast
                             else "textbook (functional/linear.py)"])
            if r.shape and len(r.shape) == 3:
                c = r.shape[0]
    header = ["layer", "Table 1", "input (N, C, H, W)", "runs", "why"]
    text = render_table(header, body, fmt)
    if fmt != "csv":
        text += (f"\nVGG-{cfg}, batch {batch}, {input_size}x{input_size} input, on {dev}, "
                 f"{ops} tier (python -m minivgg.summary --algorithms; minivgg/fast/select.py).\n")
    return text


#: The flags that describe a model, which a FILE gives instead.
_MODEL_FLAGS = {"cfg": "--cfg", "input": "--input", "classes": "--classes",
                "width_mult": "--width-mult", "fc_width": "--fc-width", "profile": "--profile"}


def _profile_defaults(name):
    """--cfg, --input, --classes, --width-mult, --fc-width of a training profile."""
    from .data.synthetic import SHAPE_CLASSES
    from .profiles import profile_recipe
    r = profile_recipe(name)
    return {"cfg": r.cfg, "input": r.crop, "width_mult": r.width_mult, "fc_width": r.fc_width,
            "classes": 1000 if name == "paper" else len(SHAPE_CLASSES)}


def make_parser():
    from .cli.common import HelpFormatter, parser
    p = parser(
        prog="python -m minivgg.summary",
        formatter_class=HelpFormatter,
        description="Layer-by-layer parameters, multiply-adds, receptive fields and "
                    "activation memory of a VGG configuration (Table 1, Table 2), of the "
                    "training defaults (--profile small, the default), the paper's model "
                    "(--profile paper) or the model in a weights file.")
    p.add_argument("file", nargs="?", default=None, metavar="FILE",
                   help="a checkpoint or run folder, .pth or .safetensors: summarise the model "
                        "it holds (read from its shapes)")
    p.add_argument("--profile", default="small", choices=("small", "paper"),
                   help="the defaults of examples/train_vgg.py --profile: small (VGG-A x0.25 at "
                        "32x32, FC 128, 10 classes) or paper (224, full widths, FC 4096, "
                        "1000 classes)")
    p.add_argument("--cfg", default=None, choices=list(CONFIGS),
                   help="Table 1 column (default: the profile's, A)")
    p.add_argument("--all", action="store_true",
                   help="print the six configurations side by side, as Table 1 does")
    p.add_argument("--input", type=int, default=None,
                   help="input side in pixels (default: the profile's crop, 32 or 224)")
    p.add_argument("--classes", type=int, default=None,
                   help="output classes (default: 10 on the small profile, 1000 on the paper's)")
    p.add_argument("--width-mult", type=float, default=None,
                   help="scale every conv's channels, as train_vgg.py --width-mult does "
                        "(default: the profile's, 0.25 or 1)")
    p.add_argument("--fc-width", type=int, default=None,
                   help="width of fc6 and fc7; 0: 4096 for inputs >= 224, else 128, as in "
                        "training (default: the profile's)")
    p.add_argument("--format", default="text", choices=("text", "markdown", "csv"))
    p.add_argument("--algorithms", action="store_true",
                   help="print which implementation of each layer runs, and why, for a batch "
                        "of --batch images (minivgg/fast/select.py)")
    p.add_argument("--batch", type=int, default=64, help="batch size for --algorithms")
    p.add_argument("--ops", default="fast", choices=("fast", "reference"),
                   help="tier for --algorithms: the fast tier or the textbook ops")
    p.add_argument("--device", default="cpu", help="device for --algorithms (cpu, emu, cuda)")
    return p


def _file_model(args):
    """(model keyword arguments, header line) of ``args.file``."""
    from .io import inspect_weights
    given = [flag for dest, flag in _MODEL_FLAGS.items()
             if dest != "profile" and getattr(args, dest) is not None]
    if args.profile != "small":
        given.append("--profile")
    if given or args.all:
        raise ValueError(f"{' and '.join(given + (['--all'] if args.all else []))}: the model "
                         f"comes from {args.file}; give either the file or the flags")
    w = inspect_weights(args.file)
    c = w.config
    line = (f"{w.path} ({w.layout} names, .{w.format}): VGG-{c['cfg']}, widths "
            f"x{c['width_mult']:g}, FC {c['fc_width']}, {c['input_size']}x{c['input_size']} "
            f"input, {c['num_classes']} classes")
    return c, line


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        header = ""
        if args.file is not None:
            c, header = _file_model(args)
            cfg, size, classes = c["cfg"], c["input_size"], c["num_classes"]
            width, fc = c["width_mult"], c["fc_width"]
        else:
            d = _profile_defaults(args.profile)
            pick = {k: (getattr(args, k) if getattr(args, k) is not None else d[k]) for k in d}
            cfg, size, classes = pick["cfg"], pick["input"], pick["classes"]
            width = pick["width_mult"]
            fc = pick["fc_width"] or (4096 if size >= 224 else 128)  # training's rule
        if args.all:
            out = format_all(args.format, size, classes, width, fc)
        elif args.algorithms:
            if args.batch < 1:
                raise ValueError(f"--batch must be >= 1, got {args.batch}")
            out = format_algorithms(cfg, size, args.batch, width, fc, classes, args.device,
                                    args.ops, args.format)
        else:
            rows = layer_rows(cfg, size, classes, width, fc)
            out = format_rows(cfg, rows, args.format, size)
            if header and args.format != "csv":
                out = header + "\n" + out
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
