"""The §3.1 training procedure: gradient accumulation, initialisation from
configuration A, exact resume, divergence and bad-recipe handling."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minivgg.checkpoint import load_checkpoint
from minivgg.failures import RunFailed
from minivgg.models import vgg
from minivgg.train import Recipe, Trainer, TrainingDiverged, init_from_checkpoint, parse_scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Scripts run in a subprocess import this checkout's minivgg, whatever is installed.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in os.environ.get(
    "PYTHONPATH", "").split(os.pathsep) if p])}


def tiny_recipe(out, **kw):
    base = dict(cfg="A", data="synthetic", image_size=32, train_size=24, val_size=10, crop=32,
                scale="32:36", batch_size=8, epochs=2, width_mult=0.125, fc_width=16, lr=0.02,
                dropout=0.3, init="glorot", out=str(out), progress=False, seed=3,
                threads=1)  # a fixed thread count: BLAS sums in a thread-dependent order
    base.update(kw)
    return Recipe(**base)


def weights(trainer):
    return {k: v for k, v in trainer.model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_micro_batches_give_the_gradient_of_one_batch(tmp_path):
    r = tiny_recipe(tmp_path / "a", dropout=0.0, batch_size=16)
    t = Trainer(r, log=lambda *_: None)
    t._setup()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    before = weights(t)
    t.optimizer.step = lambda **_: None  # keep the gradients, skip the update
    loss_full, _, _ = t.train_step(x, y)
    full = {n: p.grad.copy() for n, p in t.model.named_parameters()}
    t.recipe.micro_batch = 4
    loss_micro, _, _ = t.train_step(x, y)
    assert loss_micro == pytest.approx(loss_full, rel=1e-6)
    for n, p in t.model.named_parameters():
        # float32 sums in another order: compare relative to the gradient's scale.
        scale = np.abs(full[n]).max()
        np.testing.assert_allclose(p.grad, full[n], rtol=1e-4, atol=1e-4 * scale, err_msg=n)
    assert_same_weights(before, weights(t))


def test_init_from_a_copies_exactly_the_papers_seven_layers(tmp_path):
    kw = dict(num_classes=10, input_size=32, fc_width=16, width_mult=0.25)
    a = vgg("A", seed=1, **kw)
    from minivgg.checkpoint import save_checkpoint
    path = save_checkpoint(tmp_path / "a.npz", a, {"classes": list("0123456789")})
    d = vgg("D", seed=2, **kw)
    before = d.state_dict()
    copied = init_from_checkpoint(d, path)
    # D's conv1_1, conv2_1, conv3_1, conv3_2 receive A's first four convs
    # (A's features 0, 3, 6, 8), and fc6-fc8 receive A's.
    # A's first four convs are conv1_1, conv2_1, conv3_1, conv3_2 (features 0, 3, 6, 8).
    expected = ["features.0", "features.5", "features.10", "features.12",
                "classifier.0", "classifier.3", "classifier.6"]
    assert copied == [f"{m}.{p}" for m in expected for p in ("weight", "bias")]
    src = dict(zip(["features.0", "features.5", "features.10", "features.12"],
                   ["features.0", "features.3", "features.6", "features.8"]))
    src.update({c: c for c in ("classifier.0", "classifier.3", "classifier.6")})
    after, a_sd = d.state_dict(), a.state_dict()
    for name in after:
        layer, p = name.rsplit(".", 1)
        if layer in src:
            np.testing.assert_array_equal(after[name], a_sd[f"{src[layer]}.{p}"])
        else:
            np.testing.assert_array_equal(after[name], before[name])  # still random


def test_init_from_same_config_copies_everything_and_checks_shapes(tmp_path):
    from minivgg.checkpoint import save_checkpoint
    kw = dict(num_classes=10, input_size=32, fc_width=16, width_mult=0.25)
    a = vgg("B", seed=1, **kw)
    path = save_checkpoint(tmp_path / "b.npz", a, {"classes": list("0123456789")})
    b = vgg("B", seed=5, **kw)
    assert len(init_from_checkpoint(b, path)) == len(a.state_dict())
    assert_same_weights(a.state_dict(), b.state_dict())
    # Another number of classes (a new data set): fc8 keeps its random start.
    seven = vgg("B", seed=5, num_classes=7, input_size=32, fc_width=16, width_mult=0.25)
    fresh = {k: v.copy() for k, v in seven.state_dict().items() if k.startswith("classifier.6")}
    copied = init_from_checkpoint(seven, path)
    assert sorted(set(a.state_dict()) - set(copied)) == ["classifier.6.bias",
                                                          "classifier.6.weight"]
    for k, v in seven.state_dict().items():
        np.testing.assert_array_equal(v, fresh[k] if k in fresh else a.state_dict()[k])
    # Any other shape (FC width, crop, widths) cannot come from these weights.
    wrong = vgg("B", seed=5, num_classes=10, input_size=32, fc_width=8, width_mult=0.25)
    with pytest.raises(ValueError, match=r"fc6 \(classifier.0.weight\).*--fc-width 16"):
        init_from_checkpoint(wrong, path)


def test_two_epochs_equal_one_plus_resume_plus_one_bit_for_bit(tmp_path):
    straight = Trainer(tiny_recipe(tmp_path / "s", epochs=2), log=lambda *_: None)
    straight.run()
    first = Trainer(tiny_recipe(tmp_path / "r", epochs=1), log=lambda *_: None)
    first.run()
    resumed = Trainer(tiny_recipe(tmp_path / "r", epochs=2), resume=str(tmp_path / "r"),
                      log=lambda *_: None)
    resumed.run()
    assert_same_weights(weights(straight), weights(resumed))
    v1 = straight.optimizer.state_dict()["velocity"]
    v2 = resumed.optimizer.state_dict()["velocity"]
    for a, b in zip(v1, v2):
        np.testing.assert_array_equal(a, b)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]


def test_signal_mid_epoch_saves_and_resume_is_exact(tmp_path):
    straight = Trainer(tiny_recipe(tmp_path / "s", epochs=1), log=lambda *_: None)
    straight.run()
    t = Trainer(tiny_recipe(tmp_path / "i", epochs=1), log=lambda *_: None)
    real_step = t.train_step
    calls = []

    def step_then_signal(x, y):
        out = real_step(x, y)
        calls.append(1)
        if len(calls) == 2:  # as if Ctrl-C arrived during the second step
            t._handle_signal(signal.SIGINT, None)
        return out
    t.train_step = step_then_signal
    with pytest.raises(KeyboardInterrupt):
        t.run()
    ck = load_checkpoint(tmp_path / "i")
    assert (ck.meta["epoch"], ck.meta["batch"], ck.meta["global_step"]) == (0, 2, 2)
    resumed = Trainer(tiny_recipe(tmp_path / "i", epochs=1), resume=str(tmp_path / "i"),
                      log=lambda *_: None)
    resumed.run()
    assert_same_weights(weights(straight), weights(resumed))


def test_max_steps_stops_and_saves(tmp_path):
    t = Trainer(tiny_recipe(tmp_path / "m", max_steps=2), log=lambda *_: None)
    assert t.run() == []
    assert load_checkpoint(tmp_path / "m").meta["global_step"] == 2


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    Trainer(tiny_recipe(tmp_path / "n", epochs=1), log=lambda *_: None).run()
    ckpt = tmp_path / "n" / "last.npz"
    good = ckpt.read_bytes()
    t = Trainer(tiny_recipe(tmp_path / "n", epochs=2), resume=str(tmp_path / "n"),
                log=lambda *_: None)
    setup = t._setup

    def poisoned_setup():
        setup()
        t.model.features[0].weight.data[0, 0, 0, 0] = np.nan
    t._setup = poisoned_setup
    with pytest.raises(TrainingDiverged, match=r"nan at step 4 \(epoch 2, batch 1\)"):
        t.run()
    assert ckpt.read_bytes() == good


@pytest.mark.parametrize("kw,match", [
    (dict(crop=48, scale="40"), "crop 48 is larger than the smallest training scale S=40"),
    (dict(scale="512:256"), r"needs S_min <= S_max, got \(512, 256\); write it as 256:512"),
    (dict(cfg="Z"), "valid ones are A, A-LRN, B, C, D, E"),
    (dict(data="imagefolder:/nonexistent/dir"), "does not exist"),
    (dict(data="cifar10"), "needs a directory"),
    (dict(micro_batch=100), "--micro-batch"),
])
def test_invalid_recipes_are_rejected_before_training(tmp_path, kw, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        Trainer(tiny_recipe(tmp_path / "x", **kw))
    assert not (tmp_path / "x").exists()  # nothing was started


def test_empty_class_folder_is_rejected(tmp_path):
    from PIL import Image
    for split in ("train", "val"):
        (tmp_path / "d" / split / "cat").mkdir(parents=True)
        (tmp_path / "d" / split / "dog").mkdir(parents=True)
        Image.new("RGB", (40, 40)).save(tmp_path / "d" / split / "cat" / "a.png")
    with pytest.raises(ValueError, match="dog"):
        Trainer(tiny_recipe(tmp_path / "o", data=f"imagefolder:{tmp_path / 'd'}")).run()


def test_imagefolder_run_with_a_corrupt_image_skips_and_counts(tmp_path, capfd):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / "d" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.jpg")
    (tmp_path / "d" / "train" / "cat" / "bad.jpg").write_bytes(b"not a jpeg at all")
    r = tiny_recipe(tmp_path / "o", data=f"imagefolder:{tmp_path / 'd'}", epochs=2,
                    mean_images=0)
    capfd.readouterr()
    history = Trainer(r, log=lambda *_: None).run()
    assert [h["skipped_images"] for h in history] == [1, 1]  # counted in every epoch
    err = capfd.readouterr().err
    # Reported once in the run (the mean RGB and two epochs all met it), in one line.
    assert err.count("bad.jpg") == 1 and err.count("\n") == 1, err
    assert err.startswith("warning: skipping unreadable image") and "--strict" in err
    r_strict = tiny_recipe(tmp_path / "o2", data=f"imagefolder:{tmp_path / 'd'}", epochs=1,
                           strict=True)
    with pytest.raises(RunFailed, match="bad.jpg") as e:
        Trainer(r_strict, log=lambda *_: None).run()
    # --strict stops like any failure: the steps done are saved, to resume from
    # once the file is fixed.
    assert "replace or remove the file" in str(e.value)
    assert f"--resume {tmp_path / 'o2'}" in str(e.value)
    ck = load_checkpoint(tmp_path / "o2")
    assert ck.meta["epoch"] == 0 and ck.meta["batch"] == ck.meta["global_step"]


def test_parse_scale():
    assert parse_scale("256") == (256, 256) and parse_scale("256:512") == (256, 512)
    assert parse_scale((256, 512)) == (256, 512) and parse_scale(384) == (384, 384)
    with pytest.raises(ValueError, match="S or S_MIN:S_MAX"):
        parse_scale("big")


def test_plot_and_metrics_files(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    r = tiny_recipe(tmp_path / "p", epochs=1, plot=True)
    Trainer(r, log=lambda *_: None).run()
    assert (tmp_path / "p" / "curves.png").stat().st_size > 1000
    row = json.loads((tmp_path / "p" / "metrics.jsonl").read_text())
    assert {"train_loss", "val_top1_err", "val_top5_err", "lr", "time_s"} <= set(row)
    assert json.loads((tmp_path / "p" / "recipe.json").read_text())["cfg"] == "A"


def test_cli_help_documents_every_flag_and_errors_cleanly(tmp_path):
    script = os.path.join(ROOT, "examples", "train_vgg.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                         check=True, env=ENV).stdout
    for flag in ("--cfg", "--data", "--crop", "--scale", "--batch-size", "--micro-batch", "--lr",
                 "--momentum", "--weight-decay", "--epochs", "--max-steps", "--init",
                 "--init-std", "--init-from", "--resume", "--workers", "--seed", "--out",
                 "--plot", "--strict", "--train-size", "--val-size"):
        assert flag in out
    bad = subprocess.run([sys.executable, script, "--crop", "64", "--scale", "48", "--out",
                          str(tmp_path / "c")], capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "crop 64 is larger" in bad.stderr


def test_warmup_ramps_the_rate_and_leaves_the_schedule_alone(tmp_path):
    t = Trainer(tiny_recipe(tmp_path / "w", warmup_steps=4, momentum=0.0, weight_decay=0.0,
                            dropout=0.0), log=lambda *_: None)
    t._setup()
    seen = []
    real_step = t.optimizer.step
    t.optimizer.step = lambda **kw: (seen.append(t.optimizer.lr), real_step(**kw))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.arange(4)
    for step in range(6):
        t.global_step = step
        t.train_step(x, y)
    assert seen == pytest.approx([0.005, 0.01, 0.015, 0.02, 0.02, 0.02])
    assert t.optimizer.lr == 0.02


def test_threads_0_takes_one_thread_for_a_small_step(tmp_path, monkeypatch):
    """--threads 0: a step below AUTO_ONE_THREAD_MACS runs on one thread; a
    bigger one takes what auto_threads finds free (stubbed here to 2)."""
    import types
    import minivgg.train.trainer as train_mod
    from minivgg import threads as th
    from minivgg.train import AUTO_ONE_THREAD_MACS
    before = th.threads()
    monkeypatch.setattr(train_mod, "auto_threads", lambda other_work, share: 2)
    try:
        t = Trainer(tiny_recipe(tmp_path / "a", threads=0))
        assert t.step_macs() < AUTO_ONE_THREAD_MACS and th.threads() == 1
        # Table 1's VGG-A at 32x32, FC 128, batch 64: 9.8e9 (0.63e9 at width x0.25).
        run = types.SimpleNamespace(recipe=Recipe(cfg="A", crop=32, batch_size=64, fc_width=128,
                                                  width_mult=1.0, threads=0),
                                    comm=types.SimpleNamespace(size=1, local_size=1),
                                    other_work=th.OtherWork())
        run.step_macs = lambda: Trainer.step_macs(run)
        assert 9.7e9 < run.step_macs() < 9.9e9
        Trainer._set_threads(run)
        assert th.threads() == 2
        run.recipe.width_mult = 0.25       # the default example's model: one thread
        assert 0.6e9 < run.step_macs() < AUTO_ONE_THREAD_MACS
        Trainer._set_threads(run)
        assert th.threads() == 1
        run.recipe.width_mult = 0.5        # x0.5: 2.5e9, two threads
        assert AUTO_ONE_THREAD_MACS < run.step_macs()
        Trainer._set_threads(run)
        assert th.threads() == 2
        run.recipe.width_mult, run.recipe.batch_size = 0.125, 8     # a toy step: one
        assert run.step_macs() < AUTO_ONE_THREAD_MACS
        Trainer._set_threads(run)
        assert th.threads() == 1
        run.recipe.threads = 2                  # a given count is kept, whatever the size
        Trainer._set_threads(run)
        assert th.threads() == 2
    finally:
        th.set_threads(None if before == th.cores() else before)
