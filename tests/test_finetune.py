"""Fine-tuning pretrained weights (§3.1's initialisation from trained layers,
applied to torchvision's weights): a torchvision state dict written by PyTorch
from torch.nn layers, fine-tuned on a generated 3-class image folder, then
evaluated and classified with no setting repeated; the preprocessing the
weights need, used for training and recorded; --freeze features; best.npz
without the optimizer; one warning per unreadable image per run."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from minivgg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minivgg.cli import classify as classify_cli
from minivgg.cli import evaluate as evaluate_cli
from minivgg.cli import train as train_cli
from minivgg.data import ImageFolder, compute_mean_rgb
from minivgg.data.transforms import CenterCrop, RescaleShorter
from minivgg.models import vgg
from minivgg.train import Recipe, Trainer, init_from_checkpoint

from conftest import torch_or_skip

#: torchvision's vgg11 (configuration A) at 1/16 of its widths and FC 64:
#: conv channels, "M" a 2x2 max-pooling; 64x64 crops leave a 2x2 pool5.
TV_A = [4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]
CLASSES = ["blue", "green", "red"]
COLOURS = {"blue": (40, 40, 200), "green": (40, 200, 40), "red": (200, 40, 40)}
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406])
TORCHVISION_STD = np.array([0.229, 0.224, 0.225])


def torchvision_pth(path, torch, classes=1000):
    """A torchvision-format VGG-A state dict made with torch.nn and torch.save."""
    torch.manual_seed(0)
    layers, c = [], 3
    for v in TV_A:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU(True)]
            c = v
    features = torch.nn.Sequential(*layers)
    classifier = torch.nn.Sequential(
        torch.nn.Linear(32 * 2 * 2, 64), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(64, 64), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(64, classes))
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state.update({f"classifier.{k}": v for k, v in classifier.state_dict().items()})
    torch.save(state, str(path))
    return path, {k: v.numpy().copy() for k, v in state.items()}


def photo_folder(root, train=8, val=3, side=(90, 120), bad=True):
    """root/{train,val}/{blue,green,red}/*.jpg, plus (``bad``) one file that is
    no image and one truncated JPEG in train/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for name, colour in COLOURS.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.normal(0, 30, side + (3,)) + colour
                Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(d / f"{i}.jpg")
    if bad:
        (root / "train" / "red" / "corrupt.jpg").write_bytes(b"not an image at all")
        whole = (root / "train" / "green" / "0.jpg").read_bytes()
        (root / "train" / "green" / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
    return root


@pytest.fixture
def pth(tmp_path):
    torch = torch_or_skip()
    return torchvision_pth(tmp_path / "vgg11.pth", torch)


def test_torchvision_weights_fine_tuned_then_evaluated_and_classified_with_no_setting_repeated(
        tmp_path, pth, capsys):
    path, _ = pth
    root = photo_folder(tmp_path / "photos")
    out = tmp_path / "ft"
    capsys.readouterr()
    assert train_cli.main(["--init-from", str(path), "--data", f"imagefolder:{root}",
                           "--epochs", "2", "--batch-size", "8", "--no-progress",
                           "--out", str(out)]) == 0
    cap = capsys.readouterr()
    # The model settings come from the file, each decision in one line.
    assert (f"model settings from {path} (torchvision names, .pth, 1000 classes): --cfg A "
            f"--width-mult 0.0625 --fc-width 64 --crop 64 --scale 96") in cap.out
    assert "fc8 (classifier.6.weight, classifier.6.bias) re-initialised (kaiming): the " \
           "weights have 1000 classes, this data set 3" in cap.out
    assert ("preprocessing: torchvision: RGB, [0, 1] pixel units, minus [0.485, 0.456, 0.406], "
            "divided by [0.229, 0.224, 0.225] (the convention of torchvision's") in cap.out
    assert "top-3 err" in cap.out and "top-5" not in cap.out  # 3 classes
    # Each unreadable image: one line in the whole run (mean, two epochs).
    for bad in ("corrupt.jpg", "truncated.jpg"):
        assert cap.err.count(bad) == 1, cap.err
    last, best = load_checkpoint(out / "last.npz"), load_checkpoint(out / "best.npz")
    assert last.meta["classes"] == CLASSES
    assert last.meta["preprocess"] == {"preset": "torchvision", "channels": "RGB",
                                       "scale": 1 / 255, "mean": list(TORCHVISION_MEAN),
                                       "std": list(TORCHVISION_STD)}
    assert last.optimizer_state is not None and best.optimizer_state is None

    # Evaluation: data set, preprocessing and test scales from the checkpoint,
    # exactly what giving them all explicitly does.
    rep = evaluate_cli.main(["--checkpoint", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert f"data: imagefolder:{root} ({root / 'val'}), 9 images (recorded in" in text
    assert "preprocess torchvision (from the file)" in text and "top-3 err (%)" in text
    assert rep.rows[0].scales == "64,96,128" and rep.classes == CLASSES
    explicit = evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--no-progress",
                                  "--data", f"imagefolder:{root}", "--preset", "torchvision",
                                  "--scales", "64,96,128"])
    np.testing.assert_array_equal(rep.posteriors[0], explicit.posteriors[0])
    other = evaluate_cli.main(["--checkpoint", str(out), "--no-progress", "--preset", "caffe"])
    assert not np.allclose(other.posteriors[0], rep.posteriors[0])  # the preset matters

    # Classification: the same defaults; the unreadable file is skipped, not fatal.
    img, corrupt = root / "val" / "red" / "0.jpg", root / "train" / "red" / "corrupt.jpg"
    capsys.readouterr()
    results, skipped = classify_cli.run([str(img), str(corrupt), "--weights",
                                         str(out / "best.npz")])
    cap = capsys.readouterr()
    assert skipped == [str(corrupt)] and cap.err.count("corrupt.jpg") == 2  # warning, summary
    assert "test scales Q = 64,96,128" in cap.out and "preprocess torchvision" in cap.out
    [(_, top)] = results
    assert sorted(name for name, _ in top) == CLASSES
    same, _ = classify_cli.run([str(img), "--weights", str(out / "best.npz"), "--preset",
                                "torchvision", "--scales", "64,96,128", "--classes",
                                str(root / "train")])
    assert results == same
    assert classify_cli.console([str(img), str(corrupt), "--weights", str(out)]) == 1
    assert classify_cli.console([str(img), "--weights", str(out)]) == 0


def folder_recipe(tmp_path, path, root, **kw):
    base = dict(cfg="A", data=f"imagefolder:{root}", crop=64, scale="96", width_mult=0.0625,
                fc_width=64, batch_size=8, epochs=1, init_from=str(path),
                out=str(tmp_path / "run"), progress=False, threads=1)
    base.update(kw)
    return Recipe(**base)


def test_fine_tuning_copies_all_but_fc8_and_trains_on_the_weights_preprocessing(tmp_path, pth):
    path, state = pth
    root = photo_folder(tmp_path / "photos", bad=False)
    r = folder_recipe(tmp_path, path, root)
    lines = []
    t = Trainer(r, log=lines.append)
    t._setup()
    fresh = vgg("A", num_classes=3, fc_width=64, input_size=64, width_mult=0.0625,
                dropout=r.dropout, init=r.init, init_std=r.init_std, seed=r.seed,
                fc_bias=r.fc_bias).state_dict()
    for k, v in t.model.state_dict().items():
        if k.startswith("classifier.6."):  # 3 classes, not 1000: a new last layer
            np.testing.assert_array_equal(v, fresh[k], err_msg=k)
        else:
            np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert len(t.copied) == 20
    # What the network sees: torchvision's normalisation of the §3.1 crop.
    x, y = next(iter(t.val_loader))
    img, label = t.val_ds[0]
    crop = CenterCrop(64)(RescaleShorter(96)(img)).astype(np.float64) / 255
    want = ((crop - TORCHVISION_MEAN) / TORCHVISION_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0], want, rtol=1e-5, atol=1e-5)
    assert y[0] == label
    np.testing.assert_allclose(t.mean_rgb, TORCHVISION_MEAN)
    assert not os.path.exists(tmp_path / "run" / "mean_rgb.json")  # no mean computed


def test_an_explicit_preprocessing_setting_wins_and_is_stated(tmp_path, pth, capsys):
    path, _ = pth
    root = photo_folder(tmp_path / "photos", bad=False)
    common = ["--init-from", str(path), "--data", f"imagefolder:{root}", "--epochs", "1",
              "--max-steps", "1", "--batch-size", "8", "--no-progress"]
    capsys.readouterr()
    assert train_cli.main(common + ["--preset", "minivgg", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert (f"(--preset minivgg: the mean RGB of this training set, --pixel-scale 1); the "
            f"weights in {path} were trained with torchvision") in out
    ck = load_checkpoint(tmp_path / "m" / "last.npz")
    mean = compute_mean_rgb(ImageFolder(root / "train"), progress=False)
    np.testing.assert_allclose(ck.meta["mean_rgb"], mean)
    assert ck.meta["preprocess"]["preset"] == "minivgg" and ck.meta["preprocess"]["std"] == [1] * 3
    # --pixel-scale alone selects the minivgg preset, in those units.
    assert train_cli.main(common + ["--pixel-scale", "255", "--out", str(tmp_path / "p")]) == 0
    pre = load_checkpoint(tmp_path / "p" / "last.npz").meta["preprocess"]
    assert pre["preset"] == "minivgg" and pre["scale"] == 1.0
    np.testing.assert_allclose(pre["mean"], 255 * mean)
    # ... and contradicts another preset.
    capsys.readouterr()
    assert train_cli.main(common + ["--pixel-scale", "255", "--preset", "torchvision",
                                    "--out", str(tmp_path / "q")]) == 2
    assert "--pixel-scale 255 sets the units of the minivgg preset, and --preset torchvision " \
           "has its own" in capsys.readouterr().err
    # A profile's default pixel scale is not an explicit setting: the weights' preset stays.
    assert train_cli.main(common + ["--profile", "paper", "--micro-batch", "0",
                                    "--out", str(tmp_path / "paper")]) == 0
    out = capsys.readouterr().out
    assert "preprocessing: torchvision" in out
    assert "--pixel-scale 255 (a default of this profile) does not apply to it" in out
    # Model flags given on the command line win over the file's.
    assert train_cli.main(common + ["--scale", "80", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "--crop 64 --scale" not in out and "--crop 64;" in out
    assert load_checkpoint(tmp_path / "s" / "last.npz").meta["train"]["scale"] == 80


def test_deeper_configuration_from_a_checkpoint_of_other_classes_keeps_the_paper_mapping(
        tmp_path):
    kw = dict(input_size=32, fc_width=16, width_mult=0.25)
    a = vgg("A", num_classes=10, seed=1, **kw)
    path = save_checkpoint(tmp_path / "a.npz", a, {"classes": list("0123456789")})
    d = vgg("D", num_classes=3, seed=2, **kw)
    before = d.state_dict()
    copied = init_from_checkpoint(d, path)
    # §3.1's seven layers but fc8, whose 10 outputs do not fit 3 classes.
    expected = ["features.0", "features.5", "features.10", "features.12", "classifier.0",
                "classifier.3"]
    assert copied == [f"{m}.{p}" for m in expected for p in ("weight", "bias")]
    for k in ("classifier.6.weight", "classifier.6.bias", "features.2.weight"):
        np.testing.assert_array_equal(d.state_dict()[k], before[k])
    np.testing.assert_array_equal(d.state_dict()["features.12.weight"],
                                  a.state_dict()["features.8.weight"])


def tiny(out, **kw):
    base = dict(cfg="A", data="synthetic", image_size=32, train_size=24, val_size=10, crop=32,
                scale="32:36", batch_size=8, epochs=1, width_mult=0.125, fc_width=16, lr=0.05,
                out=str(out), progress=False, seed=3, threads=1)
    base.update(kw)
    return Recipe(**base)


def test_freeze_features_trains_the_classifier_only_and_resumes(tmp_path):
    start = vgg("A", num_classes=10, fc_width=16, input_size=32, width_mult=0.125,
                init="kaiming", seed=3, fc_bias=0.1).state_dict()
    t = Trainer(tiny(tmp_path / "f", freeze="features"), log=lambda *_: None)
    t.run()
    assert len(t.optimizer.params) == 6  # fc6-fc8 weights and biases
    for name, p in t.model.named_parameters():
        if name.startswith("features."):
            np.testing.assert_array_equal(p.data, start[name], err_msg=name)
            assert p.grad is None, name  # backward stopped at fc6
        else:
            assert not np.array_equal(p.data, start[name]), name
    resumed = Trainer(tiny(tmp_path / "f", freeze="features", epochs=2),
                      resume=str(tmp_path / "f"), log=lambda *_: None)
    resumed.run()
    for name, p in resumed.model.named_parameters():
        if name.startswith("features."):
            np.testing.assert_array_equal(p.data, start[name], err_msg=name)
    with pytest.raises(ValueError, match="unknown --freeze 'conv'"):
        Trainer(tiny(tmp_path / "g", freeze="conv"))


def test_best_checkpoint_keeps_the_model_not_the_optimizer_unless_asked(tmp_path):
    t = Trainer(tiny(tmp_path / "r"), log=lambda *_: None)
    t.run()
    best, last = tmp_path / "r" / "best.npz", tmp_path / "r" / "last.npz"
    with np.load(best) as z:
        assert not [k for k in z.files if k.startswith("optim/")]
    with np.load(last) as z:
        assert [k for k in z.files if k.startswith("optim/")]
    assert os.path.getsize(best) < 0.6 * os.path.getsize(last)
    b = load_checkpoint(best)
    assert b.meta["best"]["epoch"] == 1 and b.meta["preprocess"]["preset"] == "minivgg"
    for k, v in load_checkpoint(last).model_state.items():  # one epoch: best is last
        np.testing.assert_array_equal(b.model_state[k], v)
    with pytest.raises(CheckpointError, match=r"without the optimizer's state .* --resume "):
        Trainer(tiny(tmp_path / "r", epochs=2), resume=str(best))
    t = Trainer(tiny(tmp_path / "o", best_with_optimizer=True), log=lambda *_: None)
    t.run()
    assert load_checkpoint(tmp_path / "o" / "best.npz").optimizer_state is not None


def test_a_photo_folder_at_the_default_crop_gets_a_hint(tmp_path):
    root = photo_folder(tmp_path / "photos", train=2, val=1, side=(150, 200), bad=False)
    lines = []
    r = tiny(tmp_path / "h", data=f"imagefolder:{root}", train_size=0, max_steps=1)
    Trainer(r, log=lines.append).run()
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(hints) == 1 and "shorter sides of about 150 pixels" in hints[0]
    assert "--crop 224 --scale 256" in hints[0]
    small = photo_folder(tmp_path / "small", train=2, val=1, side=(36, 40), bad=False)
    lines = []
    r = tiny(tmp_path / "s", data=f"imagefolder:{small}", train_size=0, max_steps=1)
    Trainer(r, log=lines.append).run()
    assert not [line for line in lines if line.startswith("hint:")]


def test_the_loader_warns_once_per_unreadable_file_over_epochs(tmp_path):
    import warnings

    from minivgg.data import DataLoader, eval_transform
    root = photo_folder(tmp_path / "photos", train=2, val=1, bad=True)
    ds = ImageFolder(root / "train")
    loader = DataLoader(ds, 4, eval_transform(32, 36, [0.5] * 3), shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(3):
            loader.set_epoch(epoch)
            assert sum(len(y) for _, y in loader) == 6
            assert len(loader.skipped) == 2  # counted in every pass
    texts = [str(w.message) for w in caught if "skipping corrupt image" in str(w.message)]
    assert len(texts) == 2 and sum("corrupt.jpg" in t for t in texts) == 1
    seen = []
    loader = DataLoader(ds, 4, eval_transform(32, 36, [0.5] * 3), shuffle=False,
                        on_skip=lambda desc, msg: seen.append(desc))
    list(loader)
    assert sorted(os.path.basename(s) for s in seen) == ["corrupt.jpg", "truncated.jpg"]


def test_recipe_json_and_resume_keep_the_recorded_preprocessing(tmp_path, pth):
    path, _ = pth
    root = photo_folder(tmp_path / "photos", bad=False)
    r = folder_recipe(tmp_path, path, root, max_steps=2, batch_size=4)
    Trainer(r, log=lambda *_: None).run()
    recorded = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert recorded["preset"] == "auto" and recorded["preprocess"]["preset"] == "torchvision"
    assert recorded["preprocess"]["std"] == list(TORCHVISION_STD)
    os.rename(path, tmp_path / "moved.pth")  # resuming does not read the weights again
    lines = []
    resumed = Trainer(folder_recipe(tmp_path, path, root, batch_size=4),
                      resume=str(tmp_path / "run"), log=lines.append)
    resumed.run()
    assert resumed.preprocess.name == "torchvision"
    assert any(line.startswith("preprocessing: torchvision") and "(as " in line
               for line in lines)


def test_a_later_stage_keeps_the_mean_and_pixel_units_of_the_checkpoint_it_starts_from(tmp_path):
    first = Trainer(tiny(tmp_path / "a", pixel_scale=255.0, lr=1e-5, max_steps=1),
                    log=lambda *_: None)
    first.run()
    lines = []
    second = Trainer(tiny(tmp_path / "b", cfg="B", init_from=str(tmp_path / "a"), lr=1e-5,
                          scale="36"), log=lines.append)  # pixel_scale: the default 1
    second._setup()
    x, _ = next(iter(second.val_loader))
    img, _ = second.val_ds[0]
    crop = CenterCrop(32)(RescaleShorter(36)(img)).astype(np.float64) / 255
    want = (255 * (crop - first.mean_rgb)).transpose(2, 0, 1)  # the first stage's 0-255 units
    np.testing.assert_allclose(x[0], want, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(second.mean_rgb, first.mean_rgb)
    assert "its --pixel-scale 255 replaces this run's default 1" in second.preprocess_origin


def test_freeze_features_on_the_emulated_gpu_matches_the_cpu(tmp_path, emu):
    runs = {}
    for dev in ("cpu", "emu"):
        t = Trainer(tiny(tmp_path / dev, freeze="features", device=dev, dropout=0.0),
                    log=lambda *_: None)
        t.run()
        runs[dev] = {k: np.asarray(v) for k, v in t.model.state_dict().items()}
    for k, v in runs["cpu"].items():
        scale = max(np.abs(v).max(), 1e-6)
        np.testing.assert_allclose(runs["emu"][k], v, rtol=1e-3, atol=1e-4 * scale, err_msg=k)
