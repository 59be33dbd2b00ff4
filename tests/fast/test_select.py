"""The door itself (minivgg/fast/select.py): the one CONV setting, the
reasons it gives, and ``python -m minivgg.summary --algorithms``, which
prints the selector's choice for every layer."""
import csv

import pytest

import minivgg
from minivgg.backend import device
from minivgg.fast import select
from minivgg.summary import format_algorithms, layer_rows, main

CPU = device("cpu")


def test_forcing_an_algorithm_applies_where_it_can_and_leaves_the_rule_elsewhere(monkeypatch):
    monkeypatch.setattr(select, "CONV", "winograd2")
    assert select.choose_conv(CPU, (8, 64, 8, 8), (64, 64, 3, 3)) == (
        "winograd2", "forced (select.CONV = 'winograd2')")
    # F(2x2) needs an even output: the rule decides there
    assert select.choose_conv(CPU, (8, 64, 7, 7), (64, 64, 3, 3))[0] == \
        select._auto((8, 64, 7, 7), (64, 64, 3, 3), (1, 1), (1, 1))[0]
    monkeypatch.setattr(select, "CONV", "winograd3")
    with pytest.raises(ValueError, match="select.CONV = 'winograd3'; expected 'auto' or one of "
                                         "im2col, im2col-channels-last, whole-map"):
        select.choose_conv(CPU, (8, 64, 8, 8), (64, 64, 3, 3))


def test_every_reason_names_the_threshold_that_decided():
    cases = {
        ((8, 3, 32, 32), (64, 3, 3, 3)): ("im2col", "3 input channels < 8"),
        ((64, 16, 16, 16), (32, 16, 3, 3)): ("winograd4", "16,384 output pixels >= 256"),
        ((4, 512, 4, 4), (512, 512, 3, 3)): ("winograd2", "512 channels >= 256, output 4 >= 2"),
        ((64, 128, 2, 2), (128, 128, 3, 3)): ("whole-map", "every output pixel sees every"),
        ((4, 16, 16, 16), (32, 16, 3, 3)): ("im2col-channels-last", "16 input channels"),
        ((8, 16, 16, 16), (32, 16, 3, 3), (2, 2)): ("im2col", "stride (2, 2)"),
    }
    for shapes, (name, why) in cases.items():
        got, reason = select.choose_conv(CPU, *shapes)
        assert got == name and why in reason, (shapes, got, reason)
    assert select.choose_conv(device("emu"), (8, 3, 32, 32), (64, 3, 3, 3))[0] == "gpu"


def test_an_empty_winograd_table_switches_winograd_off(monkeypatch):
    """bench_train.py --winograd-ablation empties WINOGRAD_SIZES: every layer
    Winograd would take goes to the other rules, with a reason that says so."""
    monkeypatch.setattr(select, "WINOGRAD_SIZES", ())
    assert select._winograd_rule((64, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1)) == (
        None, "WINOGRAD_SIZES is empty (Winograd switched off)")
    for x, w in [((64, 16, 16, 16), (32, 16, 3, 3)), ((4, 512, 4, 4), (512, 512, 3, 3))]:
        assert select.choose_conv(CPU, x, w)[0] not in ("winograd2", "winograd4")


@pytest.mark.parametrize("ops", ["fast", "reference"])
def test_summary_algorithms_prints_the_selectors_choice_for_every_layer(ops, capsys):
    args = ["--cfg", "A", "--input", "32", "--batch", "64", "--width-mult", "0.25",
            "--fc-width", "128", "--classes", "10", "--algorithms", "--ops", ops,
            "--format", "csv"]
    assert main(args) == 0
    table = list(csv.reader(capsys.readouterr().out.strip().splitlines()))
    assert table[0] == ["layer", "Table 1", "input (N, C, H, W)", "runs", "why"]
    rows = [r for r in layer_rows("A", 32, 10, 0.25, 128) if r.notation.startswith("conv")]
    by_name = {line[0]: line[3] for line in table[1:]}
    c = 3
    with minivgg.use_ops(ops):
        for r in rows:
            x_shape = (64, c, r.shape[1], r.shape[2])
            name, _ = select.choose_conv(CPU, x_shape, (r.shape[0], c, 3, 3))
            assert by_name[r.name] == select.CONV_NAMES[name], (r.name, by_name[r.name])
            c = r.shape[0]
    assert len(by_name) == 16     # 8 convolutions, 5 pools, 3 FC layers
    assert main(["--algorithms", "--batch", "0"]) == 2
    assert "--batch must be >= 1, got 0" in capsys.readouterr().err


def test_summary_algorithms_in_text_names_the_tier_and_device():
    text = format_algorithms("D", 224, batch=8, device="cpu", ops="fast")
    assert "Winograd F(4x4,3x3)" in text and "im2col + GEMM" in text
    assert text.rstrip().endswith("VGG-D, batch 8, 224x224 input, on cpu, fast tier "
                                  "(python -m minivgg.summary --algorithms; "
                                  "minivgg/fast/select.py).")
