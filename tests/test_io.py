"""Weights in and out (minivgg.io): torchvision and timm VGGs as .pth, .safetensors
and .npz, the configuration read from the shapes, and bad files.

The torchvision VGG is built here with torch alone, by torchvision's module
names (features.{i}, avgpool, classifier.{0,3,6}), at 224x224 inputs as
torchvision runs it, with the channel widths divided by 8 and FC layers of 64
to keep the test fast.
"""
import os
import sys

import numpy as np
import pytest

import minivgg
from minivgg.checkpoint import load_checkpoint
from minivgg.data.preprocess import preset
from minivgg.io import WeightsError, load_model, load_weights, save_weights
from minivgg.models import CONFIGS, vgg

from conftest import photo, safetensors_or_skip, torch_or_skip

#: torchvision's configuration lists for vgg11 (A) and vgg16 (D).
TV_CFGS = {"A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
           "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"]}
DIV, FC, CLASSES = 8, 64, 1000


def torchvision_vgg(cfg, seed=0, batch_norm=False):
    """torchvision's VGG structure (features, avgpool 7x7, classifier), random weights."""
    torch = torch_or_skip()
    from torch import nn

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for v in TV_CFGS[cfg]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                    continue
                layers.append(nn.Conv2d(c, v // DIV, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v // DIV))
                layers.append(nn.ReLU(inplace=True))
                c = v // DIV
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(c * 49, FC), nn.ReLU(True), nn.Dropout(),
                nn.Linear(FC, FC), nn.ReLU(True), nn.Dropout(), nn.Linear(FC, CLASSES))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    torch.manual_seed(seed)
    return VGG().eval()


def timm_state_dict(sd):
    """A torchvision state dict renamed and reshaped as timm's VGG stores it."""
    out = {}
    for k, v in sd.items():
        if k.startswith("classifier.0."):
            k = k.replace("classifier.0", "pre_logits.fc1")
            v = v.reshape(v.shape[0], -1, 7, 7) if v.ndim == 2 else v
        elif k.startswith("classifier.3."):
            k = k.replace("classifier.3", "pre_logits.fc2")
            v = v.reshape(v.shape[0], v.shape[1], 1, 1) if v.ndim == 2 else v
        elif k.startswith("classifier.6."):
            k = k.replace("classifier.6", "head.fc")
        out[k] = v
    return out


def torch_input(img):
    """torchvision's ToTensor + Normalize(ImageNet mean, std), computed in torch."""
    torch = torch_or_skip()
    t = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (t - mean) / std


def logits(model, x):
    with minivgg.no_grad():
        return model.eval()(minivgg.Tensor(x)).data


def assert_same_logits(ours, ref):
    """float32 agreement: 1e-4 of the largest logit."""
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def small(cfg="D", classes=10, seed=0, **kw):
    kw = {"input_size": 32, "fc_width": 16, "width_mult": 0.125, **kw}
    return vgg(cfg, num_classes=classes, init="kaiming", seed=seed, **kw)


def same_params(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.state_dict().values(),
                                                    b.state_dict().values()))


# -- torchvision and timm files in --------------------------------------------------

@pytest.mark.parametrize("cfg", ["A", "D"])
def test_torchvision_pth_and_safetensors_give_identical_logits(tmp_path, cfg):
    torch = torch_or_skip()
    st_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    net = torchvision_vgg(cfg)
    sd = net.state_dict()
    torch.save(sd, tmp_path / "vgg.pth")
    st_torch.save_file(sd, str(tmp_path / "vgg.safetensors"), metadata={"format": "pt"})
    images = [photo(224, 224, seed=s) for s in range(3)]
    with torch.no_grad():
        ref = net(torch.stack([torch_input(im) for im in images])).numpy()
    for name in ("vgg.pth", "vgg.safetensors"):
        w = load_model(tmp_path / name, cfg=cfg)
        assert (w.model.cfg, w.model.num_classes, w.model.input_size) == (cfg, 1000, 224)
        assert (w.model.width_mult, w.model.fc_width, w.layout) == (1 / DIV, FC, "torchvision")
        assert w.preprocess == preset("torchvision") and w.preprocess_origin == "default"
        assert len(w.classes) == 1000 and w.classes[0] == "tench"  # ImageNet names for 1000 outputs
        x = np.stack([w.preprocess(im) for im in images])
        np.testing.assert_allclose(x, np.stack([torch_input(im).numpy() for im in images]),
                                   atol=2e-6)
        assert_same_logits(logits(w.model, x), ref)


def test_timm_names_and_conv_shaped_fc_layers_load(tmp_path):
    torch = torch_or_skip()
    st_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    net = torchvision_vgg("D", seed=3)
    st_torch.save_file(timm_state_dict(net.state_dict()), str(tmp_path / "timm.safetensors"))
    torch.save(timm_state_dict(net.state_dict()), tmp_path / "timm.pth")
    img = photo(224, 224, seed=7)
    with torch.no_grad():
        ref = net(torch_input(img)[None]).numpy()
    for name in ("timm.safetensors", "timm.pth"):
        w = load_model(tmp_path / name)
        assert w.layout == "timm" and w.model.cfg == "D"
        assert_same_logits(logits(w.model, w.preprocess(img)[None]), ref)


def test_safetensors_half_precision_and_state_dict_wrappers(tmp_path):
    torch = torch_or_skip()
    st_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    m = small("A")
    sd = {k: torch.from_numpy(v) for k, v in m.state_dict().items()}
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        path = str(tmp_path / f"{dtype}.safetensors".replace("torch.", ""))
        st_torch.save_file({k: v.to(dtype) for k, v in sd.items()}, path)
        got = load_model(path).model.state_dict()
        for k, v in sd.items():
            np.testing.assert_array_equal(got[k], v.to(dtype).float().numpy(), err_msg=k)
    # A training script's {"state_dict": ...} from DataParallel ("module." prefixes).
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
               tmp_path / "wrapped.pth")
    assert same_params(load_model(tmp_path / "wrapped.pth").model, m)


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_configuration_width_classes_and_crop_are_read_from_the_shapes(tmp_path, cfg):
    m = small(cfg, classes=7, input_size=64, width_mult=0.25)
    st = safetensors_or_skip()
    st.save_file(m.state_dict(), str(tmp_path / "w.safetensors"))  # shapes only, no metadata
    w = load_model(tmp_path / "w.safetensors")
    assert (w.model.cfg, w.model.num_classes, w.model.input_size, w.model.fc_width,
            w.model.width_mult) == (cfg, 7, 64, 16, 0.25)
    assert same_params(w.model, m) and w.classes is None
    # minivgg's metadata adds what the shapes cannot tell: a 72 crop (2x2 last map), width 0.3
    m = small(cfg, classes=7, input_size=72, width_mult=0.3)
    w = load_model(save_weights(m, tmp_path / "m.safetensors"))
    assert (w.model.input_size, w.model.width_mult) == (72, 0.3) and same_params(w.model, m)


# -- minivgg files out, and back into torch ------------------------------------------

def test_round_trip_minivgg_to_safetensors_and_pth_to_torchvision(tmp_path):
    torch = torch_or_skip()
    st_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    m = vgg("D", num_classes=CLASSES, input_size=224, fc_width=FC, width_mult=1 / DIV,
            init="kaiming", seed=5)
    save_weights(m, tmp_path / "d.safetensors", preprocess="torchvision")
    save_weights(m, tmp_path / "d.pth")
    save_weights(m, tmp_path / "timm.safetensors", layout="timm")
    img = photo(224, 224, seed=9)
    ours = logits(m, preset("torchvision")(img)[None])
    net = torchvision_vgg("D")
    for sd in (st_torch.load_file(str(tmp_path / "d.safetensors")),
               torch.load(tmp_path / "d.pth", weights_only=True)):
        net.load_state_dict(sd, strict=True)
        with torch.no_grad():
            assert_same_logits(ours, net(torch_input(img)[None]).numpy())
    timm_keys = set(st_torch.load_file(str(tmp_path / "timm.safetensors")))
    assert timm_keys == set(timm_state_dict(net.state_dict()))


def test_files_written_here_read_with_the_safetensors_package_and_back(tmp_path):
    st = safetensors_or_skip()
    m = small("C", classes=3)
    path = save_weights(m, tmp_path / "c.safetensors", preprocess=preset("minivgg", [.4, .5, .6]),
                        classes=["x", "y", "z"], train_scale=[32, 40])
    arrays = st.load_file(path)
    assert list(arrays) == sorted(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(arrays[k], v)
    w = load_model(path)
    assert w.classes == ["x", "y", "z"] and w.train_scale == [32, 40]
    assert w.preprocess == preset("minivgg", [.4, .5, .6]) and w.preprocess_origin == "file"
    st.save_file(arrays, str(tmp_path / "plain.safetensors"))  # no minivgg metadata
    assert same_params(load_model(tmp_path / "plain.safetensors").model, m)


def test_npz_checkpoints_and_plain_npz(tmp_path):
    m = small("B", classes=4)
    path = save_weights(m, tmp_path / "b.npz", preprocess="caffe", classes=list("abcd"),
                        train_scale=36)
    ck = load_checkpoint(path)
    assert ck.meta["preprocess"]["preset"] == "caffe" and ck.meta["train"]["scale"] == 36
    w = load_model(path)
    assert same_params(w.model, m) and w.preprocess == preset("caffe") and w.train_scale == 36
    np.savez(tmp_path / "plain.npz", **m.state_dict())
    assert same_params(load_model(tmp_path / "plain.npz").model, m)
    with pytest.raises(WeightsError, match="npz files are minivgg checkpoints"):
        save_weights(m, tmp_path / "t.npz", layout="timm")


def test_load_weights_fills_an_existing_model_and_asked_presets(tmp_path):
    safetensors_or_skip()
    src, dst = small("A", seed=1), small("A", seed=2)
    path = save_weights(src, tmp_path / "a.safetensors", preprocess="torchvision")
    w = load_weights(dst, path, preset="caffe")
    assert w.model is dst and same_params(dst, src)
    assert w.preprocess == preset("caffe") and w.preprocess_origin == "asked"


# -- bad files: a clear error naming the file, nothing half-loaded --------------------

def test_missing_file_unknown_extension_and_directory(tmp_path):
    with pytest.raises(WeightsError, match=r"'.*nope\.safetensors' does not exist"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"unknown extension '\.bin'; expected one of "
                                           r"\.safetensors, \.pth, \.pt, \.npz"):
        load_model(tmp_path / "w.bin")
    with pytest.raises(WeightsError, match="directory without last.npz"):
        load_model(tmp_path)


@pytest.mark.parametrize("cut", [4, 20, 0.5, -1])
def test_truncated_safetensors_is_refused_before_loading(tmp_path, cut):
    safetensors_or_skip()
    path = save_weights(small(), tmp_path / "w.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:cut if isinstance(cut, int) else int(len(data) * cut)])
    with pytest.raises(WeightsError, match=r"w\.safetensors' is not a valid safetensors file "
                                           r"or is truncated or corrupt"):
        load_model(path)


def _safetensors_bytes(header, data=b""):
    return len(header).to_bytes(8, "little") + header + data


def test_corrupt_safetensors_headers(tmp_path):
    path = tmp_path / "w.safetensors"
    entry = b'{"w": {"dtype": "%s", "shape": [%d], "data_offsets": [0, 4]}}'
    for blob, message in [
            (os.urandom(4096), "does not fit"),
            (_safetensors_bytes(b"{not json"), "header is not JSON"),
            (_safetensors_bytes(b"[]"), "not a JSON object"),
            (_safetensors_bytes(entry % (b"F32", 2), bytes(8)), "does not match its size"),
            (_safetensors_bytes(entry % (b"X9", 1), bytes(4)), "bad entry for 'w'"),
            (_safetensors_bytes(entry % (b"F32", 1), bytes(2)), "'w' ends at byte")]:
        path.write_bytes(blob)
        with pytest.raises(WeightsError, match=message):
            load_model(path)


def test_truncated_pth_and_pickles_that_are_not_state_dicts(tmp_path):
    torch = torch_or_skip()
    path = tmp_path / "w.pth"
    torch.save({k: torch.from_numpy(v) for k, v in small().state_dict().items()}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(WeightsError, match=r"w\.pth' is truncated, corrupt, or not a plain "
                                           r"PyTorch state dict"):
        load_model(path)
    marker = tmp_path / "marker"
    marker.write_text("still here")
    torch.save({"features.0.weight": _Evil(str(marker))}, path)
    with pytest.raises(WeightsError, match="not a plain PyTorch state dict"):
        load_model(path)
    assert marker.exists()  # weights_only=True: the pickle's code did not run
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        load_model(path)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.remove, (self.path,)


def test_pth_without_torch_points_to_safetensors(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    path.write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(WeightsError, match=r"PyTorch is not installed.*\.safetensors"):
        load_model(path)


def test_configuration_and_class_mismatches_leave_the_model_unchanged(tmp_path):
    safetensors_or_skip()
    path = save_weights(small("D", classes=10), tmp_path / "d.safetensors")
    with pytest.raises(WeightsError, match=r"d\.safetensors' holds VGG-D \(13 convs .*\) "
                                           r"weights, but configuration E was asked"):
        load_model(path, cfg="E")
    for model, message in [
            (small("E", seed=1), "configuration E was asked"),
            (small("D", classes=5, seed=1), "holds weights for 10 classes .* but 5 classes"),
            (small("D", seed=1, fc_width=32), r"classifier\.0\.weight: expected \(32, 64\), "
                                              r"got \(16, 64\)")]:
        before = model.state_dict()
        with pytest.raises(WeightsError, match=message):
            load_weights(model, path)
        assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_truncated_file_into_an_existing_model_changes_nothing(tmp_path):
    safetensors_or_skip()
    path = save_weights(small("D", seed=3), tmp_path / "d.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    model = small("D", seed=4)
    before = model.state_dict()
    with pytest.raises(WeightsError, match="truncated"):
        load_weights(model, path)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_batch_norm_and_unknown_layouts_list_the_unexpected_keys(tmp_path):
    torch = torch_or_skip()
    torch.save(torchvision_vgg("A", batch_norm=True).state_dict(), tmp_path / "bn.pth")
    with pytest.raises(WeightsError, match=r"batch-normalised VGG .* Unexpected keys: "
                                           r"features\.1\.weight, features\.1\.bias, "
                                           r"features\.1\.running_mean"):
        load_model(tmp_path / "bn.pth")
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)},
               tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match=r"not hold VGG weights in a known layout: its keys "
                                           r"are conv1\.weight, fc\.weight"):
        load_model(tmp_path / "resnet.pth")
    sd = {k: torch.from_numpy(v) for k, v in small().state_dict().items()}
    sd["features.0.scale"] = torch.ones(1)
    sd["classifier.7.weight"] = torch.ones(1)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"unexpected keys for a torchvision VGG: "
                                           r"features\.0\.scale, classifier\.7\.weight"):
        load_model(tmp_path / "extra.pth")
    sd = {k: v for k, v in sd.items() if k != "features.0.scale" and k != "classifier.7.weight"}
    sd["features.3.weight"] = torch.zeros(4, 8, 3, 3)  # a conv where D has none
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="match no configuration of Table 1"):
        load_model(tmp_path / "odd.pth")


def test_bad_saves_write_nothing(tmp_path, monkeypatch):
    st = safetensors_or_skip()
    m = small("A", classes=3)
    with pytest.raises(WeightsError, match="2 class names for a model with 3 outputs"):
        save_weights(m, tmp_path / "a.safetensors", classes=["x", "y"])
    with pytest.raises(WeightsError, match="unknown layout 'keras'"):
        save_weights(m, tmp_path / "a.safetensors", layout="keras")
    assert os.listdir(tmp_path) == []
    path = save_weights(m, tmp_path / "a.safetensors")
    before = open(path, "rb").read()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_weights(small("A", classes=3, seed=9), path)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["a.safetensors"]


def test_metadata_that_contradicts_the_arrays_is_corrupt(tmp_path):
    st = safetensors_or_skip()
    m = small("A", classes=3)
    meta = {"minivgg": '{"model": {"cfg": "B", "num_classes": 3, "fc_width": 16, '
                       '"input_size": 32}}'}
    st.save_file(m.state_dict(), str(tmp_path / "a.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="is corrupt: its metadata describes"):
        load_model(tmp_path / "a.safetensors")
    meta = {"minivgg": '{"classes": ["a", "b"]}'}
    st.save_file(m.state_dict(), str(tmp_path / "a.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="names 2 classes for a model with 3 outputs"):
        load_model(tmp_path / "a.safetensors")
