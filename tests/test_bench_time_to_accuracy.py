"""benchmarks/bench_time_to_accuracy.py: minivgg and its PyTorch twin train the same
cell end to end on a generated ImageFolder tree and both are reported; the twin is
the same network (minivgg's weights copied in give minivgg's logits), initialised by
the same scheme, with the same plateau rule; the time-to-target reading."""
import json
import os

import numpy as np
import pytest

from conftest import ROOT, load_example, torch_or_skip
from tiny_datasets import make_tree


def load():
    return load_example("bench_time_to_accuracy", "benchmarks")


def test_trains_both_and_reports_both(tmp_path, capsys):
    torch_or_skip()
    bench = load()
    tree = make_tree(tmp_path / "data")
    md = tmp_path / "bench.md"
    assert bench.main(["--data", f"imagefolder:{tree}", "--profile", "tiny", "--target", "95",
                       "--eval-every", "1", "--out", str(tmp_path / "out"),
                       "--write-md", str(md)]) == 0
    out = capsys.readouterr().out
    assert "| minivgg |" in out and "| torch |" in out
    dump = json.loads((tmp_path / "out" / "time_to_accuracy.json").read_text())
    mv, tv = dump["results"]
    assert (mv["framework"], tv["framework"]) == ("minivgg", "torch")
    for r in (mv, tv):
        # Tiny: 16 images of batch 8 for 2 epochs, validated after every step.
        assert r["steps"] == 4 and r["epochs"] == 2
        assert [p["step"] for p in r["curve"]] == [1, 2, 3, 4]
        assert [p.get("epoch") for p in r["curve"]] == [None, 1, None, 2]
        assert all(0 <= p["val_top1"] <= 100 for p in r["curve"])
        times = [p["train_s"] for p in r["curve"]]
        assert times == sorted(times) and r["train_s"] >= times[-1] > 0
        assert 0 <= r["final_test_top1"] <= 100 and r["threads"]
    assert mv["params"] == tv["params"]
    text = md.read_text()
    assert "## Time to accuracy against PyTorch" in text and "| torch |" in text
    assert bench.METHOD.splitlines()[0] in text
    assert str(tree) not in text and "imagefolder:DIR" in text and "--out OUT" in text


def test_the_docs_describe_the_benchmark_as_it_is():
    bench = load()
    with open(os.path.join(ROOT, "docs", "benchmarks.md"), encoding="utf-8") as f:
        assert "## Time to accuracy against PyTorch\n\n" + bench.METHOD in f.read()


def test_refuses_generated_shapes_and_impossible_targets(capsys):
    bench = load()
    with pytest.raises(SystemExit):
        bench.main(["--data", "synthetic"])
    assert "real images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--data", "imagefolder:x", "--target", "0"])


@pytest.mark.parametrize("cfg", ["A", "A-LRN", "C"])
def test_the_twin_is_minivggs_network(cfg):
    """minivgg's weights copied into the twin give minivgg's logits."""
    torch = torch_or_skip()
    bench = load()
    from minivgg import Tensor
    from minivgg.models import vgg
    ours = vgg(cfg, num_classes=10, fc_width=8, input_size=32, width_mult=0.125, dropout=0.0,
               init="kaiming", seed=0, fc_bias=0.1)
    twin = bench.torch_vgg(torch, cfg, 0.125, 8, 10, 32, 0.0, "kaiming", 0.01, 0.1)
    layers = [m for m in twin if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == len(ours.weight_layers())
    with torch.no_grad():
        for t, (_, m) in zip(layers, ours.weight_layers()):
            t.weight.copy_(torch.from_numpy(np.asarray(m.weight.data)))
            t.bias.copy_(torch.from_numpy(np.asarray(m.bias.data)))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    twin.eval()
    ours.eval()
    got = twin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, ours(Tensor(x)).data, rtol=1e-4, atol=1e-5)


def test_the_twin_initialises_by_the_same_scheme():
    torch = torch_or_skip()
    bench = load()
    torch.manual_seed(0)
    twin = bench.torch_vgg(torch, "A", 0.5, 64, 10, 32, 0.0, "kaiming", 0.01, 0.1)
    convs = [m for m in twin if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in twin if isinstance(m, torch.nn.Linear)]
    for m in convs[2:] + fcs[:2]:  # enough weights for the std to be within 5%
        fan_in = m.weight[0].numel()
        assert float(m.weight.detach().std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in convs + fcs[2:])
    assert all(bool((m.bias == 0.1).all()) for m in fcs[:2])
    twin = bench.torch_vgg(torch, "A", 0.5, 64, 10, 32, 0.0, "gauss", 0.01, 0.0)
    assert float(twin[3].weight.detach().std()) == pytest.approx(0.01, rel=0.05)


def test_the_twins_plateau_rule_is_minivggs():
    from minivgg.optim import SGD, ReduceLROnPlateau
    from minivgg.nn import Linear
    bench = load()
    opt = SGD(Linear(2, 2).parameters(), 0.01)
    ours = ReduceLROnPlateau(opt, "max", 0.1, patience=1, max_reductions=2)
    twin = bench.Plateau(patience=1, max_reductions=2)
    accuracy = [0.1, 0.2, 0.2, 0.20005, 0.3, 0.3, 0.3, 0.29, 0.29, 0.31, 0.31, 0.31, 0.31]
    assert [ours.step(a) for a in accuracy] == [twin.step(a) for a in accuracy]
    assert twin.reductions == 2


def test_time_to_target_is_the_first_validation_at_or_below_it():
    bench = load()
    curve = [{"step": 10, "train_s": 5.0, "val_top1": 70.0},
             {"step": 20, "train_s": 9.0, "val_top1": 40.0},
             {"step": 30, "train_s": 14.0, "val_top1": 35.0}]
    assert bench.time_to(curve, 40.0) == (9.0, 20)
    assert bench.time_to(curve, 36.0) == (14.0, 30)
    assert bench.time_to(curve, 30.0) is None
