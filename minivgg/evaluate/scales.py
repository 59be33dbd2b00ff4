"""Test scales (§4.1, §4.2): the shorter side Q a test image is rescaled to.

§4.1 tests at one scale, Q = S for a fixed training scale and
Q = (S_min + S_max) / 2 for a jittered one; §4.2 at three, Q = {S - 32, S,
S + 32} or {S_min, (S_min + S_max) / 2, S_max}. Weights that record no
training scale get fixed defaults (FOREIGN_*), scaled to their crop.
"""
import numbers

from ..data.transforms import parse_scale


#: The test protocols: one centre crop at one scale; dense (fully-conv) over
#: the whole image; 5x5 x 2 flips crops per scale; both, posteriors averaged.
PROTOCOLS = ("single", "dense", "multicrop", "dense+multicrop")


#: §4.2: "Q = {S - 32, S, S + 32}" for a model trained at a fixed S.
SCALE_OFFSET = 32


def _scale_range(train_scale):
    """(S_min, S_max) from an int S or an [S_min, S_max] pair."""
    if isinstance(train_scale, str):
        raise ValueError(f"training scale must be an int S or a pair [S_min, S_max], "
                         f"got {train_scale!r}")
    return parse_scale(train_scale)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def test_scales(train_scale, offset=SCALE_OFFSET):
    """The multi-scale test set of §4.2 for a model trained at ``train_scale``.

    int S -> [S - offset, S, S + offset]  (fixed-scale training, offset 32);
    [S_min, S_max] -> [S_min, (S_min + S_max) // 2, S_max]  (scale jittering).
    Returns a list of 3 ints. Not checked against the crop: see check_scales.
    """
    lo, hi = _scale_range(train_scale)
    if lo == hi and not isinstance(train_scale, (list, tuple)):
        return [lo - offset, lo, lo + offset]
    return [lo, (lo + hi) // 2, hi]


test_scales.__test__ = False  # a library function, not a pytest test


def single_scale(train_scale):
    """§4.1's single test scale: Q = S, or Q = (S_min + S_max) // 2 if jittered."""
    lo, hi = _scale_range(train_scale)
    return (lo + hi) // 2


def parse_scales(text):
    """'256,384,512' -> [256, 384, 512] (the --scales option); ValueError naming the bad part."""
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


def check_protocol(protocol):
    """Return ``protocol`` if it is one of PROTOCOLS, else raise ValueError."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown test protocol {protocol!r}; expected one of "
                         f"{', '.join(PROTOCOLS)}")
    return protocol


def default_scales(train_scale, protocol):
    """Test scales for ``protocol``: [single_scale] for "single", else test_scales."""
    check_protocol(protocol)
    if train_scale is None:
        raise ValueError("the training scale S is unknown (no meta['train']['scale'] in the "
                         "checkpoint); pass the test scales explicitly (--scales Q1,Q2,Q3)")
    if protocol == "single":
        return [single_scale(train_scale)]
    return test_scales(train_scale)


#: Test scales for weights that record no training scale (torchvision's and
#: timm's), at a 224 crop: torchvision's own resize-256 / centre-crop-224
#: test for "single", the paper's Q for its S in [256, 512] models otherwise.
FOREIGN_SINGLE_Q = 256

FOREIGN_MULTI_Q = (256, 384, 512)


def foreign_scales(crop, protocol):
    """The test scales of weights without a recorded training scale:
    FOREIGN_SINGLE_Q or FOREIGN_MULTI_Q, times crop / 224 for other crops."""
    check_protocol(protocol)
    qs = [FOREIGN_SINGLE_Q] if protocol == "single" else list(FOREIGN_MULTI_Q)
    return [int(round(q * crop / 224)) for q in qs]


def check_scales(scales, crop, who="test scales"):
    """Validate test scales against the crop: a list of ints Q >= crop.

    Raises ValueError for an empty list, a non-integer, or Q < crop (the
    classifier cannot see a crop x crop window in a smaller image); the
    message names the bad values and suggests scales to pass instead.
    """
    scales = list(scales) if scales is not None else []
    if not scales:
        raise ValueError(f"{who}: the list of test scales is empty; give at least one Q "
                         f"(shorter image side), e.g. {crop}")
    bad = [q for q in scales if not _is_int(q) or q <= 0]
    if bad:
        raise ValueError(f"{who}: test scales must be positive ints, got {bad!r} in {scales!r}")
    small = [q for q in scales if q < crop]
    if small:
        fixed = sorted(set(max(int(q), crop) for q in scales))
        raise ValueError(
            f"{who}: test scale(s) Q={small} are smaller than the crop {crop} the model was "
            f"trained on; every Q must be >= {crop}. Pass the scales explicitly instead, e.g. "
            f"scales={fixed} (--scales {','.join(map(str, fixed))})")
    return [int(q) for q in scales]
