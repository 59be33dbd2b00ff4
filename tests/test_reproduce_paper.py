"""examples/reproduce_paper.py: the tiny profile end to end (every network of every
comparison trained, evaluated with each protocol, fused, tabulated beside the paper's
figures, plotted) on generated shapes, a generated ImageFolder tree and a generated
binary CIFAR-10 archive; cells that survive a killed run are not trained again;
--cells; the statistics and verdicts against hand computations."""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, load_example
from tiny_datasets import make_cifar, make_tree


def load():
    return load_example("reproduce_paper")


def verdicts(text):
    return [line.rsplit("**", 2)[1] for line in text.splitlines()
            if line.startswith("| ") and line.endswith("** |")]


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------

def test_tiny_reproduction_end_to_end(tmp_path, capsys):
    rp = load()
    doc = tmp_path / "doc" / "reproduction.md"
    argv = ["--profile", "tiny", "--seeds", "2", "--out", str(tmp_path / "runs"),
            "--doc", str(doc)]
    assert rp.main(argv) == 0
    out = capsys.readouterr().out
    assert "ETA" in out and "cells done 16/16" in out
    text = doc.read_text()
    for heading in ("## Verdicts", "## Table 3", "## Table 4", "## Table 5", "## Table 6",
                    "## Figures", "## Time", "## Scaling up"):
        assert heading in text
    # The paper's transcribed figures beside minivgg's, with the command and machine.
    assert "| A-LRN, random init (at chance) | 29.7 | 10.5 |" in text
    assert "| D, S in [36, 72], dense + multi-crop (at chance) | 24.4 | 7.2 |" in text
    assert "transcribed from the paper" in text and "load average" in text
    assert "--profile tiny --seeds 2" in text
    # Nothing is learnt at this size: no verdict but "not measurable".
    words = verdicts(text)
    assert len(words) >= 10 and set(words) == {"not measurable"}
    results = json.loads((tmp_path / "doc" / "reproduction_results.json").read_text())
    assert results["seeds"] == [0, 1]
    keys = set(results["results"]["0"])
    assert {"A|single", "D-glorot|single", "D-jit|multi", "D-jit|dense+multicrop",
            "E|multicrop", "fusion|dense+multicrop"} <= keys
    for seed_results in results["results"].values():
        for v in seed_results.values():
            assert 0.0 <= v["top1"] <= 100.0 and v["top5"] <= v["top1"]
    for png in ("table3", "table4", "table5", "table6", "comparisons", "curves"):
        assert (tmp_path / "doc" / f"reproduction_{png}.png").stat().st_size > 1000
    # Every cell is its own folder; the page can be rebuilt from the cells alone, and
    # from the JSON alone.
    for seed in (0, 1):
        for name in rp.PROFILES["tiny"]["runs"]:
            assert (tmp_path / "runs" / "tiny" / f"seed{seed}" / name / "cell.json").exists()
    again = tmp_path / "again" / "reproduction.md"
    assert rp.main(argv[:-1] + [str(again), "--report"]) == 0
    assert again.read_text().split("## Figures")[0] == text.split("## Figures")[0]
    third = tmp_path / "third" / "reproduction.md"
    assert rp.main(["--doc", str(third), "--from-results",
                    str(tmp_path / "doc" / "reproduction_results.json")]) == 0
    assert third.read_text().split("## Figures")[0] == text.split("## Figures")[0]


def test_real_data_imagefolder_holds_out_validation_and_tests_on_the_test_folder(tmp_path):
    rp = load()
    tree = make_tree(tmp_path / "data")
    data = f"imagefolder:{tree}"
    prof = rp.PROFILES["tiny"]
    train0, val0 = rp.seed_data(data, prof, 0)
    train1, _ = rp.seed_data(data, prof, 1)
    assert len(train0) == prof["train_size"] and len(val0) == prof["val_size"]
    # The held-out images are training-folder images the seed does not train on.
    t, v = set(train0.ds.indices.tolist()), set(val0.ds.dataset.indices[val0.ds.indices])
    assert not t & v and all(i < 40 for i in t | v)
    assert train0.ds.indices.tolist() != train1.ds.indices.tolist()
    # The evaluation images come from the test folder, the same for every seed.
    ev0, crops0 = rp.eval_data(data, prof, 0)
    ev1, _ = rp.eval_data(data, prof, 1)
    assert ev0 is ev1 and len(ev0) == prof["eval_images"] and len(crops0) == 2
    assert all("/test/" in ev0.describe(i) for i in range(len(ev0)))
    doc = tmp_path / "out" / "reproduction.md"
    assert rp.main(["--profile", "tiny", "--data", data, "--seeds", "1", "--cells", "D",
                    "--out", str(tmp_path / "runs"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "measured on CIFAR-10" in text  # the folder's classes are CIFAR-10's
    # This machine's folders are not written into the page.
    assert str(tmp_path) not in text and "--data imagefolder:DIR" in text
    assert "--out OUT" in text and "DIR: the folder of the data set" in text
    assert "held out" in text
    done = sorted(p.parent.name for p in (tmp_path / "runs" / "tiny").rglob("cell.json"))
    assert done == ["A", "D"]


def test_real_data_cifar10_binary_archive(tmp_path):
    rp = load()
    root = make_cifar(tmp_path / "cifar")
    doc = tmp_path / "out" / "reproduction.md"
    assert rp.main(["--profile", "tiny", "--data", f"cifar10:{root}", "--seeds", "1",
                    "--cells", "A-LRN", "--out", str(tmp_path / "runs"), "--doc", str(doc)]) == 0
    cell = json.loads((tmp_path / "runs" / "tiny" / "seed0" / "A-LRN" / "cell.json").read_text())
    assert cell["spec"]["data"] == f"cifar10:{root}" and cell["results"]["single"]["images"] == 4
    assert "`cifar10:" in doc.read_text()
    # A missing archive is named before any work.
    with pytest.raises(SystemExit):
        rp.main(["--profile", "tiny", "--data", f"cifar10:{tmp_path / 'nowhere'}",
                 "--out", str(tmp_path / "runs")])


def test_cifar_profile_needs_real_images(capsys):
    rp = load()
    with pytest.raises(SystemExit):
        rp.main(["--profile", "cifar"])
    assert "real images" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Resumable cells
# ---------------------------------------------------------------------------

def _spy_trainings(rp, monkeypatch):
    trained = []
    real = rp.train_cell

    def counting(recipe, *a, **k):
        trained.append(os.path.basename(recipe.out))
        return real(recipe, *a, **k)
    monkeypatch.setattr(rp, "train_cell", counting)
    return trained


def test_killed_run_started_again_recomputes_no_finished_cell(tmp_path, monkeypatch):
    rp = load()
    out = tmp_path / "runs"
    argv = ["--profile", "tiny", "--seeds", "1", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "reproduce_paper.py"),
                             *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    done_lines = 0
    for line in proc.stdout:
        if "cells done" in line and " top-1 (evaluated in" in line:
            done_lines += 1
            if done_lines == 3:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    proc.stdout.close()
    runs = rp.PROFILES["tiny"]["runs"]
    folders = {n: out / "tiny" / "seed0" / n for n in runs}
    finished = {n for n, f in folders.items() if (f / "cell.json").exists()}
    assert len(finished) >= 3 and len(finished) < len(runs), finished
    stamps = {n: (folders[n] / "cell.json").read_bytes() for n in finished}
    # The killed session's time is kept up to its last finished cell.
    (killed,) = rp.read_sessions(str(out / "tiny"))
    assert killed["cells_run"] == len(finished) and killed["wall_s"] > 0
    trained = _spy_trainings(rp, monkeypatch)
    assert rp.main(argv) == 0
    assert [s["cells_run"] for s in rp.read_sessions(str(out / "tiny"))] == [
        len(finished), len(runs) - len(finished)]
    assert "in 2 session(s)" in (out / "tiny" / "reproduction.md").read_text()
    assert set(trained) == set(runs) - finished and len(trained) == len(set(trained))
    for n in finished:  # untouched
        assert (folders[n] / "cell.json").read_bytes() == stamps[n]
    # The interrupted run gives what an uninterrupted one gives.
    whole = tmp_path / "whole"
    assert rp.main(["--profile", "tiny", "--seeds", "1", "--out", str(whole)]) == 0
    a = json.loads((out / "tiny" / "reproduction_results.json").read_text())["results"]
    b = json.loads((whole / "tiny" / "reproduction_results.json").read_text())["results"]
    assert a == b
    # A third start trains nothing.
    trained.clear()
    assert rp.main(argv) == 0 and trained == []


def test_an_interrupted_cell_continues_from_its_last_epoch(tmp_path, monkeypatch):
    """A cell whose process died after its first epoch (last.npz, no cell.json) goes
    on from epoch 2, and ends where an uninterrupted cell ends."""
    rp = load()
    prof = dict(rp.PROFILES["tiny"], base_epochs=3, base_drop=2)
    monkeypatch.setitem(rp.PROFILES, "tiny", prof)
    args = ["--profile", "tiny", "--seeds", "1", "--cells", "A"]
    assert rp.main(args + ["--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "tiny" / "seed0" / "A" / "cell.json").read_text())
    assert [h["lr"] for h in whole["history"]] == pytest.approx([0.01, 0.01, 0.001])
    # The same cell, stopped after epoch 1 (the checkpoint a killed process leaves).
    cell = rp.Cell("A", 0)
    ns = rp.argparse.Namespace(data="synthetic", device="cpu")
    recipe = rp.recipe_for(cell, prof, ns, str(tmp_path / "cut" / "tiny"))
    train, val = rp.seed_data("synthetic", prof, 0)
    with rp.trainer_data(train, val):
        rp.train_cell(rp.dataclasses.replace(recipe, epochs=1), 0, log=lambda *a: None)
    epochs = []
    monkeypatch.setattr(rp.CellTrainer, "_end_epoch",
                        lambda self, _real=rp.CellTrainer._end_epoch: (
                            epochs.append(self.epoch + 1), _real(self))[1])
    assert rp.main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert epochs == [2, 3]
    cut = json.loads((tmp_path / "cut" / "tiny" / "seed0" / "A" / "cell.json").read_text())
    assert cut["results"] == whole["results"]
    assert [h["val_top1_err"] for h in cut["history"]] == [h["val_top1_err"]
                                                           for h in whole["history"]]


def test_cells_selects_a_subset_and_adds_what_it_starts_from(tmp_path, capsys, monkeypatch):
    rp = load()
    trained = _spy_trainings(rp, monkeypatch)
    assert rp.main(["--profile", "tiny", "--seeds", "2", "--cells", "B:1",
                    "--out", str(tmp_path)]) == 0
    assert trained == ["A", "B"]
    assert "also running A seed 1 (where B starts from)" in capsys.readouterr().out
    assert sorted(p.parent.parent.name + "/" + p.parent.name
                  for p in (tmp_path / "tiny").rglob("cell.json")) == ["seed1/A", "seed1/B"]
    with pytest.raises(SystemExit):
        rp.main(["--profile", "tiny", "--cells", "F", "--out", str(tmp_path)])
    assert "'F' is not a network of this profile" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rp.main(["--profile", "tiny", "--cells", "A:7", "--out", str(tmp_path)])


def test_a_finished_cell_with_other_settings_is_refused(tmp_path, capsys):
    rp = load()
    argv = ["--profile", "tiny", "--seeds", "1", "--cells", "A", "--out", str(tmp_path)]
    assert rp.main(argv) == 0
    with pytest.raises(SystemExit):
        rp.main(argv + ["--set", "lr=0.02"])
    err = capsys.readouterr().err
    assert "lr 0.01 there, 0.02 here" in err and "--out" in err
    with pytest.raises(SystemExit):
        rp.main(argv + ["--set", "lr=fast"])
    assert "lr needs a float" in capsys.readouterr().err


def test_re_evaluate_keeps_the_training_and_replaces_the_results(tmp_path, capsys, monkeypatch):
    rp = load()
    argv = ["--profile", "tiny", "--seeds", "1", "--cells", "B", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):     # nothing trained yet
        rp.main(argv + ["--re-evaluate"])
    assert "have not finished" in capsys.readouterr().err
    assert rp.main(argv) == 0
    folder = tmp_path / "tiny" / "seed0" / "B"
    before = json.loads((folder / "cell.json").read_text())
    weights = (folder / "last.npz").read_bytes()
    (folder / "eval.npz").unlink()
    # What evaluation gives is planted, so the test sees the results replaced.
    real = rp.evaluate_cell

    def planted(*a, **k):
        out = real(*a, **k)
        for r in out.values():
            r["top1"] = 12.5
        return out
    monkeypatch.setattr(rp, "evaluate_cell", planted)
    trained = _spy_trainings(rp, monkeypatch)
    assert rp.main(argv + ["--re-evaluate"]) == 0
    assert trained == []
    out = capsys.readouterr().out
    assert "[1/2] A seed 0 evaluated again" in out and "[2/2] B seed 0 evaluated again" in out
    after = json.loads((folder / "cell.json").read_text())
    assert (folder / "last.npz").read_bytes() == weights and (folder / "eval.npz").exists()
    assert after["history"] == before["history"] and after["spec"] == before["spec"]
    assert {r["top1"] for r in after["results"].values()} == {12.5}
    assert "re_evaluated" in after
    with pytest.raises(SystemExit):
        rp.main(argv + ["--re-evaluate", "--report"])
    assert "exclude each other" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Statistics and verdicts
# ---------------------------------------------------------------------------

def test_t_quantiles_against_closed_forms_and_tables():
    rp = load()
    for p in (0.6, 0.9, 0.975, 0.995):
        # One degree of freedom: Cauchy, tan(pi (p - 1/2)); two: (2p - 1) / sqrt(2 p (1 - p)).
        assert rp.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert rp.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)),
                                                    rel=1e-9)
        assert rp.t_quantile(1 - p, 2) == pytest.approx(-rp.t_quantile(p, 2), rel=1e-12)
    # Printed tables of Student's t, two-sided 95%.
    assert rp.t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-6)
    assert rp.t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert rp.t_quantile(0.975, 1000) == pytest.approx(1.962339, abs=1e-6)


def test_interval_against_a_hand_computation():
    rp = load()
    # Differences 1, 2, 4: mean 7/3, sd sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3),
    # t(0.975, 2) = 0.95 / sqrt(2 * 0.975 * 0.025) = 4.302653; half-width 4.302653 * sqrt(7/9).
    m, lo, hi = rp.mean_interval([1.0, 2.0, 4.0])
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * math.sqrt(7 / 3) / math.sqrt(3)
    assert m == pytest.approx(7 / 3) and half == pytest.approx(3.794583, abs=1e-6)
    assert (lo, hi) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    m, lo, hi = rp.mean_interval([-3.0, -1.0])  # t(0.975, 1) = 12.7062
    assert (lo, hi) == pytest.approx((-2 - 12.706205, -2 + 12.706205), abs=1e-5)
    m, lo, hi = rp.mean_interval([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)


def test_verdict_rules():
    rp = load()
    assert rp.verdict(-3.0, -0.5, -1.1) == "reproduces"
    assert rp.verdict(0.5, 3.0, +0.1) == "reproduces"
    assert rp.verdict(0.5, 3.0, -1.1) == "contradicts"
    assert rp.verdict(-3.0, -0.5, +0.3) == "contradicts"
    assert rp.verdict(-3.0, 0.5, -1.1) == "inconclusive"
    assert rp.verdict(float("nan"), float("nan"), -1.1) == "inconclusive"
    assert rp.verdict(-3.0, -0.5, -1.1, measurable=False) == "not measurable"
    with pytest.raises(ValueError):
        rp.verdict(-3.0, -0.5, 0.0)


def _results(values):
    """{seed: {(net, label): {"top1", "top5"}}} from {(net, label): [top1 per seed]}."""
    out = {}
    for key, per_seed in values.items():
        for s, v in enumerate(per_seed):
            out.setdefault(s, {})[key] = {"top1": v, "top5": v / 4}
    return out


def test_summary_pairs_seeds_and_refuses_nets_at_chance():
    rp = load()
    prof = rp.PROFILES["cifar"]
    res = _results({
        ("A", "single"): [40.0, 42.0, 41.0], ("A-LRN", "single"): [41.0, 43.0, 42.5],
        ("B", "single"): [39.0, 90.0, 40.0],  # seed 1 sat at chance
        ("D", "single"): [35.0, 36.0, 34.0], ("D-he", "single"): [36.0, 37.0, 38.0],
        ("D-jit", "dense+multicrop"): [30.0, 31.0, 29.0], ("D-jit", "single"): [33.0, 34, 32],
        ("E-jit", "dense+multicrop"): [29.5, 32.0, 30.0], ("E-jit", "single"): [33.0, 34, 32],
        ("fusion", "dense+multicrop"): [28.0, 29.0, 28.5]})
    s = rp.summarise(res, [0, 1, 2], prof)
    comps = {c["id"]: c for c in s["comparisons"]}
    lrn = comps["lrn"]  # +1, +1, +1.5: A-LRN worse in every seed, as in the paper (+0.1)
    assert lrn["diffs"] == {"0": 1.0, "1": 1.0, "2": 1.5} and lrn["verdict"] == "reproduces"
    assert lrn["paper_diff"] == pytest.approx(0.1)
    assert comps["depth-B"]["verdict"] == "not measurable"
    assert comps["depth-B"]["not_learnt"] == ["B seed 1"]
    assert comps["depth-D"]["verdict"] == "not measurable"
    # Fusion against the better net of each seed: min(30, 29.5), min(31, 32), min(29, 30).
    fus = comps["fusion-both"]
    assert fus["diffs"] == {"0": -1.5, "1": -2.0, "2": -0.5}
    assert fus["better_net"] == ["E-jit", "D-jit", "D-jit"]
    assert fus["paper_diff"] == pytest.approx(23.7 - 24.4)
    m, lo, hi = rp.mean_interval([-1.5, -2.0, -0.5])
    assert (fus["mean"], fus["low"], fus["high"]) == (m, lo, hi)
    assert fus["verdict"] == ("reproduces" if hi < 0 else "inconclusive")
    assert "depth-E" not in comps  # E was not measured
    (he,) = s["scratch"]
    assert he["net"] == "D-he" and he["left_chance"] == 3 and he["verdict"] == "reproduces"
    assert he["vs_from_A"]["mean"] == pytest.approx(2.0)
    row = {r["key"]: r for r in s["tables"]["3"]}["B|single"]
    assert row["learnt"] is False and row["mean_top1"] == pytest.approx(169 / 3)


def test_dense_plus_multicrop_row_is_the_protocols_average(tmp_path):
    """reproduce_paper averages the dense and multi-crop posteriors instead of running
    evaluate(..., "dense+multicrop"), which would run the 150 crops again."""
    from minivgg.data import SyntheticShapes
    from minivgg.evaluate import EvalNet, evaluate
    from minivgg.models import vgg
    net = EvalNet(vgg("A", num_classes=10, input_size=32, width_mult=0.0625, fc_width=8, seed=0),
                  [0.5, 0.5, 0.5], train_scale=[36, 72])
    ds = SyntheticShapes(3, 40, seed=0, split="val")
    p = {proto: evaluate(net, ds, proto, [36, 54], progress=False).posteriors[0]
         for proto in ("dense", "multicrop", "dense+multicrop")}
    np.testing.assert_allclose((p["dense"] + p["multicrop"]) / 2, p["dense+multicrop"],
                               rtol=1e-12, atol=1e-15)


def test_every_profile_plans_every_comparison_it_can_measure():
    rp = load()
    for name in ("cifar", "full"):
        prof = rp.PROFILES[name]
        plan = {(net, label) for net, label, *_ in rp.evaluation_plan(prof)}
        plan |= {(net, "dense+multicrop") for net, label in plan if label == "multicrop"}
        plan |= {("fusion", lab) for lab in ("dense", "multicrop", "dense+multicrop")}
        for cid, _, _, x, y in rp.COMPARISONS:
            assert x in plan and (y == "better-of" or y in plan), (name, cid)
    cifar = rp.PROFILES["cifar"]
    assert tuple(cifar["fusion"]) == ("D-jit", "E-jit") and "D-he" in cifar["runs"]
    assert cifar["real_data"] and cifar["learnt_below"] == 50.0
    # §3.1: the jittered nets are fine-tuned from their own configuration's net.
    assert rp.run_info("D-jit", cifar) == ("D", "36:72", "kaiming", "D", "tune")
    assert rp.run_info("D-jit", rp.PROFILES["quick"])[3] == "A"
    # Every run started from another names a run that is trained before it.
    for prof in rp.PROFILES.values():
        for i, name in enumerate(prof["runs"]):
            source = rp.run_info(name, prof)[3]
            assert source is None or source in prof["runs"][:i]


def test_jittered_nets_fine_tuned_from_their_configuration(tmp_path, capsys, monkeypatch):
    """With jit_from="same" (the cifar profile), --cells D-jit brings D and A with it,
    and D-jit starts from all of D's weights at the tune budget's rate."""
    rp = load()
    prof = dict(rp.PROFILES["tiny"], jit_from="same", tune_epochs=1, tune_drop=0,
                tune_patience=0, tune_lr=0.001)
    monkeypatch.setitem(rp.PROFILES, "tiny", prof)
    trained = _spy_trainings(rp, monkeypatch)
    assert rp.main(["--profile", "tiny", "--seeds", "1", "--cells", "D-jit",
                    "--out", str(tmp_path)]) == 0
    assert trained == ["A", "D", "D-jit"]
    out = capsys.readouterr().out
    assert "also running A seed 0 (where D starts from), D seed 0 (where D-jit starts from)" \
        in out
    seed0 = tmp_path / "tiny" / "seed0"
    recipe = json.loads((seed0 / "D-jit" / "recipe.json").read_text())
    assert recipe["init_from"] == str(seed0 / "D" / "last.npz") and recipe["lr"] == 0.001
    cell = json.loads((seed0 / "D-jit" / "cell.json").read_text())
    assert cell["spec"]["from"] == "D" and cell["history"][0]["lr"] == 0.001
    text = (tmp_path / "tiny" / "reproduction.md").read_text()
    assert "fine-tuned from the fixed-S net of their configuration" in text
    assert "D, S in [36, 72], from D, Q = 54" in text
