"""scripts/summarise_run.py: the tables behind docs/benchmarks.md's training runs."""
import json
import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "summarise_run.py")


def fake_run(folder, seed, errs, threads=0):
    folder.mkdir()
    with open(folder / "metrics.jsonl", "w") as f:
        for i, e in enumerate(errs, 1):
            f.write(json.dumps({"epoch": i, "train_loss": 1.0, "train_top1_err": e,
                                "val_top1_err": e, "val_top5_err": e / 10, "lr": 0.01,
                                "time_s": 10.0, "images_per_s": 100.0}) + "\n")
    (folder / "recipe.json").write_text(json.dumps({"seed": seed, "threads": threads}))
    return str(folder)


def summarise(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=60)


def test_one_run_gives_its_epochs(tmp_path):
    res = summarise(fake_run(tmp_path / "a", 0, [0.8, 0.5, 0.2]))
    assert res.returncode == 0
    assert "| 2 | 1.000 | 50.0% | 50.00% | 5.00% | 0.01 | 10 | 100 |" in res.stdout
    assert "Training time over 3 epochs: 30 s" in res.stdout


def test_several_runs_give_mean_and_spread(tmp_path):
    a = fake_run(tmp_path / "s0", 0, [0.8, 0.3, 0.2])
    b = fake_run(tmp_path / "s1", 1, [0.7, 0.1, 0.15], threads=2)
    res = summarise(a, b)
    assert res.returncode == 0
    assert "| s0 | 0 | auto | 3 | 80.0% | 20.0% | 2.0% | 20.0% | 30 |" in res.stdout
    assert "| s1 | 1 | 2 | 3 | 70.0% | 15.0% | 1.5% | 10.0% | 30 |" in res.stdout  # best: epoch 2
    assert "| **mean** | | | | 75.0% | 17.5% | 1.8% | 15.0% | 30 |" in res.stdout
    assert "| **max** | | | | 80.0% | 20.0% | 2.0% | 20.0% | 30 |" in res.stdout


def test_a_folder_without_a_run_is_one_line(tmp_path):
    res = summarise(str(tmp_path))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "expected the --out folder" in res.stderr
