"""The two tiers held equal: every fast op (minivgg/fast) against its
textbook twin (minivgg/functional), forward and every gradient, float64;
a whole VGG-A training step on both tiers; the door (use_ops) itself; and
what the textbook tier promises a student: every module and transform
really runs, and gradients reach the optimizer by the plain rule."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.data import transforms as T
from minivgg.fast import channels_last, select, small_maps, winograd4
from minivgg.gradcheck import away_from_kinks, distinct_values, vgg_kinks
from minivgg.models import vgg
from minivgg.optim import SGD
from kinks import conv_inputs


def both(fn, arrays, grads, seed=0):
    """Run ``fn`` on fresh leaves of ``arrays`` (requires_grad per ``grads``)
    in each tier; returns {tier: [output, gradients...]}."""
    out = {}
    for tier in ("reference", "fast"):
        with minivgg.use_ops(tier):
            ts = [Tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grads)]
            y = fn(*ts)
            gy = np.random.default_rng(seed).standard_normal(y.shape)
            y.backward(gy)
            out[tier] = [y.data] + [t.grad for t, g in zip(ts, grads) if g]
    return out


def assert_tiers_equal(out, tol):
    for r, f in zip(out["reference"], out["fast"]):
        np.testing.assert_allclose(f, r, rtol=tol, atol=tol)


# (algorithm, x shape, w shape, padding, tolerance): a case where each applies
CONV_CASES = [
    ("im2col", (2, 3, 9, 8), (5, 3, 3, 3), 1, 1e-12),
    ("im2col", (2, 4, 7, 7), (3, 4, 1, 1), 0, 1e-12),                  # C's 1x1
    ("im2col-channels-last", (2, 8, 9, 8), (5, 8, 3, 3), 1, 1e-12),
    ("im2col-channels-last", (2, 8, 6, 6), (4, 8, 1, 1), 0, 1e-12),
    ("whole-map", (4, 6, 2, 2), (5, 6, 3, 3), 1, 1e-12),
    ("whole-map", (3, 6, 1, 1), (5, 6, 3, 3), 1, 1e-12),
    ("winograd2", (2, 8, 10, 8), (5, 8, 3, 3), 1, 1e-11),
    ("winograd4", (2, 8, 9, 11), (5, 8, 3, 3), 1, 1e-10),
]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("algorithm,xs,ws,pad,tol", CONV_CASES)
def test_every_conv_algorithm_equals_the_textbook_conv(monkeypatch, algorithm, xs, ws, pad, tol,
                                                       bias, relu):
    """Forward, dX, dW and db; the fast tier's fused ReLU against the
    textbook's conv then ReLU (inputs away from the kink, so both take the
    same branch whatever their rounding)."""
    monkeypatch.setattr(select, "CONV", algorithm)
    x, w, *b = conv_inputs(xs, ws, 1, pad, relu, bias=bias)
    assert select.choose_conv(minivgg.backend.device("cpu"), xs, ws, (1, 1), (pad, pad))[0] \
        == algorithm
    out = both(lambda *t: select.conv2d(t[0], t[1], t[2] if bias else None, 1, pad, relu=relu),
               [x, w] + b, [True] * (2 + len(b)))
    assert_tiers_equal(out, tol)


def test_strided_conv_and_the_first_layers_backward_equal_the_textbook():
    """Stride 2 (dX through col2im on both tiers), and a layer whose input
    needs no gradient (the image's): the fast tier then masks and forms dW
    block by block."""
    x, w, b = conv_inputs((2, 3, 9, 9), (4, 3, 3, 3), 2, 1, relu=False)
    out = both(lambda *t: select.conv2d(*t, stride=2, padding=1), [x, w, b], [True] * 3)
    assert_tiers_equal(out, 1e-12)
    x, w, b = conv_inputs((2, 3, 8, 8), (4, 3, 3, 3), 1, 1)
    out = both(lambda *t: select.conv2d(*t, stride=1, padding=1, relu=True), [x, w, b],
               [False, True, True])
    assert_tiers_equal(out, 1e-12)


@pytest.mark.parametrize("xs,k,s,p", [((2, 3, 8, 6), 2, 2, 0), ((2, 2, 7, 9), 2, 2, 0),
                                      ((1, 2, 7, 7), 3, 2, 1), ((2, 1, 6, 8), (3, 2), (1, 2), 0)])
def test_pooling_equals_the_textbook_with_ties_and_nans(xs, k, s, p):
    """Bit for bit: the same maximum, and the gradient at the same first
    maximum of each window, ties (ReLU-like zeros) and NaNs included."""
    rng = np.random.default_rng(3)
    for x in (distinct_values(xs, rng, 0.5), np.maximum(rng.integers(-3, 4, xs), 0) * 1.0):
        x.reshape(-1)[5] = np.nan
        out = both(lambda t: select.max_pool2d(t, k, s, p), [x], [True])
        for r, f in zip(out["reference"], out["fast"]):
            np.testing.assert_array_equal(f, r)


def test_relu_dropout_linear_lrn_loss_equal_the_textbook():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 10))
    x[0, :3] = [0.0, -0.0, np.nan]
    for fn in (select.relu, lambda t: select.dropout(t, 0.5, True, key=11)):
        out = both(fn, [x], [True])
        for r, f in zip(out["reference"], out["fast"]):
            np.testing.assert_array_equal(f, r)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    assert_tiers_equal(both(select.linear, [x, w, b], [True] * 3), 1e-13)
    # LRN and the loss have one implementation, used by both tiers: the layers say so
    m = vgg("A-LRN", num_classes=3, input_size=32, fc_width=6, width_mult=1 / 16)
    assert type(m.features[2]).__name__ == "LocalResponseNorm"


def test_dropout_masks_are_the_same_in_both_tiers():
    """The same stream draws the same mask in each tier (and on every device:
    tests/cuda/test_kernels.py)."""
    x = Tensor(np.ones((50, 40), np.float32))
    got = {}
    for tier in ("reference", "fast"):
        with minivgg.use_ops(tier):
            minivgg.manual_seed(9)
            got[tier] = select.dropout(x, 0.5).data
    np.testing.assert_array_equal(got["reference"], got["fast"])
    assert 0.4 < (got["fast"] == 0).mean() < 0.6


def _vgg_a_step(tier, x, labels, state):
    """One training step of a small float64 VGG-A (dropout on) in ``tier``:
    (loss, gradients by name, weights after one SGD update)."""
    with minivgg.use_ops(tier):
        m = vgg("A", num_classes=5, input_size=32, fc_width=16, width_mult=1 / 8, init=None,
                dtype=np.float64, dropout=0.5)
        m.load_state_dict(state)
        opt = SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        opt.zero_grad()
        minivgg.manual_seed(2)
        loss = F.softmax_cross_entropy(m(Tensor(x)), labels)
        loss.backward()
        grads = {n: p.grad.copy() for n, p in m.named_parameters()}
        opt.step()
        return float(loss.data), grads, m.state_dict()


def test_a_whole_vgg_a_step_is_the_same_on_both_tiers(monkeypatch):
    """Loss, every gradient and the updated weights agree to 1e-9 (float64),
    at 32x32 where the fast tier runs four algorithms (im2col for the image,
    Winograd F(4x4), the channels-last im2col, the whole-map GEMM) and the
    hand-off; inputs drawn away from every kink, so both take the same
    branches."""
    m = vgg("A", num_classes=5, input_size=32, fc_width=16, width_mult=1 / 8, init="kaiming",
            seed=3, dtype=np.float64, dropout=0.5, fc_bias=0.1)
    state = m.state_dict()
    labels = np.array([0, 3, 1, 4, 2, 2, 0, 1])

    def kinks(x):
        minivgg.manual_seed(2)
        with minivgg.use_ops("reference"):
            return vgg_kinks(m, x)
    x, = away_from_kinks(lambda r: (r.standard_normal((8, 3, 32, 32)),), kinks, 1e-6)
    # so small a batch has too few multiply-adds for the rule to take Winograd: allowed here
    monkeypatch.setattr(select, "WINOGRAD_MIN_MACS", 0)
    used = []
    for mod, fn in ((winograd4, "conv3x3"), (channels_last, "conv"), (small_maps, "conv")):
        real = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda *a, _m=mod, _r=real, **k:
                            used.append(_m.__name__.split(".")[-1]) or _r(*a, **k))
    ref = _vgg_a_step("reference", x, labels, state)
    assert used == []
    fast = _vgg_a_step("fast", x, labels, state)
    assert {"winograd4", "channels_last", "small_maps"} <= set(used), used
    assert fast[0] == pytest.approx(ref[0], rel=1e-9)
    for name, g in ref[1].items():
        scale = max(np.abs(g).max(), 1e-30)
        assert np.abs(fast[1][name] - g).max() <= 1e-9 * scale, name
    for name, w in ref[2].items():
        np.testing.assert_allclose(fast[2][name], w, rtol=1e-9, atol=1e-12)


def test_use_ops_switches_restores_and_refuses_unknown_tiers():
    assert select.tier() == "fast"
    with minivgg.use_ops("reference"):
        assert select.tier() == "reference" and not select.fuses_conv_relu()
        with minivgg.use_ops("fast"):
            assert select.tier() == "fast"
        assert select.tier() == "reference"
    assert select.tier() == "fast"
    minivgg.use_ops("reference")        # called once, at start-up
    try:
        assert select.tier() == "reference"
        assert select.choose_conv(minivgg.backend.device("cpu"), (8, 64, 56, 56),
                                  (128, 64, 3, 3))[0] == "reference"
    finally:
        minivgg.use_ops("fast")
    with pytest.raises(ValueError, match="unknown tier 'textbook'; expected one of 'fast', "
                                         "'reference'"):
        minivgg.use_ops("textbook")
    assert select.tier() == "fast"


def test_every_relu_module_runs_on_the_textbook_tier():
    """Hooks on the ReLU modules fire for every ReLU of the network on the
    textbook tier; the fast tier runs the ReLUs after the convolutions inside
    them (fused), so only the classifier's fire there."""
    m = vgg("A", num_classes=3, input_size=32, fc_width=8, width_mult=1 / 16)
    relus = [mod for mod in m.modules() if type(mod).__name__ == "ReLU"]
    fired = []
    for r in relus:
        r.register_forward_hook(lambda mod, inputs, out: fired.append(mod))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    with minivgg.use_ops("reference"):
        m(x)
    assert len(fired) == len(relus) == 8 + 2
    fired.clear()
    m(x)
    assert len(fired) == 2


def test_every_transform_runs_on_the_textbook_tier(monkeypatch):
    """The §3.1 pipeline: on the textbook tier flip, ToFloat, colour shift,
    mean subtraction and ToCHW each run (counted), and give the same float32
    numbers as the fast tier's fused tail, which runs none of them."""
    calls = []
    for cls in (T.RandomHorizontalFlip, T.ToFloat, T.PCAColourShift, T.SubtractMean, T.ToCHW):
        real = cls.__call__
        monkeypatch.setattr(cls, "__call__", lambda self, *a, _r=real, _n=cls.__name__, **k:
                            calls.append(_n) or _r(self, *a, **k))
    pipe = T.train_transform(crop=8, scale=(10, 12), mean_rgb=[0.4, 0.5, 0.6])
    img = np.random.default_rng(1).integers(0, 256, (13, 15, 3), dtype=np.uint8)
    with minivgg.use_ops("reference"):
        ref = pipe(img, np.random.default_rng(5))
    assert calls == ["RandomHorizontalFlip", "ToFloat", "PCAColourShift", "SubtractMean", "ToCHW"]
    calls.clear()
    fast = pipe(img, np.random.default_rng(5))
    assert "PCAColourShift" not in calls and "SubtractMean" not in calls
    np.testing.assert_array_equal(fast, ref)


def test_the_plain_rule_and_the_hand_off_give_the_optimizer_the_same_gradients():
    """The textbook tier's leaves receive their gradients as new arrays
    (LeafGradients), which SGD copies into its buffer; the fast tier writes
    them there (handoff.BufferHandOff). Same gradients, same update."""
    rng = np.random.default_rng(6)
    x, gy = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    w0, b0 = rng.standard_normal((3, 6)), rng.standard_normal(3)
    after = {}
    for tier in ("reference", "fast"):
        with minivgg.use_ops(tier):
            w, b = Tensor(w0.copy(), requires_grad=True), Tensor(b0.copy(), requires_grad=True)
            opt = SGD([w, b], lr=0.1, momentum=0.9)
            for _ in range(2):
                opt.zero_grad()
                y = select.linear(Tensor(x), w, b)
                (y + y).backward(gy)             # two contributions to each gradient
                in_buffer = np.shares_memory(w.grad, opt.buffers().grad)
                opt.step()
            after[tier] = (w.data.copy(), b.data.copy(), in_buffer)
    assert after["fast"][2] and not after["reference"][2]
    np.testing.assert_allclose(after["fast"][0], after["reference"][0], rtol=1e-13)
    np.testing.assert_allclose(after["fast"][1], after["reference"][1], rtol=1e-13)


def test_the_one_step_example_runs_and_shows_each_stage():
    """examples/one_step.py: the plain §3.1 step, on the textbook tier."""
    import subprocess
    import sys
    from conftest import ROOT
    out = subprocess.run([sys.executable, "examples/one_step.py"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("batch (8, 3, 32, 32) float32 labels")
    assert lines[1].startswith("logits (8, 10) loss ")
    assert "the learning rate is 0.01" in lines[-2] and "the learning rate is 0.001" in lines[-1]
