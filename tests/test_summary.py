"""python -m minivgg.summary: Table 2 totals, receptive fields and multiply-adds,
each checked against numbers computed here independently of minivgg.summary."""
import numpy as np
import pytest

from minivgg import summary
from minivgg.models import CONFIGS, DEPTHS, vgg
from minivgg.nn import Conv2d, Linear, MaxPool2d

# Table 2 in exact counts (tests/test_vgg.py builds the models and checks them too).
PARAMS_224 = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
              "D": 138_357_544, "E": 143_667_240}


def independent_mult_adds(cfg, size=224, classes=1000):
    """Walk the built model: conv weight size x output pixels, FC weight size."""
    m = vgg(cfg, num_classes=classes, input_size=size, init=None)
    s, total = size, 0
    for mod in m.features:
        if isinstance(mod, MaxPool2d):
            s //= 2
        elif isinstance(mod, Conv2d):
            total += mod.weight.size * s * s
    for mod in m.classifier:
        if isinstance(mod, Linear):
            total += mod.weight.size
    return total


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_totals_equal_table2_and_depth(cfg):
    t = summary.totals(summary.layer_rows(cfg))
    assert t["params"] == PARAMS_224[cfg]
    assert round(t["params"] / 1e6) == summary.TABLE2_MILLIONS[cfg]
    assert t["weight_layers"] == DEPTHS[cfg]


@pytest.mark.parametrize("cfg, giga", [("A", 7.6), ("D", 15.5), ("E", 19.6)])
def test_forward_mult_adds_at_224(cfg, giga):
    macs = summary.totals(summary.layer_rows(cfg))["mult_adds"]
    assert macs == independent_mult_adds(cfg)
    assert round(macs / 1e9, 1) == giga


def test_receptive_field_of_pool5():
    def rf(cfg):
        # r grows by (k - 1) * j for a k x k layer of stride s, and j *= s.
        r, j = 1, 1
        for item in CONFIGS[cfg]:
            if item == "M":
                r, j = r + j, j * 2
            elif item != "LRN":
                k = item[1] if isinstance(item, tuple) else 3
                r += (k - 1) * j
        return r
    rows = {c: {r.name: r for r in summary.layer_rows(c)} for c in CONFIGS}
    assert rows["D"]["pool5"].receptive_field == 212 == rf("D")
    assert rows["E"]["pool5"].receptive_field == 268 == rf("E")
    assert rows["D"]["conv1_2"].receptive_field == 5  # two 3x3 layers see 5x5 (§2.3)
    assert rows["E"]["conv3_4"].receptive_field == rows["D"]["conv3_3"].receptive_field + 8
    # C's 1x1 layers add no spatial context: conv3_3 sees what conv3_2 sees.
    assert rows["C"]["conv3_3"].receptive_field == rows["C"]["conv3_2"].receptive_field


@pytest.mark.parametrize("cfg", ["A-LRN", "C"])
def test_rows_match_a_built_small_model(cfg):
    kw = dict(input_size=32, num_classes=10, width_mult=0.25, fc_width=16)
    m = vgg(cfg, init="gauss", seed=0, **kw)
    rows = summary.layer_rows(cfg, 32, 10, 0.25, 16)
    by_name = {r.name: r for r in rows}
    for name, mod in m.paper_layer_names().items():
        assert by_name[name].params == sum(p.size for p in mod.parameters())
    assert summary.totals(rows)["params"] == m.num_parameters()
    # Output shapes: run the conv stack and compare with pool5's row.
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert tuple(m.features(x).shape[1:]) == by_name["pool5"].shape
    assert [r.notation for r in rows][-1] == "soft-max"


def test_activation_memory_counts_value_and_gradient():
    rows = summary.layer_rows("D")
    conv1_1 = rows[0]
    assert conv1_1.values == 64 * 224 * 224
    assert conv1_1.train_bytes == 2 * 4 * 64 * 224 * 224


def test_cli_formats_and_all(capsys):
    assert summary.main(["--profile", "paper", "--cfg", "D"]) == 0
    out = capsys.readouterr().out
    assert "conv3_3" in out and "138,357,544" in out and "Table 2: 138 M" in out
    assert summary.main(["--profile", "paper", "--cfg", "A", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Table 1,layer,output,params")
    assert lines[-1].split(",")[3] == "132863336"
    assert summary.main(["--profile", "paper", "--all", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "**conv1-256**" in out and "**LRN**" in out and "(Table 2: 144 M)" in out
    assert "19.63 G mult-adds" in out
    assert summary.main(["--cfg", "D", "--input", "16"]) == 2
