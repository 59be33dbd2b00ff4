"""Preprocessing presets (§2.1 mean subtraction, torchvision's and Caffe's
conventions) and the ImageNet-1k class names."""
import numpy as np
import pytest

from minivgg import evaluate as ev
from minivgg.checkpoint import load_checkpoint, save_checkpoint
from minivgg.data import SubtractMean, ToCHW, ToFloat
from minivgg.data.classes import imagenet_classes, read_class_names
from minivgg.data.preprocess import PRESETS, Preprocess, from_meta, preset
from minivgg.models import vgg


def image(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_minivgg_preset_is_the_training_normalisation_bit_for_bit():
    img, mean = image(), [0.45, 0.5, 0.55]
    want = ToCHW()(SubtractMean(mean)(ToFloat()(img)))
    got = preset("minivgg", mean)(img)
    assert got.dtype == np.float32 and got.shape == (3, 5, 7) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ev.normalise(img, mean), want)  # the protocols' default


def test_torchvision_and_caffe_presets():
    img = image()
    tv = preset("torchvision")(img)
    want = (img / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(tv, want.transpose(2, 0, 1), atol=1e-6)
    caffe = preset("caffe")(img)  # BGR, 0-255, minus the mean pixel
    np.testing.assert_allclose(caffe[0], img[..., 2] - 103.939, atol=1e-4)
    np.testing.assert_allclose(caffe[2], img[..., 0] - 123.68, atol=1e-4)
    np.testing.assert_allclose(preset("caffe").mean_rgb, [123.68 / 255, 116.779 / 255,
                                                          103.939 / 255])
    for name in PRESETS:
        p = preset(name, [0.1, 0.2, 0.3] if name == "minivgg" else None)
        assert from_meta(p.to_meta()) == p


def test_bad_presets_name_the_value():
    with pytest.raises(ValueError, match="unknown preprocessing preset 'imagenet'; expected one "
                                         "of minivgg, torchvision, caffe"):
        preset("imagenet")
    with pytest.raises(ValueError, match="pass mean_rgb"):
        preset("minivgg")
    with pytest.raises(ValueError, match=r"in \[0, 1\] units, got \[120.0, 0.5, 0.5\]"):
        preset("minivgg", [120, 0.5, 0.5])
    with pytest.raises(ValueError, match="fixed constants"):
        preset("caffe", [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="channels must be 'RGB' or 'BGR', got 'GBR'"):
        Preprocess("x", [0, 0, 0], channels="GBR")
    with pytest.raises(ValueError, match="checkpoint x: preprocess lacks 'std'"):
        from_meta({"preset": "x", "mean": [0, 0, 0], "scale": 1, "channels": "RGB"},
                  "checkpoint x")
    with pytest.raises(ValueError, match=r"expected shape \(H, W, 3\)"):
        preset("torchvision")(np.zeros((3, 4, 4), np.uint8))


def test_checkpoints_store_the_preset_and_evaluation_applies_it(tmp_path):
    m = vgg("A", num_classes=3, input_size=32, fc_width=8, width_mult=0.125, seed=0)
    path = save_checkpoint(tmp_path / "a.npz", m, {"mean_rgb": [0.4, 0.5, 0.6]})
    assert load_checkpoint(path).meta["preprocess"] == preset("minivgg", [.4, .5, .6]).to_meta()
    meta = {"mean_rgb": [0.4, 0.5, 0.6], "preprocess": preset("caffe").to_meta()}
    net = ev.EvalNet.from_checkpoint(save_checkpoint(tmp_path / "c.npz", m, meta))
    assert net.preprocess == preset("caffe")
    img = image(32, 32)
    x = preset("caffe")(img)[None]
    from minivgg import Tensor, no_grad
    from minivgg.functional.loss import softmax
    with no_grad():
        want = softmax(m.eval()(Tensor(x)).data.astype(np.float64), axis=1)[0]
    np.testing.assert_allclose(net.predict(img, "single", [32]), want, rtol=1e-6)
    assert ev.EvalNet.from_file(tmp_path / "c.npz", preset="torchvision").preprocess == \
        preset("torchvision")


def test_imagenet_class_names_and_class_name_files(tmp_path):
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    assert (names[207], names[281], names[409], names[948]) == (
        "golden retriever", "tabby", "analog clock", "Granny Smith")
    assert names.count("crane") == 2 and names.count("maillot") == 2
    (tmp_path / "names.txt").write_text("cat\n\ndog\n")
    assert read_class_names(tmp_path / "names.txt") == ["cat", "dog"]
    for c in ("zebra", "ant", ".hidden"):
        (tmp_path / "ds" / c).mkdir(parents=True)
    assert read_class_names(tmp_path / "ds") == ["ant", "zebra"]
    with pytest.raises(FileNotFoundError, match="class names file .*nope.txt' does not exist"):
        read_class_names(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="lists no class"):
        read_class_names(tmp_path / "empty.txt")
