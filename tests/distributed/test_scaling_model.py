"""The scaling model of docs/distributed.md: its inputs are the paper's
numbers and its formulas the textbook ones (no timing is asserted)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts"))
import scaling_model as sm  # noqa: E402

TABLE_2 = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
           "D": 138_357_544, "E": 143_667_240}


@pytest.mark.parametrize("cfg", list(TABLE_2))
def test_gradient_bytes_are_four_per_parameter_of_table_2(cfg):
    params, _, fc = sm.counts(cfg)
    assert params == TABLE_2[cfg]
    assert fc == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000


def test_forward_multiply_adds_of_d_are_15_5_g():
    assert abs(sm.counts("D")[1] / 1e9 - 15.5) < 0.05


def test_ring_allreduce_formula():
    # 2 (N-1)/N x bytes / bandwidth + 2 (N-1) x latency
    assert sm.ring_allreduce_s(4e9, 4, 100.0, 0.0) == pytest.approx(2 * 3 / 4 * 4e9 / 100e9)
    assert sm.ring_allreduce_s(0, 8, 1.0, 10.0) == pytest.approx(14 * 10e-6)
    assert sm.ring_allreduce_s(1e9, 1, 1.0, 10.0) == 0.0


def test_modelled_speedup_of_d_on_four_nvlink_gpus_meets_the_target():
    s = sm.speedup("D", 4, 450.0, 3.0, 40.0, 64, overlap=True)
    assert 3.8 <= s <= 4.0
    assert sm.speedup("D", 4, 25.0, 5.0, 40.0, 64, overlap=True) > \
        sm.speedup("D", 4, 25.0, 5.0, 40.0, 64, overlap=False)


def test_the_model_of_the_papers_machine_is_near_its_3_75x():
    p = sm.PAPER
    s = sm.speedup("D", p["gpus"], p["link"], p["latency"], p["tflops"], 64, overlap=False)
    assert abs(s - p["measured"]) < 0.15
