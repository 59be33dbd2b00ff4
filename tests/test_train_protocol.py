"""The §3.1 recipe as the Trainer runs it, against values worked out by
hand: the rate is divided by 10 when the validation *accuracy* stops
improving (at most max_lr_drops times), a resumed run carries the schedule's
patience count and drops taken, the logged validation loss/top-1/top-5 are
what their definitions say, and the loaders use the paper's training and
test pipelines."""
import math

import numpy as np
import pytest

import minivgg.train.trainer as train_mod
from minivgg import Tensor, nn
from minivgg.data import (CenterCrop, PCAColourShift, RandomCrop, RandomHorizontalFlip,
                          RescaleShorter, SubtractMean, ToCHW, ToFloat)
from minivgg.train import Recipe, Trainer, evaluate_loader


def recipe(out, **kw):
    base = dict(cfg="A", data="synthetic", image_size=32, train_size=8, val_size=4, crop=32,
                scale="32:36", batch_size=8, epochs=4, width_mult=0.125, fc_width=16, lr=0.02,
                dropout=0.3, init="glorot", out=str(out), progress=False, seed=1, patience=1,
                max_lr_drops=3, threads=1)  # fixed: BLAS sums in a thread-dependent order
    base.update(kw)
    return Recipe(**base)


def fake_validation(monkeypatch, top1_errors):
    """Make the trainer's validation report these top-1 errors, one per epoch."""
    it = iter(top1_errors)
    monkeypatch.setattr(train_mod, "evaluate_loader",
                        lambda *a, **k: (1.0, next(it), 0.25))


def lrs_after_each_epoch(trainer):
    """The rate used in each epoch, then the rate after the last one."""
    return [h["lr"] for h in trainer.history] + [trainer.optimizer.lr]


def test_rising_accuracy_keeps_the_rate(tmp_path, monkeypatch):
    fake_validation(monkeypatch, [0.9, 0.8, 0.7, 0.6, 0.5])  # errors fall: accuracy rises
    t = Trainer(recipe(tmp_path, epochs=5), log=lambda *_: None)
    t.run()
    assert lrs_after_each_epoch(t) == [0.02] * 6
    assert t.scheduler.reductions == 0
    assert t.scheduler.best == pytest.approx(0.5)  # the best *accuracy*


def test_stalled_accuracy_divides_the_rate_by_ten_after_the_patience(tmp_path, monkeypatch):
    fake_validation(monkeypatch, [0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4])
    t = Trainer(recipe(tmp_path, epochs=7, patience=1), log=lambda *_: None)
    t.run()
    # epoch 1 sets the best; 2 and 3 do not improve: with patience 1 the rate
    # drops after epoch 3; epoch 4 improves; 5 and 6 do not: drop after 6.
    want = [0.02, 0.02, 0.02, 0.002, 0.002, 0.002, 0.0002, 0.0002]
    assert lrs_after_each_epoch(t) == pytest.approx(want, rel=1e-12)
    assert t.scheduler.reductions == 2


def test_falling_accuracy_is_not_an_improvement(tmp_path, monkeypatch):
    fake_validation(monkeypatch, [0.2, 0.3, 0.4, 0.5])  # errors rise
    t = Trainer(recipe(tmp_path, epochs=4, patience=1), log=lambda *_: None)
    t.run()
    assert lrs_after_each_epoch(t) == pytest.approx([0.02, 0.02, 0.02, 0.002, 0.002])


def test_at_most_max_lr_drops(tmp_path, monkeypatch):
    fake_validation(monkeypatch, [0.5] * 9)
    t = Trainer(recipe(tmp_path, epochs=9, patience=0, max_lr_drops=3), log=lambda *_: None)
    t.run()
    # patience 0: every non-improving epoch drops, until three drops are taken.
    assert lrs_after_each_epoch(t)[-1] == pytest.approx(0.02e-3, rel=1e-12)
    assert t.scheduler.reductions == 3


SCHEDULE_AFTER_6 = {"best": 0.5, "bad_epochs": 3, "cooldown_left": 0, "reductions": 1}


@pytest.mark.parametrize("resume_after", [2, 4])
def test_resume_keeps_the_schedule(tmp_path, monkeypatch, resume_after):
    # Accuracy 0.5 every epoch, patience 1, one drop allowed:
    # e1 best; e2 bad 1; e3 bad 2 -> drop (bad 0); e4 bad 1; e5 bad 2 (capped); e6 bad 3.
    fake_validation(monkeypatch, [0.5] * 20)
    kw = dict(patience=1, max_lr_drops=1)
    straight = Trainer(recipe(tmp_path / "s", epochs=6, **kw), log=lambda *_: None)
    straight.run()
    assert straight.scheduler.state_dict() == SCHEDULE_AFTER_6
    assert straight.optimizer.lr == pytest.approx(0.002, rel=1e-12)

    Trainer(recipe(tmp_path / "r", epochs=resume_after, **kw), log=lambda *_: None).run()
    resumed = Trainer(recipe(tmp_path / "r", epochs=6, **kw), resume=str(tmp_path / "r"),
                      log=lambda *_: None)
    resumed.run()
    assert resumed.scheduler.state_dict() == SCHEDULE_AFTER_6
    assert lrs_after_each_epoch(resumed) == pytest.approx(lrs_after_each_epoch(straight),
                                                          rel=1e-12)
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


class Scores(nn.Module):
    """A 'model' whose input is already its class scores."""

    def forward(self, x):
        return x


def test_validation_loss_top1_and_top5_by_hand():
    # Ten images of ten classes; image i's true class is ranked i-th (0-based).
    scores = np.tile(np.arange(10.0, 0.0, -1.0), (10, 1))  # class c scores 10 - c
    labels = np.arange(10)
    batches = [(scores[:6], labels[:6]), (scores[6:], labels[6:])]  # unequal batches
    loss, top1, top5 = evaluate_loader(Scores(), batches)
    assert top1 == pytest.approx(0.9, abs=1e-12)  # only image 0
    assert top5 == pytest.approx(0.5, abs=1e-12)  # images 0..4
    lse = math.log(sum(math.exp(10.0 - c) for c in range(10)))
    assert loss == pytest.approx(np.mean([lse - (10.0 - c) for c in range(10)]), rel=1e-12)


def test_validation_top5_with_ties_counts_lower_classes_first():
    scores = np.zeros((2, 8))  # every class tied
    loss, top1, top5 = evaluate_loader(Scores(), [(scores, np.array([4, 5]))])
    assert top1 == 1.0
    assert top5 == pytest.approx(0.5)  # class 4 is 5th of the tie, class 5 6th
    assert loss == pytest.approx(math.log(8), rel=1e-12)


def test_loaders_use_the_papers_pipelines(tmp_path):
    t = Trainer(recipe(tmp_path, scale="32:40"), log=lambda *_: None)
    t._setup()
    steps = t.train_loader.transform.transforms
    assert [type(s) for s in steps] == [RescaleShorter, RandomCrop, RandomHorizontalFlip,
                                        ToFloat, PCAColourShift, SubtractMean, ToCHW]
    assert (steps[0].s_min, steps[0].s_max) == (32, 40) and steps[1].size == 32
    assert steps[2].p == 0.5 and steps[4].alphastd == 0.1
    np.testing.assert_array_equal(steps[5].mean_rgb, t.mean_rgb)
    val = t.val_loader.transform.transforms
    assert [type(s) for s in val] == [RescaleShorter, CenterCrop, ToFloat, SubtractMean, ToCHW]
    assert (val[0].s_min, val[0].s_max) == (36, 36) and val[1].size == 32
    assert t.train_loader.shuffle and not t.val_loader.shuffle
    # A fresh model trains in training mode (dropout on).
    assert t.model.training and t.model.classifier[2].training


def test_plain_train_step_is_one_sgd_update_of_the_mean_loss(tmp_path):
    """train_step = SGD on the batch-mean loss: check one step against the
    update rule applied by hand to the gradients of that loss."""
    t = Trainer(recipe(tmp_path, dropout=0.0, momentum=0.9, weight_decay=1e-2),
                log=lambda *_: None)
    t._setup()
    g = np.random.default_rng(0)
    x = g.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    before = {n: p.data.copy() for n, p in t.model.named_parameters()}
    from minivgg import functional as F
    F.softmax_cross_entropy(t.model(Tensor(x)), y).backward()
    grads = {n: p.grad.copy() for n, p in t.model.named_parameters()}
    t.model.zero_grad()
    t.train_step(x, y)
    for n, p in t.model.named_parameters():
        # first step: v = g + wd * p; p -= lr * v
        want = before[n] - 0.02 * (grads[n] + 1e-2 * before[n])
        np.testing.assert_allclose(p.data, want, rtol=1e-5, atol=1e-7, err_msg=n)
