"""The VGG's classifier and its dense form (§3.2) against plain NumPy written
here, at input sizes where FC1 is a real convolution (its kernel is 2x2 at
64, 7x7 at 224; at 32 it is 1x1 and every layout looks the same).

The truth stated here: FC1's input is the last feature map flattened
channel-major, feature index c*s*s + i*s + j for channel c, row i, column j
of the s x s map (torch.flatten of an NCHW tensor, torchvision's layout), and
the dense network's score at (p, q) is the classifier applied to the s x s
window of the feature map at (p, q). Needs no PyTorch; test_torch_vgg.py
checks the same against PyTorch."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg.models import CONFIGS, vgg
from minivgg.nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU

CFGS = list(CONFIGS)


def small(cfg, input_size=64, seed=0, **kw):
    args = dict(num_classes=5, input_size=input_size, fc_width=12, width_mult=1 / 16,
                init="kaiming", seed=seed, dtype=np.float64, fc_bias=0.1)
    args.update(kw)
    return vgg(cfg, **args)


def features(model, x):
    with minivgg.no_grad():
        return model.features(Tensor(x)).data


def classifier_reference(model, feat):
    """FC1-ReLU-FC2-ReLU-FC3 (no dropout) on (N, C, s, s) features, in NumPy."""
    n, c, s, _ = feat.shape
    cls = model.classifier
    w1, b1 = cls[0].weight.data, cls[0].bias.data
    assert w1.shape[1] == c * s * s
    h = np.empty((n, w1.shape[0]))
    for a in range(n):
        for f in range(w1.shape[0]):
            total = b1[f]
            for ch in range(c):
                for i in range(s):
                    for j in range(s):
                        total += w1[f, ch * s * s + i * s + j] * feat[a, ch, i, j]
            h[a, f] = total
    h = np.maximum(h, 0)
    h = np.maximum(h @ cls[3].weight.data.T + cls[3].bias.data, 0)
    return h @ cls[6].weight.data.T + cls[6].bias.data


@pytest.mark.parametrize("cfg", CFGS)
def test_classifier_flattens_channel_major_at_64(cfg):
    m = small(cfg, seed=1).eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64))
    feat = features(m, x)
    assert feat.shape[2:] == (2, 2)
    with minivgg.no_grad():
        logits = m(Tensor(x)).data
    np.testing.assert_allclose(logits, classifier_reference(m, feat), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cfg", CFGS)
def test_dense_net_equals_classifier_on_a_64_image(cfg):
    m = small(cfg, seed=3).eval()
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64))
    with minivgg.no_grad():
        dense = m.to_fully_conv()(Tensor(x)).data
        logits = m(Tensor(x)).data
    assert dense.shape == (2, 5, 1, 1)
    np.testing.assert_allclose(dense[:, :, 0, 0], logits, rtol=1e-10, atol=1e-12)


def dense_reference(model, feat):
    """Score map (N, K, OH, OW): the classifier on every s x s feature window."""
    s = model.feature_size
    n, _, fh, fw = feat.shape
    out = np.empty((n, model.num_classes, fh - s + 1, fw - s + 1))
    for p in range(fh - s + 1):
        for q in range(fw - s + 1):
            out[:, :, p, q] = classifier_reference(model, feat[:, :, p:p + s, q:q + s])
    return out


@pytest.mark.parametrize("cfg,hw", [("A", (96, 128)), ("C", (128, 96)), ("A-LRN", (64, 160))])
def test_dense_score_map_is_the_classifier_slid_over_the_features(cfg, hw):
    m = small(cfg, seed=5).eval()
    x = np.random.default_rng(6).standard_normal((2, 3) + hw)
    with minivgg.no_grad():
        smap = m.to_fully_conv()(Tensor(x)).data
    want = dense_reference(m, features(m, x))
    assert smap.shape == want.shape == (2, 5, hw[0] // 32 - 1, hw[1] // 32 - 1)
    np.testing.assert_allclose(smap, want, rtol=1e-10, atol=1e-12)


def test_dense_net_at_the_papers_224_crop():
    m = small("A", input_size=224, seed=7, width_mult=1 / 32, fc_width=6).eval()
    assert m.feature_size == 7
    g = np.random.default_rng(8)
    x = g.standard_normal((1, 3, 224, 224))
    with minivgg.no_grad():
        logits = m(Tensor(x)).data
        dense = m.to_fully_conv()(Tensor(x)).data
    np.testing.assert_allclose(dense[:, :, 0, 0], logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(logits, classifier_reference(m, features(m, x)), rtol=1e-10,
                               atol=1e-12)
    # Q = 256 on a square image: an 8x8 feature map, a 2x2 score map.
    big = g.standard_normal((1, 3, 256, 256))
    with minivgg.no_grad():
        smap = m.to_fully_conv()(Tensor(big)).data
    np.testing.assert_allclose(smap, dense_reference(m, features(m, big)), rtol=1e-10,
                               atol=1e-12)


def test_dense_gradients_reach_the_shared_fc_weights():
    m = small("A", seed=9).eval()
    x = np.random.default_rng(10).standard_normal((1, 3, 96, 96))
    out = m.to_fully_conv()(Tensor(x))  # 1x5x2x2 score map
    out.sum().backward()
    g_dense = m.classifier[0].weight.grad.copy()
    m.zero_grad()
    # The same gradient from the classifier run on the four 64x64-receptive windows:
    # sum over windows of d(logits)/dW1, computed through the ordinary classifier.
    feat = Tensor(features(m, x))
    total = np.zeros_like(g_dense)
    for p in range(2):
        for q in range(2):
            m.zero_grad()
            h = feat.data[:, :, p:p + 2, q:q + 2].reshape(1, -1)
            m.classifier(Tensor(h)).sum().backward()
            total += m.classifier[0].weight.grad
    np.testing.assert_allclose(g_dense, total, rtol=1e-10, atol=1e-12)


# -- Table 1 structure stated plainly -----------------------------------------------

def test_a_lrn_uses_the_papers_lrn_after_the_first_conv():
    m = small("A-LRN")
    kinds = [type(mod) for mod in m.features]
    assert kinds[:4] == [Conv2d, ReLU, LocalResponseNorm, MaxPool2d]
    lrn = m.features[2]
    # §2.2: "the LRN layer ... parameters of Krizhevsky et al. (2012)": k=2, n=5,
    # alpha=1e-4 (on the plain sum of squares), beta=0.75.
    assert (lrn.size, lrn.k, lrn.alpha, lrn.beta) == (5, 2.0, 1e-4, 0.75)


def test_a_lrn_layer_computes_alexnets_formula():
    m = small("A-LRN", input_size=32, seed=11)
    x = np.random.default_rng(12).standard_normal((1, 3, 32, 32)) * 40
    with minivgg.no_grad():
        a = m.features[1](m.features[0](Tensor(x))).data  # conv1_1 + ReLU
        b = m.features[2](Tensor(a)).data
    c = a.shape[1]
    want = np.empty_like(a)
    for ch in range(c):
        lo, hi = max(0, ch - 2), min(c - 1, ch + 2)
        want[:, ch] = a[:, ch] / (2.0 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** 0.75
    assert np.abs(want - a).max() > 0.1 * np.abs(a).max()  # the normalisation matters here
    np.testing.assert_allclose(b, want, rtol=1e-12)


def test_classifier_is_fc_relu_dropout_twice_then_fc():
    m = small("D", dropout=0.4)
    kinds = [type(mod) for mod in m.classifier]
    assert kinds == [Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear]
    assert m.classifier[2].p == m.classifier[5].p == 0.4
    assert [m.classifier[i].out_features for i in (0, 3, 6)] == [12, 12, 5]
    assert m.classifier[0].in_features == m.feature_channels * 2 * 2


@pytest.mark.parametrize("cfg", CFGS)
def test_every_conv_is_3x3_pad_1_or_1x1_pad_0_and_followed_by_relu(cfg):
    m = small(cfg)
    mods = list(m.features)
    one_by_one = 0
    for i, mod in enumerate(mods):
        if isinstance(mod, Conv2d):
            assert isinstance(mods[i + 1], ReLU)
            assert mod.stride == (1, 1)
            if mod.kernel_size == (1, 1):
                one_by_one += 1
                assert mod.padding == (0, 0)
            else:
                assert mod.kernel_size == (3, 3) and mod.padding == (1, 1)
        if isinstance(mod, MaxPool2d):
            assert mod.kernel_size == (2, 2) and mod.stride == (2, 2)
    assert one_by_one == (3 if cfg == "C" else 0)


def test_vgg_drops_in_training_mode_and_not_in_eval_mode():
    m = small("A", seed=13, dropout=0.5, fc_width=64)
    x = Tensor(np.random.default_rng(14).standard_normal((4, 3, 64, 64)))
    minivgg.manual_seed(0)
    with minivgg.no_grad():
        assert m.training
        t1, t2 = m(x).data, m(x).data
        m.eval()
        e1, e2 = m(x).data, m(x).data
    assert not np.allclose(t1, t2)  # a new mask each pass
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(t1, e1)
    np.testing.assert_allclose(e1, classifier_reference(m, features(m, x.data)), rtol=1e-10,
                               atol=1e-12)
