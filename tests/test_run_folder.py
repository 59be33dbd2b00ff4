"""A run folder is safe and a resumed run is the same run (examples/train_vgg.py):
no silent overwrite, best.npz beside last.npz, the recipe restored from the
checkpoint, and one clear line, with nothing changed on disk, for bad input."""
import json
import os
import stat

import numpy as np
import pytest

from conftest import load_example

TINY = ["--width-mult", "0.125", "--fc-width", "16", "--train-size", "32", "--val-size", "8",
        "--batch-size", "16", "--no-progress", "--seed", "5"]


@pytest.fixture(scope="module")
def train():
    return load_example("train_vgg").main


def snapshot(folder):
    return {f: (os.path.getmtime(folder / f), (folder / f).read_bytes())
            for f in sorted(os.listdir(folder))}


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "pickle" not in err
    return lines[0]


def test_a_second_run_in_the_same_folder_is_refused_and_overwrite_replaces_it(train, tmp_path,
                                                                              capsys):
    out = tmp_path / "run"
    assert train(TINY + ["--epochs", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    assert header.startswith("VGG-A") and "146,042 parameters" in header and "32 training" in header
    final = text.strip().splitlines()[-1]
    assert final.startswith("final: last epoch 2:") and "best epoch" in final
    assert {"last.npz", "best.npz", "metrics.jsonl", "recipe.json"} <= set(os.listdir(out))
    before = snapshot(out)
    assert train(TINY + ["--out", str(out)]) == 2
    msg = one_error_line(capsys)
    assert f"{out} already holds a run" in msg and f"--resume {out}" in msg and "--overwrite" in msg
    assert snapshot(out) == before
    assert train(TINY + ["--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1]  # the old run's rows are gone


def test_best_npz_holds_the_epoch_with_the_lowest_validation_error(train, tmp_path, capsys):
    out = tmp_path / "b"
    assert train(TINY + ["--epochs", "3", "--out", str(out)]) == 0
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["val_top1_err"])
    from minivgg.checkpoint import load_checkpoint
    ck = load_checkpoint(out / "best.npz")
    assert ck.meta["epoch"] == best["epoch"]
    assert ck.meta["best"]["val_top1_err"] == best["val_top1_err"]
    assert load_checkpoint(out / "last.npz").meta["epoch"] == 3


def test_resume_restores_the_recipe_and_may_change_only_some_flags(train, tmp_path, capsys):
    out = tmp_path / "r"
    assert train(TINY + ["--lr", "0.05", "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    # Only --resume and --epochs: every other setting comes from the checkpoint.
    assert train(["--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
    from minivgg.checkpoint import load_checkpoint
    recipe = load_checkpoint(out).meta["train"]["recipe"]
    assert (recipe["width_mult"], recipe["fc_width"], recipe["lr"], recipe["seed"],
            recipe["epochs"]) == (0.125, 16, 0.05, 5, 2)
    capsys.readouterr()
    before = snapshot(out)
    assert train(["--resume", str(out), "--epochs", "3", "--width-mult", "0.25"]) == 2
    msg = one_error_line(capsys)
    assert "--width-mult is 0.25 here but 0.125 in the checkpoint" in msg and "--epochs" in msg
    assert snapshot(out) == before
    # --lr on resume: continue at that rate (a manual step of the schedule).
    assert train(["--resume", str(out), "--epochs", "3", "--lr", "0.005", "--no-progress"]) == 0
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["lr"] == pytest.approx(0.005)


@pytest.mark.parametrize("flags,needle", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "100"], "--lr must be in (0, 10], got 100.0"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    (["--momentum", "inf"], "--momentum must be a finite number"),
    (["--threads", "-1"], "--threads must be >= 0"),
])
def test_absurd_recipe_values_are_refused_before_any_work(train, tmp_path, capsys, flags,
                                                          needle):
    out = tmp_path / "x"
    assert train(TINY + flags + ["--out", str(out)]) == 2
    assert needle in one_error_line(capsys)
    assert not out.exists()


def test_a_text_file_given_to_resume_is_one_line_without_pickle_advice(train, tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("not a checkpoint\n")
    assert train(["--resume", str(f), "--out", str(tmp_path / "o")]) == 2
    msg = one_error_line(capsys)
    assert "is not a minivgg checkpoint" in msg and "not an .npz archive" in msg


def test_divergence_in_a_fresh_folder_says_no_checkpoint_was_written(train, tmp_path, capsys):
    out = tmp_path / "d"
    assert train(TINY + ["--lr", "10", "--init", "gauss", "--init-std", "1000",
                         "--out", str(out)]) == 2
    msg = one_error_line(capsys)
    assert "the loss became" in msg and "no checkpoint was written (the run had not" in msg
    assert not (out / "last.npz").exists()


def test_checkpoints_follow_the_umask(train, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert train(TINY + ["--epochs", "1", "--out", str(tmp_path / "u")]) == 0
    finally:
        os.umask(old)
    for f in ("last.npz", "best.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / "u" / f).st_mode) == 0o644
    np.load(tmp_path / "u" / "last.npz")
