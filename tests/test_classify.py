"""examples/classify.py: the top-5 classes of real-looking images under each test
protocol, class names from the file, ImageNet's or --classes, and bad requests
(exit status 2, a message naming the file or value, nothing written)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minivgg
from minivgg.checkpoint import save_checkpoint
from minivgg.data.classes import imagenet_classes
from minivgg.data.preprocess import preset
from minivgg.evaluate import rescale
from minivgg.functional.loss import softmax
from minivgg.models import vgg

from ranking import assert_top_k
from conftest import ROOT, load_example, photo, safetensors_or_skip


def tiny(classes=1000, seed=0):
    return vgg("D", num_classes=classes, input_size=32, fc_width=16, width_mult=0.125,
               init="kaiming", seed=seed)


@pytest.fixture
def files(tmp_path):
    """A torchvision-style weights file (no minivgg metadata) and two images."""
    st = safetensors_or_skip()
    model = tiny()
    st.save_file(model.state_dict(), str(tmp_path / "vgg.safetensors"))
    for name, (h, w, seed) in {"a.jpg": (40, 52, 1), "b.png": (36, 36, 2)}.items():
        Image.fromarray(photo(h, w, seed)).save(tmp_path / name)
    return model, tmp_path


def run(args):
    return load_example("classify").main([str(a) for a in args])


def test_single_crop_top5_is_the_softmax_of_the_centre_crop(files, capsys):
    model, d = files
    [(path, top)] = run([d / "a.jpg", "--weights", d / "vgg.safetensors", "--cfg", "D",
                         "--protocol", "single"])
    img = np.asarray(Image.open(d / "a.jpg").convert("RGB"))
    r = rescale(img, 37)  # torchvision's resize 256 / crop 224, scaled to the 32 crop
    y, x = (r.shape[0] - 32) // 2, (r.shape[1] - 32) // 2
    with minivgg.no_grad():
        z = model.eval()(minivgg.Tensor(preset("torchvision")(r[y:y + 32, x:x + 32])[None]))
    p = softmax(z.data.astype(np.float64), axis=1)[0]
    names = imagenet_classes()
    assert_top_k(p, top, rtol=1e-5, name=lambda i: names[i])
    out = capsys.readouterr().out
    assert "VGG-D, 32x32 crops, 1000 classes; preprocess torchvision (default for weights " \
           "without metadata)" in out
    assert "test scales Q = 37" in out and f"  1. {top[0][1]:7.4f}  {top[0][0]}" in out


@pytest.mark.parametrize("protocol", ["single", "dense", "multicrop", "dense+multicrop"])
def test_every_protocol_prints_five_imagenet_classes_per_image(files, capsys, protocol):
    _, d = files
    results = run([d / "a.jpg", d / "b.png", "--weights", d / "vgg.safetensors",
                   "--protocol", protocol])
    assert [os.path.basename(p) for p, _ in results] == ["a.jpg", "b.png"]
    names = set(imagenet_classes())
    for _, top in results:
        probs = [q for _, q in top]
        assert len(top) == 5 and all(n in names for n, _ in top)
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    if protocol != "single":
        assert "test scales Q = 37,55,73" in capsys.readouterr().out


def test_minivgg_checkpoint_names_its_classes_and_scales(tmp_path, capsys):
    classes = ["circle", "ring", "square"]
    meta = {"classes": classes, "mean_rgb": [0.5, 0.5, 0.5], "train": {"scale": [32, 48]}}
    path = save_checkpoint(tmp_path / "last.npz", tiny(classes=3), meta)
    Image.fromarray(photo(36, 36)).save(tmp_path / "x.png")
    [(_, top)] = run([tmp_path / "x.png", "--weights", path, "--protocol", "dense"])
    assert sorted(n for n, _ in top) == classes  # k is clipped to the 3 classes
    out = capsys.readouterr().out
    assert "preprocess minivgg (from the file)" in out
    assert "Q = 32,40,48" in out  # §4.2: {S_min, (S_min + S_max) / 2, S_max}


def test_classes_from_a_folder_or_a_file_and_numbered_otherwise(tmp_path):
    st = safetensors_or_skip()
    st.save_file(tiny(classes=3).state_dict(), str(tmp_path / "w.safetensors"))
    Image.fromarray(photo(40, 40)).save(tmp_path / "x.png")
    args = [tmp_path / "x.png", "--weights", tmp_path / "w.safetensors", "--protocol", "single"]
    [(_, top)] = run(args)
    assert sorted(n for n, _ in top) == ["class 0", "class 1", "class 2"]
    for c in ("cat", "dog", "emu"):
        (tmp_path / "data" / c).mkdir(parents=True)
    [(_, top)] = run(args + ["--classes", tmp_path / "data", "--topk", "2"])
    assert len(top) == 2 and {n for n, _ in top} <= {"cat", "dog", "emu"}


@pytest.mark.parametrize("extra, message", [
    (["--images", "nope.jpg"], "image '.*nope.jpg' does not exist"),
    (["--images", "notes.jpg"], r"'.*notes.jpg' is not a readable image \(cannot decode"),
    (["--weights", "missing.safetensors"], r"weights file '.*missing.safetensors' does not exist"),
    (["--weights", "cut.safetensors"], "truncated or corrupt"),
    (["--cfg", "E"], r"holds VGG-D \(13 convs .*\) weights, but configuration E was asked"),
    (["--classes", "{d}/two.txt"], "names 2 classes, but the model has 1000 outputs; "
                                   "expected 1000"),
    (["--scales", "16,40"], r"test scale\(s\) Q=\[16\] are smaller than the crop 32"),
    (["--topk", "0"], "--topk must be >= 1, got 0"),
    (["--protocol", "fancy"], "invalid choice: 'fancy'"),
])
def test_bad_requests_exit_2_naming_the_problem_and_write_nothing(files, capsys, extra, message):
    _, d = files
    (d / "notes.jpg").write_text("shopping list")
    (d / "two.txt").write_text("cat\ndog\n")
    data = (d / "vgg.safetensors").read_bytes()
    (d / "cut.safetensors").write_bytes(data[:len(data) // 2])
    before = sorted(os.listdir(d))
    args = {"--images": "a.jpg", "--weights": "vgg.safetensors"}
    rest = []
    for k, v in zip(extra[::2], extra[1::2]):
        if k in args:
            args[k] = v
        else:
            rest += [k, v.format(d=d)]
    with pytest.raises(SystemExit) as e:
        run([d / args["--images"], "--weights", d / args["--weights"]] + rest)
    assert e.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert sorted(os.listdir(d)) == before


def test_command_line_error_has_no_traceback(tmp_path):
    Image.fromarray(photo(32, 32)).save(tmp_path / "x.png")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "classify.py"),
                           str(tmp_path / "x.png"), "--weights", str(tmp_path / "w.pth")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "classify.py: error: weights file" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
