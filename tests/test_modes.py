"""Train/eval mode at every entry point that evaluates a model.

Dropout is on in training mode only (§3.1), and every test protocol (§3.2,
§4), the training loop's validation and the command-line evaluator must give
the same results whatever mode the model was left in, and hand the model
back in the mode it came in (every submodule). The models here have wide
FC layers, dropout 0.5 and positive FC biases, so dropout visibly changes
their outputs (checked first: the other tests have teeth)."""

import numpy as np
import pytest

import minivgg
from minivgg import Tensor
from minivgg import evaluate as ev
from minivgg.checkpoint import save_checkpoint
from minivgg.data import SyntheticShapes
from minivgg.functional.loss import log_softmax
from minivgg.models import vgg
from minivgg.train import Recipe, Trainer, evaluate_loader

MEAN = [0.5, 0.4, 0.3]
PROTOCOLS = ["single", "dense", "multicrop", "dense+multicrop"]
GRID = 2  # 2x2 crops x 2 flips per scale: the mode logic is the same as for 5x5, and faster


def model(cfg="A", seed=0, dtype=np.float64, classes=5):
    return vgg(cfg, num_classes=classes, input_size=32, fc_width=64, width_mult=1 / 16,
               dropout=0.5, init="kaiming", seed=seed, dtype=dtype, fc_bias=0.1)


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def modes(m):
    return [mod.training for mod in m.modules()]


def same_in_both_modes(m, call):
    """call() with m in train mode, then in eval mode: equal results, mode kept."""
    m.train()
    minivgg.manual_seed(0)
    from_train = call()
    assert all(modes(m)), "the model was not handed back in training mode"
    m.eval()
    from_eval = call()
    assert not any(modes(m)), "the model was not handed back in eval mode"
    np.testing.assert_allclose(from_train, from_eval, rtol=1e-12, atol=1e-15)
    return from_eval


def test_dropout_changes_these_models_outputs():
    m = model()
    x = Tensor(ev.normalise(image(32, 32), MEAN)[None].astype(np.float64))
    minivgg.manual_seed(0)
    with minivgg.no_grad():
        train_out = m(x).data
        m.eval()
        eval_out = m(x).data
    assert np.abs(train_out - eval_out).max() > 1e-3 * np.abs(eval_out).max()


@pytest.mark.parametrize("fn", ["dense_score_map", "dense_scores", "multicrop_scores",
                                "single_crop_scores"])
def test_single_image_protocols(fn):
    m = model(seed=1)
    img = image(40, 52, seed=2)
    kw = {"grid": GRID} if fn == "multicrop_scores" else {}
    same_in_both_modes(m, lambda: getattr(ev, fn)(m, img, 40, MEAN, **kw))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predict(protocol):
    m = model(seed=3)
    img = image(36, 44, seed=4)
    same_in_both_modes(m, lambda: ev.predict(m, img, protocol, [32, 40], MEAN, grid=GRID))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_evalnet_predict_whatever_the_mode_it_was_built_in(protocol):
    m = model(seed=5)
    img = image(33, 47, seed=6)
    for built_in in (True, False):
        m.train(built_in)
        net = ev.EvalNet(m, MEAN, train_scale=[32, 48])
        same_in_both_modes(m, lambda: net.predict(img, protocol, [32, 40], grid=GRID))


def test_dense_net_built_before_the_mode_changed():
    """A FullyConvVGG shares its dropout layers with the VGG: scoring with
    one built while the VGG was in eval mode must not switch the VGG's
    dropout off when the VGG has since gone back to training."""
    m = model(seed=7)
    img = image(48, 48, seed=8)
    m.eval()
    dense = m.to_fully_conv()
    want = ev.dense_score_map(dense, img, 48, MEAN)
    m.train()
    np.testing.assert_allclose(ev.dense_score_map(dense, img, 48, MEAN), want, rtol=1e-12)
    np.testing.assert_allclose(ev.dense_scores(dense, img, 48, MEAN),
                               ev.dense_scores(m, img, 48, MEAN), rtol=1e-12)
    assert all(modes(m))


class ListData:
    classes = list("abcde")

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


DATA = ListData([image(32, 32, 10), image(40, 56, 11), image(50, 36, 12)], [0, 3, 4])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_evaluate(protocol):
    m = model(seed=9)
    net = ev.EvalNet(m, MEAN, train_scale=[32, 40], classes=DATA.classes)
    same_in_both_modes(m, lambda: ev.evaluate(net, DATA, protocol, [32, 40], grid=GRID,
                                              progress=False).posteriors[0])


def test_fusion_of_models_left_in_different_modes():
    a, b = model("A", seed=13), model("B", seed=14)
    nets = [ev.EvalNet(x, MEAN, train_scale=36, classes=DATA.classes) for x in (a, b)]
    a.eval()
    b.eval()
    want = ev.evaluate(nets, DATA, "dense+multicrop", [32, 40], grid=GRID, progress=False)
    a.train()  # one model left training, the other not
    minivgg.manual_seed(1)
    got = ev.evaluate(nets, DATA, "dense+multicrop", [32, 40], grid=GRID, progress=False)
    assert all(modes(a)) and not any(modes(b))
    np.testing.assert_allclose(got.fused, want.fused, rtol=1e-12)
    for p, q in zip(got.posteriors, want.posteriors):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_evaluate_loader():
    m = model(seed=15, dtype=np.float32, classes=10)
    g = np.random.default_rng(16)
    batches = [(g.standard_normal((6, 3, 32, 32)).astype(np.float32), g.integers(0, 10, 6))
               for _ in range(2)]
    same_in_both_modes(m, lambda: np.array(evaluate_loader(m, batches)))


def reference_validation(m, loader):
    """(mean loss, top-1 error, top-5 error) in eval mode, by hand."""
    was = modes(m)
    m.eval()
    losses, top1, top5 = [], [], []
    with minivgg.no_grad():
        for x, y in loader:
            s = m(Tensor(x)).data.astype(np.float64)
            logp = log_softmax(s)
            losses += list(-logp[np.arange(len(y)), y])
            rank = np.argsort(-s, axis=1, kind="stable")
            pos = np.array([list(r).index(t) for r, t in zip(rank, y)])
            top1 += list(pos < 1)
            top5 += list(pos < 5)
    for mod, w in zip(m.modules(), was):
        object.__setattr__(mod, "training", w)
    return np.mean(losses), 1 - np.mean(top1), 1 - np.mean(top5)


def test_training_loops_validation_is_in_eval_mode_and_training_resumes_with_dropout(tmp_path):
    r = Recipe(cfg="A", image_size=32, train_size=8, val_size=40, crop=32, scale="32:36",
               batch_size=8, epochs=1, width_mult=0.125, fc_width=64, dropout=0.5, fc_bias=0.1,
               out=str(tmp_path), progress=False, seed=4)
    t = Trainer(r, log=lambda *_: None)
    t._setup()
    assert all(modes(t.model))
    t._end_epoch()
    row = t.history[-1]
    assert all(modes(t.model)), "training continues without dropout after validation"
    loss, top1, top5 = reference_validation(t.model, t.val_loader)
    assert row["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert row["val_top1_err"] == pytest.approx(top1, abs=1e-12)
    assert row["val_top5_err"] == pytest.approx(top5, abs=1e-12)
    # With dropout on, the loss on the same images differs.
    minivgg.manual_seed(0)
    with minivgg.no_grad():
        x, y = next(iter(t.val_loader))
        logp = log_softmax(t.model(Tensor(x)).data.astype(np.float64))
    assert abs(-logp[np.arange(len(y)), y].mean() - loss) > 1e-4


def _cli():
    from conftest import load_example
    return load_example("evaluate_vgg")


@pytest.mark.parametrize("protocol", ["single", "dense"])
def test_command_line_evaluator_evaluates_in_eval_mode(tmp_path, protocol):
    m = model(seed=17, dtype=np.float32, classes=10)
    meta = {"classes": list(SyntheticShapes.classes), "mean_rgb": MEAN,
            "train": {"scale": [32, 40], "crop": 32}}
    path = str(save_checkpoint(tmp_path / "c.npz", m, meta))
    rep = _cli().main(["--checkpoint", path, "--data", "synthetic", "--val-size", "4",
                       "--image-size", "36", "--protocol", protocol, "--scales", "32,40",
                       "--no-progress"])
    net = ev.EvalNet.from_checkpoint(path)
    assert net.model.training  # a model built from a checkpoint starts in training mode
    net.model.eval()
    ds = SyntheticShapes(4, image_size=36, seed=0, split="val")
    want = np.stack([net.predict(ds[i][0], protocol, [32, 40]) for i in range(4)])
    np.testing.assert_allclose(rep.posteriors[0], want, rtol=1e-5)
