"""Tests of the test protocols (§3.2, §4): minivgg/evaluate/ and examples/evaluate_vgg.py."""
import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import evaluate as ev
from minivgg.checkpoint import save_checkpoint
from minivgg.data import CorruptImageError, SyntheticShapes
from minivgg.functional.loss import softmax
from minivgg.models import vgg

from conftest import load_example

MEAN = [0.5, 0.4, 0.3]


def tiny(cfg="A", seed=0, dtype=np.float64, classes=5, input_size=32):
    return vgg(cfg, num_classes=classes, input_size=input_size, fc_width=8, width_mult=0.125,
               init="kaiming", seed=seed, dtype=dtype).eval()


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def chw(img, mean=MEAN):
    """The protocols' input normalisation, checked once in test_normalise."""
    return ev.normalise(img, mean).astype(np.float64)


def test_normalise():
    img = image(3, 4)
    want = (img / 255.0 - np.array(MEAN)).transpose(2, 0, 1)
    got = ev.normalise(img, MEAN)
    assert got.shape == (3, 3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def forward_post(model, x):
    with minivgg.no_grad():
        return softmax(model(Tensor(x)).data.astype(np.float64), axis=1)


def count_forwards(model):
    """Record the input shape of every forward pass of ``model``."""
    shapes, orig = [], model.forward

    def fwd(x):
        shapes.append(tuple(x.shape))
        return orig(x)
    model.forward = fwd
    return shapes


# -- FC -> conv (§3.2) --------------------------------------------------------

@pytest.mark.parametrize("cfg", ["A", "A-LRN", "B", "C", "D", "E"])
def test_dense_net_equals_classifier_at_training_crop(cfg):
    m = tiny(cfg, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32))
    with minivgg.no_grad():
        dense = m.to_fully_conv()(Tensor(x)).data
        logits = m(Tensor(x)).data
    assert dense.shape == (2, 5, 1, 1)
    np.testing.assert_allclose(dense[:, :, 0, 0], logits, rtol=1e-10, atol=1e-10)


def test_224_net_at_q256_gives_2x2_map_and_any_aspect_ratio():
    m = vgg("A", num_classes=4, input_size=224, fc_width=8, width_mult=1 / 16, init="kaiming",
            seed=0, dtype=np.float64).eval()
    assert ev.dense_score_map(m, image(256, 256), 256, MEAN).shape == (4, 2, 2)
    # 300x500 -> 256x427: 8x13 feature cells, 7x7 "FC1 conv" -> 2x7 map.
    assert ev.dense_score_map(m, image(300, 500), 256, MEAN).shape == (4, 2, 7)
    with pytest.raises(ValueError, match="smaller than the crop 224"):
        ev.dense_score_map(m, image(256, 256), 200, MEAN)


def test_dense_scores_equal_classifier_and_average_flip():
    m = tiny()
    img = image(32, 32)
    x = chw(img)[None]
    p, pf = forward_post(m, x)[0], forward_post(m, x[:, :, :, ::-1].copy())[0]
    np.testing.assert_allclose(ev.dense_scores(m, img, 32, MEAN, flip=False), p, rtol=1e-10)
    np.testing.assert_allclose(ev.dense_scores(m, img, 32, MEAN), (p + pf) / 2, rtol=1e-10)


def test_dense_window_cuts_what_the_map_cannot_cover_equally_from_both_sides():
    x = np.arange(3 * 54 * 75).reshape(3, 54, 75)
    # 54 - 32 = 22 rows the one-row map cannot use: 11 off the top, 11 off the
    # bottom; 75 - 32 = 43 = 32 + 11 columns: a two-column map, 5 off the left, 6
    # off the right.
    w = ev.dense_window(x, 32)
    assert w.shape == (3, 32, 64) and np.shares_memory(w, x)
    assert np.array_equal(w, x[:, 11:43, 5:69])
    # Where the map covers the whole image (every Q of the paper with 224 crops:
    # 256, 384, 512) nothing is cut.
    for side in (256, 384, 512):
        assert ev.dense_window(np.zeros((3, side, side + 32)), 224).shape == (3, side, side + 32)
    with pytest.raises(ValueError, match="a 32x32 network does not fit a 31x40 image"):
        ev.dense_window(np.zeros((3, 31, 40)), 32)


def test_dense_evaluation_is_centred_on_the_image():
    """At Q = 54 with 32x32 crops the score map is one cell: dense evaluation
    equals the classifier on the centre 32x32 crop (the training crops' place),
    not on the top-left one a whole-image forward would use."""
    m = tiny(seed=5)
    img = image(54, 54, seed=6)
    centre = chw(img)[None, :, 11:43, 11:43]
    np.testing.assert_allclose(ev.dense_score_map(m, img, 54, MEAN)[:, 0, 0],
                               logits(m, centre)[0], rtol=1e-10, atol=1e-12)
    p, pf = forward_post(m, centre)[0], forward_post(m, centre[:, :, :, ::-1].copy())[0]
    np.testing.assert_allclose(ev.dense_scores(m, img, 54, MEAN), (p + pf) / 2, rtol=1e-10)
    net = ev.EvalNet(m, MEAN)
    np.testing.assert_allclose(net.predict(img, "dense", [54]), (p + pf) / 2, rtol=1e-10)


def logits(model, x):
    with minivgg.no_grad():
        return model(Tensor(x)).data.astype(np.float64)


def test_dense_mean_vs_sum_pooling_same_ranking_sharper_softmax():
    m = tiny(seed=3)
    img = image(50, 90, seed=4)  # Q=96 -> 96x173 -> 3x5 map
    smap = ev.dense_score_map(m, img, 96, MEAN)
    assert smap.shape == (5, 3, 5)
    mean = ev.dense_scores(m, img, 96, MEAN, flip=False)
    summ = ev.dense_scores(m, img, 96, MEAN, flip=False, pool="sum")
    np.testing.assert_allclose(mean, softmax(smap.mean(axis=(1, 2))[None], axis=1)[0], rtol=1e-10)
    assert np.array_equal(np.argsort(-mean), np.argsort(-summ))
    assert summ.max() > mean.max()
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        ev.dense_scores(m, img, 96, MEAN, pool="max")


# -- multi-crop (§4.3) -----------------------------------------------------------

def test_crop_positions_grid_corners_and_centre():
    pos = ev.crop_positions(48, 64, 32, grid=5)
    assert len(pos) == 25
    ys, xs = sorted({y for y, _ in pos}), sorted({x for _, x in pos})
    assert ys == [0, 4, 8, 12, 16] and xs == [0, 8, 16, 24, 32]
    for corner in [(0, 0), (0, 32), (16, 0), (16, 32)]:
        assert corner in pos
    assert ev.crop_positions(48, 64, 32, grid=1) == [(8, 16)]
    assert ev.crop_positions(224, 298, 224, grid=5)[-1] == (0, 74)
    with pytest.raises(ValueError, match="does not fit"):
        ev.crop_positions(20, 64, 32)


def test_multicrop_is_mean_of_50_crop_posteriors_in_bounded_batches():
    m = tiny(seed=5)
    img = image(40, 56, seed=6)
    shapes = count_forwards(m)
    got = ev.multicrop_scores(m, img, 40, MEAN, batch_size=16)
    assert sum(s[0] for s in shapes) == 50 and max(s[0] for s in shapes) <= 16
    x = chw(ev.rescale(img, 40))
    crops = [x[:, y:y + 32, c:c + 32] for y, c in ev.crop_positions(40, 56, 32)]
    crops += [c[:, :, ::-1] for c in crops]
    want = forward_post(m, np.stack(crops)).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_single_centre_crop_at_q_equal_crop_is_plain_forward():
    m = tiny(seed=7)
    img = image(32, 32, seed=8)
    np.testing.assert_allclose(ev.single_crop_scores(m, img, 32, MEAN),
                               forward_post(m, chw(img)[None])[0], rtol=1e-10)
    # Non-square image: the centre crop of the rescaled image.
    img2 = image(32, 47, seed=9)
    np.testing.assert_allclose(ev.single_crop_scores(m, img2, 32, MEAN),
                               forward_post(m, chw(img2)[None, :, :, 7:39])[0], rtol=1e-10)


def test_150_crops_over_three_scales_averaged_per_scale():
    m = tiny(seed=10)
    img = image(36, 36, seed=11)
    net = ev.EvalNet(m, MEAN, train_scale=36)
    shapes = count_forwards(m)
    p = net.predict(img, "multicrop", scales=[32, 36, 44], batch_size=64)
    assert sum(s[0] for s in shapes) == 150 and max(s[0] for s in shapes) <= 64
    per_scale = [ev.multicrop_scores(m, img, q, MEAN) for q in (32, 36, 44)]
    np.testing.assert_allclose(p, np.mean(per_scale, axis=0), rtol=1e-10)
    assert p.shape == (5,) and abs(p.sum() - 1) < 1e-12


# -- scales (§4.1, §4.2) -----------------------------------------------------------

def test_scale_helpers():
    assert ev.test_scales(256) == [224, 256, 288]
    assert ev.test_scales(384) == [352, 384, 416]
    assert ev.test_scales([256, 512]) == [256, 384, 512]
    assert ev.test_scales((256, 511)) == [256, 383, 511]
    assert ev.single_scale(256) == 256 and ev.single_scale([256, 512]) == 384
    assert ev.default_scales(256, "single") == [256]
    assert ev.default_scales([256, 512], "dense+multicrop") == [256, 384, 512]
    with pytest.raises(ValueError, match="pair"):
        ev.test_scales([256, 384, 512])
    with pytest.raises(ValueError, match="S_min <= S_max"):
        ev.test_scales([512, 256])


def test_small_model_default_scales_rejected_with_advice():
    net = ev.EvalNet(tiny(), MEAN, train_scale=36)  # S-32 = 4 < crop 32
    with pytest.raises(ValueError, match=r"Q=\[4\].*crop 32.*--scales 32,36,68"):
        net.scales_for("dense")
    assert net.scales_for("single") == [36]
    assert net.scales_for("dense", [32, 36, 68]) == [32, 36, 68]
    with pytest.raises(ValueError, match="empty"):
        ev.check_scales([], 32)
    with pytest.raises(ValueError, match="positive ints"):
        ev.check_scales([32.5], 32)
    with pytest.raises(ValueError, match="unknown test protocol 'mulitcrop'"):
        net.predict(image(32, 32), "mulitcrop", [32])
    with pytest.raises(ValueError, match="training scale S is unknown"):
        ev.EvalNet(tiny(), MEAN).scales_for("dense")


# -- combinations (Table 5, Table 6) ----------------------------------------------------

def test_dense_plus_multicrop_and_multiscale_average_posteriors():
    m = tiny(seed=12)
    img = image(33, 45, seed=13)
    net = ev.EvalNet(m, MEAN, train_scale=[32, 48])
    qs = [32, 40, 48]
    d = net.predict(img, "dense")
    c = net.predict(img, "multicrop")
    np.testing.assert_allclose(d, np.mean([ev.dense_scores(m, img, q, MEAN) for q in qs], 0),
                               rtol=1e-10)
    np.testing.assert_allclose(net.predict(img, "dense+multicrop", batch_size=7), (d + c) / 2,
                               rtol=1e-10)
    np.testing.assert_allclose(net.predict(img, "single"),
                               ev.single_crop_scores(m, img, 40, MEAN), rtol=1e-10)


class ListData:
    """A data set of given images; ``bad`` indices raise CorruptImageError."""

    def __init__(self, images, labels, classes, bad=()):
        self.images, self.labels, self.classes, self.bad = images, labels, classes, set(bad)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if i in self.bad:
            raise CorruptImageError(f"img{i}.jpg: truncated")
        return self.images[i], self.labels[i]

    def describe(self, i):
        return f"img{i}.jpg"


def test_evaluate_fusion_mixed_sizes_and_corrupt_images():
    classes = list("abcde")
    a = ev.EvalNet(tiny("A", seed=14), MEAN, train_scale=36, classes=classes)
    b = ev.EvalNet(tiny("B", seed=15, dtype=np.float32), [0.4, 0.4, 0.4], train_scale=[32, 48],
                   classes=classes)
    imgs = [image(32, 32, 1), image(40, 64, 2), image(64, 36, 3), image(32, 32, 4),
            image(50, 50, 5)]
    ds = ListData(imgs, [0, 1, 2, 3, 4], classes, bad={3})
    with pytest.warns(UserWarning, match="img3.jpg"):
        rep = ev.evaluate([a, b], ds, "dense+multicrop", scales=[32, 40], batch_size=32,
                          progress=False)
    assert [s[0] for s in rep.skipped] == [3] and list(rep.indices) == [0, 1, 2, 4]
    assert len(rep.rows) == 3 and rep.rows[-1].model.startswith("fusion")
    for net, p in zip((a, b), rep.posteriors):
        want = [net.predict(imgs[i], "dense+multicrop", [32, 40]) for i in rep.indices]
        np.testing.assert_allclose(p, want, rtol=1e-5)
    np.testing.assert_allclose(rep.fused, (rep.posteriors[0] + rep.posteriors[1]) / 2)
    assert rep.rows[-1].top1 == ev.topk_error(rep.fused, rep.labels, 1)
    assert rep.rows[0].top5 == 0.0  # 5 classes: top-5 always right
    for fmt in ("table", "markdown", "csv"):
        text = ev.format_report(rep, fmt)
        assert "fusion (VGG-A + VGG-B)" in text and "top-1 err" in text
    assert "1 unreadable image(s) skipped: img3.jpg" in ev.format_report(rep)
    assert rep.confusion_matrix().sum() == 4


def test_dense_views_batched_by_size_within_pixel_budget():
    net = ev.EvalNet(tiny(seed=16, dtype=np.float32), MEAN, train_scale=[32, 48])
    shapes = count_forwards(net.dense)
    imgs = [image(32, 32, i) for i in range(6)] + [image(40, 64, 9)]
    rep = ev.evaluate(net, ListData(imgs, [0] * 7, None), "dense", [32, 48], batch_size=16,
                      progress=False)
    assert rep.posteriors[0].shape == (7, 5)
    assert sum(b for b, _, _, _ in shapes) == 7 * 2 * 2  # 2 scales x (image + flip)
    assert all(b * h * w <= 16 * 32 * 32 for b, _, h, w in shapes)
    assert len(shapes) < 7 * 2  # same-sized views of different images share a pass
    # The dense windows (views.dense_window): 32x32 and 48x48 -> 32x32; 40x64 at Q = 32
    # -> 32x51 -> 32x32, at Q = 48 -> 48x77 -> 32x64, never padded into another's batch.
    assert {(h, w) for _, _, h, w in shapes} == {(32, 32), (32, 64)}
    np.testing.assert_allclose(rep.posteriors[0][6], net.predict(imgs[6], "dense", [32, 48]),
                               rtol=1e-5)


def test_fusion_of_checkpoints_with_different_classes_names_both(tmp_path):
    meta = {"classes": list("abcde"), "mean_rgb": MEAN, "train": {"scale": 36, "crop": 32}}
    p1 = save_checkpoint(tmp_path / "one.npz", tiny(), meta)
    p2 = save_checkpoint(tmp_path / "two.npz", tiny(), dict(meta, classes=list("vwxyz")))
    nets = [ev.EvalNet.from_checkpoint(p) for p in (p1, p2)]
    with pytest.raises(ValueError, match=r"one\.npz.*\[a, b.*two\.npz.*\[v, w"):
        ev.check_same_classes(nets)
    with pytest.raises(ValueError, match="different classes"):
        ev.evaluate(nets, ListData([], [], list("abcde")), "single", progress=False)


def test_checkpoint_roundtrip_gives_default_scales(tmp_path):
    meta = {"classes": list("abcde"), "mean_rgb": MEAN, "train": {"scale": [32, 64], "crop": 32}}
    net = ev.EvalNet.from_checkpoint(save_checkpoint(tmp_path / "c.npz", tiny(), meta))
    assert net.scales_for("multicrop") == [32, 48, 64] and net.scales_for("single") == [48]
    assert net.train_scale_label == "32-64" and net.crop == 32


# -- metrics ---------------------------------------------------------------------------

def test_topk_errors_on_hand_made_posteriors():
    p = np.array([[0.7, 0.2, 0.1],
                  [0.1, 0.3, 0.6],
                  [0.5, 0.4, 0.1],
                  [1 / 3, 1 / 3, 1 / 3]])
    y = np.array([0, 1, 2, 1])
    assert ev.topk_correct(p, y, 1).tolist() == [True, False, False, False]
    assert ev.topk_correct(p, y, 2).tolist() == [True, True, False, True]
    assert ev.topk_error(p, y, 1) == 0.75 and ev.topk_error(p, y, 2) == 0.25
    assert ev.topk_error(p, y, 5) == 0.0  # k clipped to the 3 classes
    cm = ev.confusion_matrix(p, y)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [1, 0, 0]]
    acc = ev.per_class_accuracy(ev.confusion_matrix(p[:2], y[:2], 3))
    assert acc[0] == 1.0 and acc[1] == 0.0 and np.isnan(acc[2])
    with pytest.raises(ValueError, match=r"labels must be ints in \[0, 3\)"):
        ev.topk_error(p, np.array([0, 1, 3, 1]), 1)
    np.testing.assert_allclose(ev.fuse_posteriors([p, p[::-1]])[0], (p[0] + p[3]) / 2)


# -- the command-line tool ----------------------------------------------------------

def _cli():
    return load_example("evaluate_vgg")


@pytest.fixture
def synthetic_ckpt(tmp_path):
    meta = {"classes": list(SyntheticShapes.classes), "mean_rgb": MEAN,
            "train": {"scale": 36, "crop": 32}}
    return str(save_checkpoint(tmp_path / "a.npz", tiny(classes=10, dtype=np.float32), meta))


def test_cli_fusion_table_and_output(tmp_path, synthetic_ckpt, capsys):
    cli = _cli()
    out = tmp_path / "t.csv"
    rep = cli.main(["--checkpoint", f"{synthetic_ckpt},{synthetic_ckpt}", "--data", "synthetic",
                    "--val-size", "6", "--image-size", "32", "--protocol", "dense",
                    "--scales", "32,40", "--limit", "4", "--format", "csv", "--output", str(out),
                    "--no-progress", "--per-class"])
    assert len(rep.labels) == 4 and len(rep.rows) == 3
    text = out.read_text()
    assert text.splitlines()[0].startswith("ConvNet,train S,protocol,test Q,top-1 err (%)")
    assert "fusion" in text and "32,40" in text
    assert "per-class accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--protocol", "dense"], "Q=[4] are smaller than the crop 32"),
    (["--scales", ","], "lists no scale"),
    (["--scales", "32,x"], "'x' is not a positive integer"),
    (["--protocol", "fancy"], "invalid choice: 'fancy'"),
    (["--data", "mnist", "--protocol", "single"], "unknown --data 'mnist'"),
])
def test_cli_rejects_bad_requests_before_work(synthetic_ckpt, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        _cli().main(["--checkpoint", synthetic_ckpt, "--no-progress"] + args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_takes_synthetic_val_settings_from_the_training_recipe(tmp_path):
    meta = {"classes": list(SyntheticShapes.classes), "mean_rgb": MEAN,
            "train": {"scale": [32, 40], "crop": 32,
                      "recipe": {"data": "synthetic", "val_size": 5, "image_size": 36, "seed": 3}}}
    path = str(save_checkpoint(tmp_path / "r.npz", tiny(classes=10, dtype=np.float32), meta))
    rep = _cli().main(["--checkpoint", path, "--protocol", "single", "--no-progress"])
    assert len(rep.labels) == 5 and rep.rows[0].scales == "36"
    want = SyntheticShapes(5, image_size=36, seed=3, split="val").labels
    assert rep.labels.tolist() == want.tolist()


def test_cli_takes_any_weights_file_and_a_preset(tmp_path, capsys):
    pytest.importorskip("safetensors", reason="the safetensors package is not installed")
    from minivgg.io import save_weights
    path = save_weights(tiny(classes=10, dtype=np.float32), tmp_path / "w.safetensors",
                        classes=list(SyntheticShapes.classes), train_scale=[32, 40],
                        preprocess=ev.as_preprocess(MEAN))
    args = ["--checkpoint", str(path), "--data", "synthetic", "--val-size", "4",
            "--image-size", "36", "--protocol", "single", "--no-progress"]
    rep = _cli().main(args)
    assert rep.rows[0].scales == "36" and len(rep.labels) == 4
    caffe = _cli().main(args + ["--preset", "caffe"])
    assert not np.allclose(caffe.posteriors[0], rep.posteriors[0])
