"""What a checkpoint must hold to rebuild the model and continue training
exactly (§3.1's long runs are resumed; §4's evaluation starts from them):
the model's configuration, every weight, the optimizer's scalars and
momentum buffers, and the trainer's schedule, position, RNG and mean RGB."""
import numpy as np
import pytest

from minivgg.checkpoint import load_checkpoint, save_checkpoint
from minivgg.models import vgg
from minivgg.optim import SGD
from minivgg.train import Recipe, Trainer


def test_model_configuration_and_optimizer_state_round_trip(tmp_path):
    m = vgg("C", num_classes=7, fc_width=12, input_size=64, width_mult=1 / 16, dropout=0.3,
            seed=0)
    opt = SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        for p in m.parameters():
            p.grad = np.full(p.shape, 0.01, np.float32)
        opt.step()
    opt.lr = 0.005
    ck = load_checkpoint(save_checkpoint(tmp_path / "c.npz", m, {"note": "x"}, opt))
    assert ck.meta["model"] == {"cfg": "C", "num_classes": 7, "fc_width": 12, "input_size": 64,
                                "width_mult": 1 / 16, "dropout": 0.3}
    assert ck.meta["note"] == "x"
    b = ck.build_model()
    assert (b.cfg, b.num_classes, b.fc_width, b.input_size) == ("C", 7, 12, 64)
    assert b.classifier[2].p == b.classifier[5].p == 0.3
    for (n, p), q in zip(m.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    o = ck.optimizer_state
    assert (o["lr"], o["momentum"], o["weight_decay"], o["steps"]) == (0.005, 0.9, 5e-4, 2)
    for v, w in zip(opt.velocity, o["velocity"]):
        np.testing.assert_array_equal(v, w)


def test_trainer_checkpoint_holds_the_training_state(tmp_path):
    r = Recipe(cfg="A", image_size=32, train_size=16, val_size=4, crop=32, scale="32:36",
               batch_size=8, epochs=1, width_mult=0.125, fc_width=16, out=str(tmp_path),
               progress=False, seed=2, patience=4)
    t = Trainer(r, log=lambda *_: None)
    t.run()
    meta = load_checkpoint(tmp_path).meta
    assert (meta["epoch"], meta["batch"], meta["global_step"]) == (1, 0, 2)
    assert meta["scheduler"] == t.scheduler.state_dict()
    assert meta["scheduler"]["best"] == pytest.approx(1.0 - t.history[0]["val_top1_err"])
    assert meta["train"]["scale"] == [32, 36] and meta["train"]["crop"] == 32
    np.testing.assert_allclose(meta["mean_rgb"], t.mean_rgb)
    assert meta["classes"] == t.classes and len(meta["history"]) == 1
    assert meta["optimizer"]["steps"] == 2 and "rng" in meta
