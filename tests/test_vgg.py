"""Table 1 and Table 2: the six configurations, their parameter counts, and
whole-network checks (float64 gradcheck, PyTorch oracle)."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor, gradcheck
from minivgg.gradcheck import KINK_MARGIN_STEPS, away_from_kinks, vgg_kinks
from minivgg import functional as F
from minivgg.fast import select
from minivgg.models import CONFIGS, DEPTHS, vgg
from minivgg.nn import Conv2d, LocalResponseNorm

PARAMS_224 = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
              "D": 138_357_544, "E": 143_667_240}


@pytest.mark.parametrize("cfg", list(PARAMS_224))
def test_parameter_counts_at_224_and_1000_classes(cfg):
    m = vgg(cfg, init=None)
    assert m.num_parameters() == PARAMS_224[cfg]
    weight_layers = m.weight_layers()
    assert len(weight_layers) == DEPTHS[cfg]  # "11 weight layers" ... "19 weight layers"


def test_table1_structure():
    a_lrn = vgg("A-LRN", num_classes=10, input_size=32, fc_width=8, width_mult=0.125)
    kinds = [type(m).__name__ for m in a_lrn.features]
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert sum(isinstance(m, LocalResponseNorm) for m in a_lrn.features) == 1
    c = vgg("C", num_classes=10, input_size=32, fc_width=8)
    convs = [m for m in c.features if isinstance(m, Conv2d)]
    one_by_one = [i for i, m in enumerate(convs) if m.kernel_size == (1, 1)]
    assert one_by_one == [6, 9, 12]  # the last conv of blocks 3, 4 and 5
    assert all(m.padding == (0, 0) for m in convs if m.kernel_size == (1, 1))
    assert all(m.padding == (1, 1) and m.stride == (1, 1) for m in convs
               if m.kernel_size == (3, 3))
    for cfg in CONFIGS:
        m = vgg(cfg, num_classes=10, input_size=32, fc_width=8, width_mult=0.125)
        assert sum(type(x).__name__ == "MaxPool2d" for x in m.features) == 5
        assert [n for n, _ in m.named_parameters()][-6:] == [
            "classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
            "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"]


def test_torchvision_names_for_d():
    names = [n for n, _ in vgg("D", num_classes=10, input_size=32, fc_width=8,
                                width_mult=0.125).named_parameters()]
    conv_idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16
    assert names[:-6] == [f"features.{i}.{k}" for i in conv_idx for k in ("weight", "bias")]


def test_small_inputs_and_fc1_size():
    m = vgg("A", num_classes=10, input_size=32)
    assert m.classifier[0].in_features == 512
    m64 = vgg("A", num_classes=10, input_size=64, fc_width=16)
    assert m64.classifier[0].in_features == 512 * 4
    x = np.zeros((2, 3, 32, 32), np.float32)
    assert m(Tensor(x)).shape == (2, 10)


def test_bad_inputs_and_configs():
    with pytest.raises(ValueError, match="valid ones are A, A-LRN, B, C, D, E"):
        vgg("F")
    with pytest.raises(ValueError, match="at least 32"):
        vgg("A", input_size=16)
    m = vgg("A", num_classes=10, input_size=32, fc_width=8, width_mult=0.125)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, 32, 32\), got "
                                         r"\(2, 3, 28, 28\)"):
        m(Tensor(np.zeros((2, 3, 28, 28), np.float32)))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        m(Tensor(np.zeros((2, 1, 32, 32), np.float32)))
    with pytest.raises(ValueError, match="unknown init"):
        vgg("A", num_classes=10, input_size=32, init="uniform")


def test_initialisation_schemes():
    m = vgg("A", num_classes=10, input_size=32, init="gauss", init_std=0.01, seed=1)
    w = m.features[0].weight.data
    assert abs(w.std() - 0.01) < 0.002 and abs(w.mean()) < 0.002
    assert all(np.all(mod.bias.data == 0) for _, mod in m.weight_layers())
    g = vgg("A", num_classes=10, input_size=32, init="glorot", seed=1)
    w = g.features[3].weight.data  # 64 -> 128, 3x3: fan_in 576, fan_out 1152
    bound = np.sqrt(6 / (576 + 1152))
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.9 * bound
    k = vgg("A", num_classes=10, input_size=32, init="kaiming", seed=1)
    assert abs(k.features[3].weight.data.std() - np.sqrt(2 / 576)) < 0.01 * np.sqrt(2 / 576) * 5
    same = vgg("A", num_classes=10, input_size=32, init="glorot", seed=1)
    np.testing.assert_array_equal(same.features[3].weight.data, g.features[3].weight.data)


@pytest.mark.parametrize("cfg", ["A-LRN", "C"])
def test_whole_small_vgg_gradcheck_float64(cfg):
    m = vgg(cfg, num_classes=3, input_size=32, fc_width=6, width_mult=1 / 16, init="kaiming",
            seed=0, dtype=np.float64)
    layers = [layer for _, layer in m.weight_layers()]

    def kinks(x, *ps):
        minivgg.manual_seed(1)  # the dropout masks of the loss below
        return vgg_kinks(m, x)

    def draw(rng):
        # Non-zero biases and an input redrawn until every pre-activation and
        # every pool window keeps its margin from the kinks (vgg_kinks).
        for layer in layers:
            layer.bias.data[...] = 0.1 * rng.standard_normal(layer.bias.shape)
        return (rng.standard_normal((2, 3, 32, 32)),)
    x0, = away_from_kinks(draw, kinks, KINK_MARGIN_STEPS * 1e-6)
    x = Tensor(x0, requires_grad=True)
    labels = np.array([0, 2])
    params = [p for _, p in m.named_parameters()]

    def loss(x, *ps):
        minivgg.manual_seed(1)  # the same dropout masks on every call
        return F.softmax_cross_entropy(m(x), labels)
    # 12 random elements per tensor keep this to a few seconds.
    assert gradcheck(loss, [x] + params, max_elements=12, seed=1, kinks=kinks) < 1e-5
    assert np.abs(m.features[0].weight.grad).max() > 0  # the signal reached the first layer


@pytest.mark.parametrize("cfg,size", [("A", 32), ("D", 32), ("A", 64)])
def test_vgg_matches_pytorch_forward_and_backward(cfg, size, monkeypatch):
    """float32, the CPU path's own choice of algorithms: the channel-major
    im2col for the first layer, Winograd F(4x4, 3x3) for A's layers with 256
    output pixels or more and F(2x2, 3x3) for its smaller 256- and
    512-channel ones;
    for D at 32, with Winograd kept to 512 channels and at least 2048 output pixels
    for F(4x4), the channels-last im2col on its 64- to 256-channel layers
    and F(2x2) on its 512-channel ones; at 32 the whole-map GEMM on the
    last block's 2x2 maps. (Inputs of 64
    and more for D, 96 for A, are left out: the early layers' float32
    gradients then differ from PyTorch's by up to 1e-2 whatever the
    algorithm, im2col included; in float64 they agree to 1e-14.)"""
    if cfg == "D":
        monkeypatch.setattr(select, "WINOGRAD_SIZES", ((512, 4, 2048, 2),))
    torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed")
    from minivgg.fast import channels_last, small_maps, winograd, winograd4
    from minivgg.testing import torch_vgg
    ran = []
    for mod, name in ((winograd, "conv3x3"), (winograd4, "conv3x3"), (channels_last, "conv"),
                      (small_maps, "conv")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _m=mod, _r=real, **k:
                            ran.append(_m.__name__) or _r(*a, **k))
    m = vgg(cfg, num_classes=10, input_size=size, fc_width=256, init="kaiming", seed=0)
    m.eval()
    tm = torch_vgg(m).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    labels = np.array([1, 5, 9])
    loss = F.softmax_cross_entropy(m(Tensor(x)), labels)
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(labels))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) <= 1e-4 * abs(tloss.item())
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        ref = tparams[name].grad.numpy()
        rel = np.abs(p.grad - ref).max() / np.abs(ref).max()
        assert rel <= 1e-4, f"{name}: relative error {rel:.2e}"
    # Logits with dropout off, batch of one.
    with minivgg.no_grad():
        y = m(Tensor(x[:1])).data
    ty = tm(torch.tensor(x[:1])).detach().numpy()
    assert np.abs(y - ty).max() <= 1e-4 * np.abs(ty).max()
    assert "minivgg.fast.winograd" in ran
    # F(4x4) from 256 output pixels in the batch: A's 16x16 maps and up (3 images)
    assert ("minivgg.fast.winograd4" in ran) == (cfg == "A")
    assert cfg != "D" or "minivgg.fast.channels_last" in ran
    assert ("minivgg.fast.small_maps" in ran) == (size == 32)     # the 2x2 maps


def test_torchvision_state_dict_loads_unchanged():
    pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed")
    from minivgg.testing import torch_vgg
    src = vgg("E", num_classes=10, input_size=32, fc_width=16, width_mult=0.25, seed=3)
    tm = torch_vgg(src)
    dst = vgg("E", num_classes=10, input_size=32, fc_width=16, width_mult=0.25, seed=4)
    dst.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    for (n, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_summary_lists_every_layer_and_the_total():
    m = vgg("A", num_classes=1000, init=None)
    s = m.summary()
    assert "132,863,336" in s and "features.0 Conv2d" in s and "(512, 7, 7)" in s


def test_fully_conv_shares_weights_and_matches_at_training_size():
    m = vgg("A", num_classes=5, input_size=32, fc_width=8, width_mult=0.25, init="kaiming",
            seed=0, dtype=np.float64).eval()
    dense = m.to_fully_conv()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    with minivgg.no_grad():
        np.testing.assert_allclose(dense(Tensor(x)).data[:, :, 0, 0], m(Tensor(x)).data,
                                   rtol=1e-10, atol=1e-12)
        assert dense(Tensor(np.zeros((1, 3, 64, 96)))).shape == (1, 5, 2, 3)
    assert dense.classifier[0].weight is m.classifier[0].weight
    assert [n for n, _ in dense.named_parameters()] == [n for n, _ in m.named_parameters()]
    with pytest.raises(ValueError, match="at least 32x32"):
        dense(Tensor(np.zeros((1, 3, 16, 40))))


def test_fc_bias_option_sets_only_fc1_and_fc2():
    m = vgg("A", num_classes=5, input_size=32, fc_width=8, width_mult=0.125, fc_bias=0.1, seed=0)
    assert np.all(m.classifier[0].bias.data == np.float32(0.1))
    assert np.all(m.classifier[3].bias.data == np.float32(0.1))
    assert np.all(m.classifier[6].bias.data == 0)
    assert all(np.all(c.bias.data == 0) for c in m.features if isinstance(c, Conv2d))
    default = vgg("A", num_classes=5, input_size=32, fc_width=8, width_mult=0.125, seed=0)
    assert np.all(default.classifier[0].bias.data == 0)  # the paper: zero biases
