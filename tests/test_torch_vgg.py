"""Whole networks against PyTorch: every configuration of Table 1 (A, A-LRN,
B, C, D, E) at input 64, where FC1 is a real 2x2 convolution, forward and
every gradient; the dense network (§3.2) against a fully-convolutional
PyTorch net built from the same weights, on images larger than the crop.

The PyTorch networks are built here from Table 1 written out again, with
torch.nn alone (no torchvision, no minivgg.testing), so a mistake in
minivgg's configuration table or its PyTorch twin cannot hide itself."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import functional as F
from minivgg.gradcheck import away_from_kinks, vgg_kinks
from minivgg.models import vgg

torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                                            "pip install torch==2.13.0")
nn = torch.nn

# Table 1, column by column. "LRN": AlexNet's local response normalisation;
# "1x1": configuration C's 1x1 convolution; "M": 2x2 max-pool, stride 2.
TABLE1 = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, ("1x1", 256), "M",
          512, 512, ("1x1", 512), "M", 512, 512, ("1x1", 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
WIDTH = 1 / 16      # 4, 8, 16, 32, 32 channels
CLASSES, FC = 5, 12


def torch_features(cfg):
    layers, c = [], 3
    for item in TABLE1[cfg]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "LRN":
            # PyTorch divides alpha by the window size; the paper's alpha is on the sum.
            layers.append(nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0))
        else:
            k, ch = (1, item[1]) if isinstance(item, tuple) else (3, item)
            ch = int(ch * WIDTH)
            layers += [nn.Conv2d(c, ch, k, padding=k // 2), nn.ReLU()]
            c = ch
    return nn.Sequential(*layers), c


def torch_vgg(cfg, input_size):
    features, c = torch_features(cfg)
    s = input_size // 32

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.classifier = nn.Sequential(
                nn.Linear(c * s * s, FC), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(FC, FC), nn.ReLU(), nn.Dropout(0.5), nn.Linear(FC, CLASSES))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))
    return Net().double(), c, s


def torch_dense(net, c, s):
    """FC1 -> s x s conv, FC2 and FC3 -> 1x1 convs, from the Linear weights by view()."""
    convs = []
    for lin, (cin, k) in zip([net.classifier[i] for i in (0, 3, 6)], [(c, s), (FC, 1), (FC, 1)]):
        conv = nn.Conv2d(cin, lin.out_features, k).double()
        with torch.no_grad():
            conv.weight.copy_(lin.weight.view(lin.out_features, cin, k, k))
            conv.bias.copy_(lin.bias)
        convs.append(conv)
    return nn.Sequential(net.features, convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2]).eval()


def pair(cfg, input_size=64, seed=0):
    m = vgg(cfg, num_classes=CLASSES, input_size=input_size, fc_width=FC, width_mult=WIDTH,
            init="kaiming", seed=seed, dtype=np.float64, fc_bias=0.1).eval()
    net, c, s = torch_vgg(cfg, input_size)
    net.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()}, strict=True)
    return m, net.eval(), c, s


def close(ours, theirs, what, rel=1e-9):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    scale = max(np.abs(theirs).max(), 1e-30)
    err = np.abs(ours - theirs).max() / scale
    assert err <= rel, f"{what}: relative error {err:.2e}"


@pytest.mark.parametrize("cfg", list(TABLE1))
def test_whole_network_matches_pytorch_at_64(cfg):
    m, net, _, _ = pair(cfg, seed=1)
    g = np.random.default_rng(2)
    # Large inputs so that A-LRN's normalisation term is far from negligible.
    x = g.standard_normal((2, 3, 64, 64)) * 30
    labels = np.array([1, 4])
    xt = Tensor(x.copy(), requires_grad=True)
    loss = F.softmax_cross_entropy(m(xt), labels)
    loss.backward()
    txt = torch.tensor(x, requires_grad=True)
    tloss = nn.functional.cross_entropy(net(txt), torch.tensor(labels))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
    tparams = dict(net.named_parameters())
    assert [n for n, _ in m.named_parameters()] == list(tparams)
    for name, p in m.named_parameters():
        close(p.grad, tparams[name].grad, name)
    close(xt.grad, txt.grad, "input")
    with minivgg.no_grad():
        close(m(Tensor(x[:1])).data, net(torch.tensor(x[:1])), "logits, batch 1")


@pytest.mark.parametrize("cfg", list(TABLE1))
def test_dense_score_map_matches_a_pytorch_fully_convolutional_net(cfg):
    m, net, c, s = pair(cfg, seed=3)
    tdense = torch_dense(net, c, s)
    dense = m.to_fully_conv()
    g = np.random.default_rng(4)
    x = g.standard_normal((2, 3, 64, 128)) * 30
    xt = Tensor(x.copy(), requires_grad=True)
    out = dense(xt)
    txt = torch.tensor(x, requires_grad=True)
    tout = tdense(txt)
    assert out.shape == tuple(tout.shape) == (2, CLASSES, 1, 3)
    close(out.data, tout, "score map")
    up = g.standard_normal(out.shape)
    out.backward(up)
    tout.backward(torch.tensor(up))
    close(xt.grad, txt.grad, "input gradient")
    tparams = dict(net.features.named_parameters())
    for name, p in m.features.named_parameters():
        close(p.grad, tparams[name].grad, f"features.{name}")
    tconvs = [mod for mod in tdense if isinstance(mod, nn.Conv2d)][-3:]
    for i, conv in zip((0, 3, 6), tconvs):
        fc = m.classifier[i]
        close(fc.weight.grad, conv.weight.grad.reshape(fc.weight.shape), f"classifier.{i}.weight")
        close(fc.bias.grad, conv.bias.grad, f"classifier.{i}.bias")
    # On an image of exactly the training size the map is 1x1 and equals the classifier.
    x64 = g.standard_normal((1, 3, 64, 64)) * 30
    with minivgg.no_grad():
        close(dense(Tensor(x64)).data[:, :, 0, 0], net(torch.tensor(x64)), "64x64 map")


def test_dense_at_224_matches_pytorch():
    m, net, c, s = pair("A", input_size=224, seed=5)
    assert s == 7
    tdense = torch_dense(net, c, s)
    x = np.random.default_rng(6).standard_normal((1, 3, 256, 288))
    with minivgg.no_grad():
        out = m.to_fully_conv()(Tensor(x)).data
    assert out.shape == (1, CLASSES, 2, 3)
    close(out, tdense(torch.tensor(x)), "score map at Q=256")
    x224 = torch.tensor(x[:, :, :224, :224].copy())
    with minivgg.no_grad():
        close(m(Tensor(x224.numpy())).data, net(x224), "logits at 224")


def test_float32_network_matches_pytorch():
    m, net, _, _ = pair("C", seed=7)
    m32 = vgg("C", num_classes=CLASSES, input_size=64, fc_width=FC, width_mult=WIDTH,
              init=None).eval()
    m32.load_state_dict(m.state_dict())
    net = net.float()
    # In float32 the two frameworks round differently at about 1e-7 of each
    # value: an input whose pre-activations or pool windows come closer than
    # that to a kink could send a gradient down different branches. Drawn
    # 1e-5 away from every kink (of the float64 twin), both take the same ones.
    x, = away_from_kinks(lambda r: (r.standard_normal((2, 3, 64, 64)).astype(np.float32),),
                         lambda a: vgg_kinks(m, a.astype(np.float64)), 1e-5, seed=8)
    loss = F.softmax_cross_entropy(m32(Tensor(x)), np.array([0, 3]))
    loss.backward()
    tloss = nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor([0, 3]))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
    tparams = dict(net.named_parameters())
    for name, p in m32.named_parameters():
        close(p.grad, tparams[name].grad, name, rel=1e-4)
