"""Subsets and folders mean what they say: --limit and --train-size take a
seeded, class-stratified sample (the first N files of a sorted folder would
be one class), imagefolder:DIR is the data set root in training and in
evaluation, and evaluation stops cleanly on Ctrl-C or SIGTERM."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, load_example
from minivgg.data import ImageFolder, split_folder, stratified_subset


class Labelled:
    """A data set that is only labels: 50 of class 0, 30 of class 1, 20 of class 2."""
    classes = ["a", "b", "c"]
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return None, int(self.labels[i])

    def describe(self, i):
        return f"#{i}"


def test_stratified_subset_keeps_each_class_share():
    ds = Labelled()
    s = stratified_subset(ds, 10, seed=0)
    assert np.bincount(s.labels, minlength=3).tolist() == [5, 3, 2]  # 50%, 30%, 20%
    assert list(s.indices) == sorted(s.indices) and len(set(s.indices)) == 10
    assert (s.labels == ds.labels[s.indices]).all()
    # Largest remainders: 7 = 3.5 + 2.1 + 1.4 -> 3, 2, 1 and one more to class 0.
    assert np.bincount(stratified_subset(ds, 7, seed=1).labels, minlength=3).tolist() == [4, 2, 1]
    assert list(stratified_subset(ds, 10, seed=0).indices) == list(s.indices)      # seeded
    assert list(stratified_subset(ds, 10, seed=1).indices) != list(s.indices)
    assert "class-stratified sample of 10 of 100 images (seed 0)" in s.note
    assert s.describe(0) == f"#{s.indices[0]}"
    with pytest.raises(ValueError, match="expected 1..100"):
        stratified_subset(ds, 0)


def write_folder(root, splits=("train", "val"), per_class=(6, 3), classes=("ant", "bee", "cat")):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in zip(splits, per_class):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 44, 3), dtype=np.uint8)).save(
                    d / f"{i}.png")


def test_imagefolder_is_the_data_set_root_with_clear_errors(tmp_path):
    write_folder(tmp_path / "ds", splits=("train", "test"))
    assert split_folder(tmp_path / "ds") == (str(tmp_path / "ds" / "test"), "test")
    assert split_folder(tmp_path / "ds", "train")[1] == "train"
    with pytest.raises(FileNotFoundError, match=r"has no val/ split \(it has train/, test/\)"):
        split_folder(tmp_path / "ds", "val")
    # Given one split instead of the root: say so, and what to type.
    with pytest.raises(FileNotFoundError, match=rf"use imagefolder:{tmp_path / 'ds'} --split "
                                                r"test"):
        split_folder(tmp_path / "ds" / "test")


def test_train_size_takes_a_stratified_sample_of_a_folder(tmp_path):
    from minivgg.train import Recipe, make_datasets
    write_folder(tmp_path / "ds")
    r = Recipe(data=f"imagefolder:{tmp_path / 'ds'}", train_size=6, seed=4)
    train, val = make_datasets(r)
    assert len(train) == 6 and np.bincount(train.labels).tolist() == [2, 2, 2]
    assert len(val) == 9 and val.root == str(tmp_path / "ds" / "val")
    full, _ = make_datasets(Recipe(data=f"imagefolder:{tmp_path / 'ds'}"))
    assert isinstance(full, ImageFolder) and len(full) == 18


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train = load_example("train_vgg").main
    assert train(["--width-mult", "0.125", "--fc-width", "16", "--train-size", "16",
                  "--val-size", "8", "--batch-size", "8", "--epochs", "1", "--no-progress",
                  "--out", str(out / "r")]) == 0
    return out / "r" / "last.npz"


def test_evaluate_limit_is_a_stratified_sample_and_says_so(tmp_path, checkpoint, capsys):
    # A sorted folder: the first 6 files are all "ant"; the sample has every class.
    write_folder(tmp_path / "ds", splits=("train", "val"), per_class=(1, 6))
    ev = load_example("evaluate_vgg")
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the model has 10 classes, the folder 3: refused ...
        ev.main(["--checkpoint", str(checkpoint), "--data", f"imagefolder:{tmp_path / 'ds'}",
                 "--limit", "6", "--no-progress"])
    assert "labels would not match" in capsys.readouterr().err
    # ... so check the sample itself, and the report line on synthetic data.
    folder, split = split_folder(tmp_path / "ds")
    sample = stratified_subset(ImageFolder(folder), 6, 0)
    assert split == "val" and np.bincount(sample.labels).tolist() == [2, 2, 2]
    report = ev.main(["--checkpoint", str(checkpoint), "--limit", "5", "--no-progress"])
    out = capsys.readouterr().out
    assert "a class-stratified sample of 5 of 8 images (seed 0)" in out
    assert len(report.labels) == 5


def test_evaluation_stops_on_sigterm_with_one_line_and_status_130(tmp_path, checkpoint):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "examples", "evaluate_vgg.py"), "--checkpoint",
         str(checkpoint), "--protocol", "multicrop", "--val-size", "3000", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    first = proc.stdout.readline()          # "data: ...": the evaluation has started
    assert first.startswith("data: synthetic")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted after") and "Traceback" not in err
