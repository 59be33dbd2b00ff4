"""The one door between the two tiers: which implementation of each op runs.

minivgg has two tiers. The textbook tier (``minivgg/functional``) is the ops
of §2.1 as a student writes them after reading the paper; the fast tier
(this package) computes the same numbers faster on the CPU. The layers
(``minivgg.nn``), the model and the data transforms ask this module, and
nothing else, which one to run:

    minivgg.use_ops("reference")        # from now on: the textbook tier
    with minivgg.use_ops("reference"):  # inside the block only
        ...

``"fast"`` (the default) picks, per call, the fastest implementation this
machine has for the op and its shapes; ``"reference"`` runs the textbook
ops everywhere, leaves every Conv2d + ReLU pair and every transform unfused
(so each module and transform a student hooks really runs), and lets
leaves receive their gradients by the plain rule (autograd.LeafGradients)
instead of the optimizer hand-off (handoff.py).

Convolutions on the CPU have five algorithms (``CONV_ALGORITHMS``), chosen
by ``choose_conv`` from the shapes, with the reason in words;
``python -m minivgg.summary --cfg A --algorithms`` prints the choice for
every layer. ``CONV = "auto"`` is the measured rule; setting it to one
algorithm's name forces that algorithm wherever it applies (tests,
ablations) and leaves the rule to decide elsewhere. On a GPU (``cuda``,
``emu``) the fast tier's convolution is im2col + cuBLAS in memory-sized
chunks, with bias and ReLU fused in one kernel.
"""
from .. import functional as F
from ..autograd import LeafGradients, common_device, set_leaf_gradients
from ..functional.shapes import check_conv_shapes, check_linear_shapes, check_pool_shapes, pair
from . import channels_last, small_maps, winograd, winograd4
from .activation import Dropout as FastDropout, ReLU as FastReLU
from .conv import Conv2d as FastConv2d
from .handoff import BufferHandOff
from .linear import Linear as FastLinear
from .pooling import MaxPool2d as FastMaxPool2d

TIERS = ("fast", "reference")
_tier = "fast"


def tier():
    """The tier in force: "fast" or "reference"."""
    return _tier


def _set_tier(name):
    global _tier
    if name not in TIERS:
        raise ValueError(f"use_ops: unknown tier {name!r}; expected one of "
                         f"{', '.join(repr(t) for t in TIERS)}")
    old, _tier = _tier, name
    set_leaf_gradients(BufferHandOff if name == "fast" else LeafGradients)
    return old


class use_ops:
    """Choose the tier: ``use_ops("reference")`` switches at once (call it
    once at start-up); ``with use_ops("reference"): ...`` switches for the
    block and restores the tier before it."""

    def __init__(self, name):
        self.previous = _set_tier(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set_tier(self.previous)
        return False


# -- Convolution: which algorithm, and why ------------------------------------------------------

#: The CPU algorithms of the fast tier, as ``CONV`` may name them.
CONV_ALGORITHMS = ("im2col", "im2col-channels-last", "whole-map", "winograd2", "winograd4")

#: Words for each, as summaries and benchmarks print them.
CONV_NAMES = {"im2col": "im2col + GEMM", "im2col-channels-last": "im2col + GEMM, channels last",
              "whole-map": "whole-map GEMM", "winograd2": "Winograd F(2x2,3x3)",
              "winograd4": "Winograd F(4x4,3x3)", "gpu": "im2col + cuBLAS (GPU kernels)",
              "reference": "textbook im2col + GEMM"}

#: "auto", or one of CONV_ALGORITHMS to force it wherever it applies.
CONV = "auto"

#: Winograd rows: by the smaller of the two channel counts, the first row
#: it reaches gives the output size (both sides) and the output pixels in
#: the batch (N*OH*OW) from which F(4x4, 3x3) runs, else the output size
#: from which F(2x2, 3x3) does (None: never), else no Winograd. Below the
#: last row's channel count, and below WINOGRAD_MIN_MACS multiply-adds in
#: the batch's direct convolution, the transforms cost more than the
#: products they save. Measured choices: docs/benchmarks.md, "Winograd
#: against im2col".
WINOGRAD_SIZES = (
    # (channels at least, F(4x4) from output size, from output pixels, F(2x2) from output size)
    (256, 4, 256, 2),
    (8, 4, 256, None),
)
WINOGRAD_MIN_MACS = 1 << 25

#: The channels-last im2col (channels_last.py) where no Winograd runs: from
#: this many input channels and output pixels, up to this many weights (its
#: filters are reordered once per call, a copy that must stay small beside
#: the product).
CHANNELS_LAST_MIN_CHANNELS = 8
CHANNELS_LAST_MIN_PIXELS = 64
CHANNELS_LAST_MAX_WEIGHTS = 1 << 22

#: The whole-map GEMM (small_maps.py) where every output pixel sees every
#: input pixel, while its matrix has at most this many elements (a dense
#: evaluation's FC-as-conv layer on an exact 7x7 map would need a reordered
#: copy of 103M weights, which im2col uses in place).
SMALL_MAP_MAX_ELEMENTS = 1 << 23

_APPLIES = {"whole-map": small_maps.applies, "winograd2": winograd.applies,
            "winograd4": winograd4.applies, "im2col-channels-last": channels_last.applies,
            "im2col": lambda *shapes: True}


def _winograd_rule(x_shape, w_shape, stride, padding):
    """("winograd4" | "winograd2" | None, reason) by the measured rule."""
    f4 = winograd4.applies(x_shape, w_shape, stride, padding)
    f2 = winograd.applies(x_shape, w_shape, stride, padding)
    if not (f4 or f2):
        return None, "Winograd needs a 3x3 kernel at stride 1"
    oh, ow = x_shape[2] + 2 * padding[0] - 2, x_shape[3] + 2 * padding[1] - 2
    macs = x_shape[0] * oh * ow * w_shape[0] * w_shape[1] * 9
    if macs < WINOGRAD_MIN_MACS:
        return None, f"{macs:,} multiply-adds < WINOGRAD_MIN_MACS {WINOGRAD_MIN_MACS:,}"
    channels, size, pixels = min(w_shape[:2]), min(oh, ow), x_shape[0] * oh * ow
    for at_least, f4_from, f4_pixels, f2_from in WINOGRAD_SIZES:
        if channels >= at_least:
            if f4 and size >= f4_from and pixels >= f4_pixels:
                return "winograd4", (f"{channels} channels >= {at_least}, output {size} >= "
                                     f"{f4_from}, {pixels:,} output pixels >= {f4_pixels}")
            if f2 and f2_from is not None and size >= f2_from:
                return "winograd2", f"{channels} channels >= {at_least}, output {size} >= {f2_from}"
            return None, f"output {size} or {pixels:,} pixels too small for Winograd"
    if not WINOGRAD_SIZES:
        return None, "WINOGRAD_SIZES is empty (Winograd switched off)"
    return None, f"{channels} channels < {WINOGRAD_SIZES[-1][0]} (Winograd's transforms cost more)"


def _small_map_rule(x_shape, w_shape, stride, padding):
    """(True, reason) when the whole-map GEMM runs by the measured rule."""
    if not small_maps.applies(x_shape, w_shape, stride, padding):
        return False, "some output pixel does not see every input pixel"
    size = small_maps.matrix_size(x_shape, w_shape, padding)
    if size > SMALL_MAP_MAX_ELEMENTS:
        return False, f"its matrix, {size:,} numbers > {SMALL_MAP_MAX_ELEMENTS:,}"
    return True, (f"every output pixel sees every input pixel; its matrix, {size:,} numbers "
                  f"<= {SMALL_MAP_MAX_ELEMENTS:,}")


def _channels_last_rule(x_shape, w_shape, stride, padding):
    """(True, reason) when the channels-last im2col runs where no Winograd does."""
    n, c, h, wd = x_shape
    k, _, kh, kw = w_shape
    pixels = n * (h + 2 * padding[0] - kh + 1) * (wd + 2 * padding[1] - kw + 1)
    if not channels_last.applies(x_shape, w_shape, stride, padding):
        return False, f"stride {tuple(stride)} or padding {tuple(padding)}: channel-major columns"
    if c < CHANNELS_LAST_MIN_CHANNELS:
        return False, f"{c} input channels < {CHANNELS_LAST_MIN_CHANNELS}"
    if pixels < CHANNELS_LAST_MIN_PIXELS:
        return False, f"{pixels} output pixels < {CHANNELS_LAST_MIN_PIXELS}"
    if k * c * kh * kw > CHANNELS_LAST_MAX_WEIGHTS:
        return False, f"{k * c * kh * kw:,} weights > {CHANNELS_LAST_MAX_WEIGHTS:,}"
    return True, f"{c} input channels, {pixels:,} output pixels"


def _auto(x_shape, w_shape, stride, padding):
    """The measured rule: the whole-map GEMM, else Winograd, else im2col
    with the channels last or channel-major."""
    small, why_small = _small_map_rule(x_shape, w_shape, stride, padding)
    if small:
        return "whole-map", why_small
    name, why = _winograd_rule(x_shape, w_shape, stride, padding)
    if name is not None:
        return name, why
    last, why_last = _channels_last_rule(x_shape, w_shape, stride, padding)
    return ("im2col-channels-last" if last else "im2col"), f"{why}; {why_last}"


def choose_conv(dev, x_shape, w_shape, stride=(1, 1), padding=(1, 1)):
    """(algorithm, reason): what runs for this convolution on ``dev`` in the
    tier in force. ``algorithm`` is "reference", "gpu" or one of
    CONV_ALGORITHMS; ``reason`` says why, in words."""
    if _tier == "reference":
        return "reference", "the textbook tier (use_ops('reference'))"
    if dev.uses_kernels:
        return "gpu", f"a {dev.kind} device: the CUDA kernels and cuBLAS"
    if CONV != "auto":
        if CONV not in CONV_ALGORITHMS:
            raise ValueError(f"select.CONV = {CONV!r}; expected 'auto' or one of "
                             f"{', '.join(CONV_ALGORITHMS)}")
        if _APPLIES[CONV](x_shape, w_shape, stride, padding):
            return CONV, f"forced (select.CONV = {CONV!r})"
    return _auto(x_shape, w_shape, stride, padding)


def winograd_choice(dev, x_shape, w_shape, padding):
    """"winograd4", "winograd2" or None for a stride-1 convolution: the
    Winograd part of the choice alone (forced, by the rule, or not at all
    when CONV forces another algorithm). It decides how the dX of a
    channel-major im2col layer, itself a stride-1 convolution of gy with the
    flipped filters, is computed."""
    if dev.uses_kernels:
        return None
    if CONV in ("winograd2", "winograd4"):
        return CONV if _APPLIES[CONV](x_shape, w_shape, (1, 1), padding) else None
    if CONV != "auto":
        return None
    return _winograd_rule(x_shape, w_shape, (1, 1), padding)[0]


def algorithm_name(dev, x_shape, w_shape, stride=(1, 1), padding=(1, 1)):
    """What runs for this convolution, in words (benchmarks, summaries)."""
    return CONV_NAMES[choose_conv(dev, x_shape, w_shape, stride, padding)[0]]


# -- The ops, through the door -------------------------------------------------------------------

def conv2d(x, w, b=None, stride=1, padding=0, relu=False, where="conv2d"):
    """Convolution (and the ReLU after it when ``relu``) by the tier in force.
    x (N, C, H, W), w (K, C, KH, KW), b (K,) or None -> (N, K, OH, OW)."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    check_conv_shapes(x.shape, w.shape, stride, padding, where)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"{where}: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    dev = common_device((x, w, b), where)
    algorithm, _ = choose_conv(dev, x.shape, w.shape, stride, padding)
    if algorithm == "reference":
        fn = F.Conv2d(stride, padding)
        y = fn(x, w) if b is None else fn(x, w, b)
        return F.relu(y) if relu else y
    fn = FastConv2d(stride, padding, relu, algorithm, _dx_choice(dev, x, w, stride, padding))
    return fn(x, w) if b is None else fn(x, w, b)


def _dx_choice(dev, x, w, stride, padding):
    """winograd_choice for this convolution's dX, where dX is a convolution (stride 1)."""
    (kh, kw), (ph, pw) = w.shape[2:], padding
    if tuple(stride) != (1, 1) or ph > kh - 1 or pw > kw - 1:
        return None
    oh, ow = x.shape[2] + 2 * ph - kh + 1, x.shape[3] + 2 * pw - kw + 1
    gy_shape = (x.shape[0], w.shape[0], oh, ow)
    wt_shape = (w.shape[1], w.shape[0], kh, kw)
    return winograd_choice(dev, gy_shape, wt_shape, (kh - 1 - ph, kw - 1 - pw))


def max_pool2d(x, kernel_size=2, stride=None, padding=0, where="max_pool2d"):
    """Max-pooling by the tier in force. x (N, C, H, W) -> (N, C, OH, OW)."""
    fn = (FastMaxPool2d if _tier == "fast" else F.MaxPool2d)(kernel_size, stride, padding)
    check_pool_shapes(x.shape, fn.kernel, fn.stride, fn.padding, where)
    return fn(x)


def relu(x):
    """ReLU by the tier in force; any shape."""
    return (FastReLU if _tier == "fast" else F.ReLU)()(x)


def dropout(x, p=0.5, training=True, key=None):
    """Inverted dropout by the tier in force (the same masks in both)."""
    if not _tier == "fast":
        return F.dropout(x, p, training, key)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return FastDropout(p, F.activation.next_key() if key is None else key)(x)


def linear(x, w, b=None, where="linear"):
    """Affine map by the tier in force. x (N, F_in), w (F_out, F_in) -> (N, F_out)."""
    check_linear_shapes(x.shape, w.shape, where)
    fn = (FastLinear if _tier == "fast" else F.Linear)()
    return fn(x, w) if b is None else fn(x, w, b)


#: The help of every command's --ops option.
OPS_HELP = ("fast: the fastest implementation of each op for this machine (minivgg/fast); "
            "reference: the textbook ops of minivgg/functional, unfused, as "
            "docs/paper_to_code.md teaches them (slower; the same numbers up to float rounding)")


def add_ops_flag(parser):
    """Give a command the --ops option (apply it with ``use_ops(args.ops)``)."""
    parser.add_argument("--ops", default="fast", choices=TIERS, help=OPS_HELP)


def fuses_conv_relu():
    """True when a Conv2d followed by a ReLU runs as one op (the fast tier)."""
    return _tier == "fast"


def fuses_transforms():
    """True when the data pipeline's tail runs as one fused pass (the fast tier)."""
    return _tier == "fast"


def describe_conv(dev, x_shape, w_shape, stride=(1, 1), padding=(1, 1)):
    """'algorithm: reason' for one convolution (minivgg.summary --algorithms)."""
    name, why = choose_conv(dev, x_shape, w_shape, pair(stride), pair(padding))
    return f"{CONV_NAMES[name]}: {why}"


_set_tier(_tier)
