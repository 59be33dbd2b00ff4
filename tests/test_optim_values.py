"""SGD (§3.1: momentum 0.9, weight decay, lr divided by 10) and the plateau
schedule against numbers worked out by hand from the update rule

    v <- mu * v + (g + wd * p)     (v starts as g + wd * p)
    p <- p - lr * v

and from the schedule's rule ("decreased by a factor of 10 when the
validation set accuracy stopped improving"). No PyTorch needed."""
import numpy as np
import pytest

from minivgg import Tensor
from minivgg.optim import SGD, ReduceLROnPlateau


def param(value, dtype=np.float64):
    return Tensor(np.array([value], dtype=dtype), requires_grad=True)


def steps(opt, p, grads, lrs=None):
    out = []
    for i, g in enumerate(grads):
        if lrs is not None:
            opt.lr = lrs[i]
        p.grad = np.array([g], dtype=p.dtype)
        opt.step()
        out.append(float(p.data[0]))
    return out


def test_momentum_and_weight_decay_with_an_lr_drop_by_hand():
    p = param(1.0)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    got = steps(opt, p, [0.5, 0.5, 0.5], lrs=[0.1, 0.1, 0.01])
    # 1: d = 0.5 + 0.01*1      = 0.51;        v = 0.51;                    p = 1 - 0.051 = 0.949
    # 2: d = 0.5 + 0.01*0.949  = 0.50949;     v = 0.9*0.51 + 0.50949 = 0.96849;   p = 0.852151
    # 3: d = 0.5 + 0.00852151 = 0.50852151;  v = 0.9*0.96849 + d = 1.38016251; p -= 0.01 v
    assert got == pytest.approx([0.949, 0.852151, 0.8383493749], rel=1e-12)
    np.testing.assert_allclose(opt.velocity[0], [1.38016251], rtol=1e-12)
    assert opt.steps == 3


def test_weight_decay_without_momentum_by_hand():
    p = param(2.0)
    opt = SGD([p], lr=0.5, weight_decay=0.1)
    # 1: p = 2 - 0.5 (1 + 0.2) = 1.4;  2: p = 1.4 - 0.5 (1 + 0.14) = 0.83
    assert steps(opt, p, [1.0, 1.0]) == pytest.approx([1.4, 0.83], rel=1e-12)
    assert opt.velocity == [None]


def test_momentum_without_weight_decay_by_hand():
    p = param(0.0)
    opt = SGD([p], lr=1.0, momentum=0.5)
    # v: 1, 1.5, 1.75; p: -1, -2.5, -4.25
    assert steps(opt, p, [1.0, 1.0, 1.0]) == pytest.approx([-1.0, -2.5, -4.25], rel=1e-12)


def test_plain_sgd_by_hand():
    p = param(3.0)
    opt = SGD([p], lr=0.25)
    assert steps(opt, p, [4.0, -2.0]) == pytest.approx([2.0, 2.5], rel=1e-12)


def test_parameters_without_gradient_are_left_alone():
    a, b = param(1.0), param(5.0)
    opt = SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.5)
    a.grad = np.array([1.0])
    opt.step()  # b has no gradient: no decay, no velocity
    assert float(b.data[0]) == 5.0 and opt.velocity[1] is None
    assert float(a.data[0]) == pytest.approx(1.0 - 0.1 * (1.0 + 0.5), rel=1e-12)
    b.grad = np.array([0.0])
    opt.step()  # b's first step: v = 0 + 0.5 * 5
    assert float(b.data[0]) == pytest.approx(5.0 - 0.1 * 2.5, rel=1e-12)


def test_float32_parameters_by_hand():
    p = Tensor(np.array([1.0, -1.0], np.float32), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(2):
        p.grad = np.array([0.5, 0.5], np.float32)
        opt.step()
    assert p.dtype == np.float32
    # second element: d1 = 0.5 - 0.01 = 0.49, p1 = -1.049; d2 = 0.5 - 0.01049 = 0.48951,
    # v2 = 0.441 + 0.48951 = 0.93051, p2 = -1.049 - 0.093051 = -1.142051
    np.testing.assert_allclose(p.data, [0.852151, -1.142051], rtol=1e-6)


def test_loaded_state_continues_by_hand():
    p = param(1.0)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    steps(opt, p, [0.5, 0.5])
    q = param(float(p.data[0]))
    other = SGD([q], lr=5.0)  # everything comes from the state
    other.load_state_dict(opt.state_dict())
    assert (other.lr, other.momentum, other.weight_decay, other.steps) == (0.1, 0.9, 0.01, 2)
    assert steps(other, q, [0.5], lrs=[0.01]) == pytest.approx([0.8383493749], rel=1e-12)


# -- ReduceLROnPlateau ---------------------------------------------------------------------

def sgd(lr=1.0):
    return SGD([param(0.0)], lr)


def run(sched, values):
    return [(sched.step(v), sched.optimizer.lr) for v in values]


def test_schedule_max_mode_by_hand():
    o = sgd()
    s = ReduceLROnPlateau(o, "max", factor=0.1, patience=2, threshold=0.01)
    got = run(s, [0.50, 0.505, 0.51, 0.52, 0.52, 0.60])
    # 0.50 best; 0.505 and 0.51 are within the threshold (bad 1, 2); 0.52 > 0.51: best;
    # 0.52 bad 1; 0.60 best.
    assert got == [(False, 1.0)] * 6
    got = run(s, [0.60, 0.60, 0.59])  # bad 1, 2, 3 > patience: drop
    assert [r for r, _ in got] == [False, False, True]
    assert got[-1][1] == pytest.approx(0.1, rel=1e-12)
    assert s.state_dict() == {"best": 0.60, "bad_epochs": 0, "cooldown_left": 0, "reductions": 1}


def test_schedule_min_mode_for_a_loss():
    o = sgd()
    s = ReduceLROnPlateau(o, "min", factor=0.5, patience=0, threshold=0.0)
    got = run(s, [2.0, 1.0, 1.5, 0.5, 0.5])
    assert [lr for _, lr in got] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_schedule_cooldown_and_min_lr():
    o = sgd(1e-3)
    s = ReduceLROnPlateau(o, "max", factor=0.1, patience=0, cooldown=2, min_lr=2e-5)
    got = run(s, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    # drop after epoch 2; two epochs of cooldown (3, 4) count nothing; drop after 5
    # (to the floor 2e-5, not 1e-5); then the floor holds.
    assert [lr for _, lr in got] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4, 2e-5, 2e-5, 2e-5])
    assert s.reductions == 2


def test_loaded_schedule_state_is_used():
    o = sgd(0.01)
    s = ReduceLROnPlateau(o, "max", factor=0.1, patience=2, max_reductions=2)
    s.load_state_dict({"best": 0.7, "bad_epochs": 2, "cooldown_left": 0, "reductions": 1})
    assert s.step(0.7) and o.lr == pytest.approx(1e-3)  # third bad epoch: drop
    assert s.state_dict() == {"best": 0.7, "bad_epochs": 0, "cooldown_left": 0, "reductions": 2}
    s2 = ReduceLROnPlateau(sgd(0.01), "max", factor=0.1, patience=0, max_reductions=2)
    s2.load_state_dict({"best": 0.7, "bad_epochs": 0, "cooldown_left": 0, "reductions": 2})
    assert not s2.step(0.1) and s2.optimizer.lr == 0.01  # the two drops were taken already
    s3 = ReduceLROnPlateau(sgd(0.01), "max", factor=0.1, patience=0)
    s3.load_state_dict({"best": 0.7, "bad_epochs": 0, "cooldown_left": 1, "reductions": 0})
    assert not s3.step(0.1)  # still cooling down
    assert s3.step(0.1)
