"""examples/reproduce_paper.py end to end, at the tiny profile: every network of
every comparison trained, evaluated with each protocol, fused, tabulated beside
the paper's figures, plotted; a second call reuses the trained runs."""
import json

from conftest import load_example


def load():
    return load_example("reproduce_paper")


def test_tiny_reproduction_end_to_end(tmp_path, capsys):
    rp = load()
    doc = tmp_path / "doc" / "reproduction.md"
    argv = ["--profile", "tiny", "--seeds", "2", "--out", str(tmp_path / "runs"),
            "--doc", str(doc)]
    assert rp.main(argv) == 0
    text = doc.read_text()
    # Each comparison's table, with the paper's transcribed figure beside minivgg's.
    for heading in ("## Depth and initialisation", "## LRN", "## 1x1 against 3x3",
                    "## Fixed against jittered", "## One against three test scales",
                    "## Dense, multi-crop, both", "## Fusion of two nets", "## What reproduces"):
        assert heading in text
    assert "| A-LRN | 29.7 | 10.5 |" in text
    assert "| D, S in [36, 72], dense + multi-crop | 24.4 | 7.2 |" in text
    assert "transcribed from the paper" in text and "load average" in text
    assert text.count("reproduce") >= 10
    results = json.loads((tmp_path / "doc" / "reproduction_results.json").read_text())
    assert len(results["results"]) == 2
    keys = set(results["results"][0])
    assert {"A|single", "D-glorot|single", "D-jit|multi", "D-jit|dense+multicrop",
            "E|multicrop", "fusion|dense+multicrop"} <= keys
    for seed_results in results["results"]:
        for v in seed_results.values():
            assert 0.0 <= v["top1"] <= 100.0 and v["top5"] <= v["top1"]
    for png in ("reproduction_errors.png", "reproduction_curves.png"):
        assert (tmp_path / "doc" / png).stat().st_size > 1000
    # The page and its figures can be rebuilt from the JSON alone.
    again = tmp_path / "again" / "reproduction.md"
    assert rp.main(["--profile", "tiny", "--doc", str(again), "--from-results",
                    str(tmp_path / "doc" / "reproduction_results.json")]) == 0
    assert again.read_text().split("## Figures")[0] == text.split("## Figures")[0]
    # Runs already trained are kept, not trained again.
    capsys.readouterr()
    assert rp.main(argv) == 0
    assert capsys.readouterr().out.count("trained already, kept") == 2 * len(
        rp.PROFILES["tiny"]["runs"])


def test_dense_plus_multicrop_row_is_the_protocols_average(tmp_path):
    """reproduce_paper averages the dense and multi-crop posteriors instead of running
    evaluate(..., "dense+multicrop"), which would run the 150 crops again."""
    import numpy as np

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


def test_full_profile_plan_covers_every_comparison():
    rp = load()
    full = rp.PROFILES["full"]
    assert set(full["runs"]) == set(rp.RUNS) and tuple(full["fusion"]) == ("D-jit", "E-jit")
    plan = {(name, label) for name, label, *_ in rp.evaluation_plan(full)}
    for name in ("D-jit", "E-jit"):
        assert {(name, "single"), (name, "multi"), (name, "dense"), (name, "multicrop")} <= plan
    assert ("E-glorot", "single") in plan and ("B-glorot", "multi") not in plan
    # Every run started from A names a run that is trained before it.
    for prof in rp.PROFILES.values():
        for i, name in enumerate(prof["runs"]):
            source = rp.RUNS[name][3]
            assert source is None or source in prof["runs"][:i]
