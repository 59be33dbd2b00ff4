"""scripts/plateau_probe.py, the tool behind the small profile's defaults
(docs/training.md): it runs a variant end to end and rejects bad ones."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "plateau_probe.py")


def probe(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_a_tiny_variant_trains_and_reports_each_epoch():
    pytest.importorskip("torch", reason="the probe's networks are PyTorch replicas")
    res = probe("--seeds", "0,1", '{"train_size": 40, "batch_size": 20, "width": 2, '
                '"fc_width": 8, "epochs": 2, "lsuv": true, "dropout": 0}')
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and "seed 0" in lines[0] and "seed 1" in lines[1]
    for line in lines:
        errs = [float(e) for e in re.findall(r"([\d.]+)%", line)]
        assert len(errs) == 2 and all(0 <= e <= 100 for e in errs), line


@pytest.mark.parametrize("arg, message", [
    ('{"lr": 0.1, "colour": 1}', "unknown keys ['colour']"),
    ("lr=0.1", "is not JSON"),
])
def test_bad_variants_are_refused_with_the_valid_keys(arg, message):
    res = probe(arg)
    assert res.returncode == 2 and message in res.stderr
    assert "valid" in res.stderr or "JSON" in res.stderr


def test_similarity_reports_every_layer_of_the_default_net():
    res = probe("--similarity", "--seeds", "0")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line.split() for line in res.stdout.splitlines()
            if line.startswith(("input", "features", "classifier"))]
    # input, the 21 feature layers of VGG-A (8 conv, 8 ReLU, 5 pools), the 7 classifier layers
    assert len(rows) == 1 + 21 + 7
    cos = [float(r[-2]) for r in rows]
    assert abs(cos[0]) < 0.1 and cos[-1] > 0.5  # images look alike at the top, not at the input
    assert probe("--similarity", '{"lr": 0.1}').returncode == 2
    assert probe().returncode == 2
