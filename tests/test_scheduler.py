"""ReduceLROnPlateau: the §3.1 rule "decreased by a factor of 10 when the
validation set accuracy stopped improving", three times."""
import numpy as np
import pytest

from minivgg import Tensor
from minivgg.optim import SGD, ReduceLROnPlateau


def opt(lr=0.01):
    return SGD([Tensor(np.zeros(1), requires_grad=True)], lr)


def test_divides_by_ten_after_patience_and_stops_after_three():
    o = opt()
    s = ReduceLROnPlateau(o, "max", 0.1, patience=1, max_reductions=3)
    lrs = []
    for acc in [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
        s.step(acc)
        lrs.append(o.lr)
    assert lrs[:3] == [0.01, 0.01, 0.01]
    assert lrs[3] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-5) and s.reductions == 3


def test_improvement_resets_patience_and_min_lr_floor():
    o = opt()
    s = ReduceLROnPlateau(o, "max", 0.1, patience=0, min_lr=5e-4)
    s.step(0.5)
    s.step(0.6)
    assert o.lr == 0.01
    s.step(0.6)
    assert o.lr == pytest.approx(1e-3)
    s.step(0.6)
    assert o.lr == pytest.approx(5e-4)
    assert not s.step(0.6) and o.lr == pytest.approx(5e-4)


def test_state_round_trip_and_bad_arguments():
    o = opt()
    s = ReduceLROnPlateau(o, "max", 0.1, patience=2)
    s.step(0.5)
    s.step(0.4)
    s2 = ReduceLROnPlateau(opt(), "max", 0.1, patience=2)
    s2.load_state_dict(s.state_dict())
    assert s2.state_dict() == s.state_dict()
    with pytest.raises(ValueError, match="mode"):
        ReduceLROnPlateau(o, "up")
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(o, factor=10)
