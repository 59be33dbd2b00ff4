"""SGD against torch.optim.SGD, and its checkpoint state."""
import numpy as np
import pytest

from minivgg import Tensor
from minivgg.optim import SGD


def quadratic_grads(params, targets):
    for p, t in zip(params, targets):
        p.grad = 2 * (p.data - t) + 0.1 * p.data ** 2


@pytest.mark.parametrize("momentum,wd", [(0.9, 5e-4), (0.0, 0.0), (0.5, 1e-2)])
def test_sgd_matches_torch_over_5_steps_with_an_lr_drop(momentum, wd):
    torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    targets = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = SGD(ours, lr=0.1, momentum=momentum, weight_decay=wd)
    topt = torch.optim.SGD(theirs, lr=0.1, momentum=momentum, weight_decay=wd)
    for step in range(5):
        if step == 3:  # the paper divides the rate by 10
            opt.lr /= 10
            for g in topt.param_groups:
                g["lr"] /= 10
        quadratic_grads(ours, targets)
        for t, tg in zip(theirs, targets):
            t.grad = 2 * (t.detach() - torch.tensor(tg)) + 0.1 * t.detach() ** 2
        opt.step()
        topt.step()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_sgd_state_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    init = rng.standard_normal((4, 3))
    target = rng.standard_normal((4, 3))
    a = [Tensor(init.copy(), requires_grad=True)]
    opt_a = SGD(a, 0.05, 0.9, 1e-3)
    for _ in range(3):
        quadratic_grads(a, [target])
        opt_a.step()
    b = [Tensor(a[0].data.copy(), requires_grad=True)]
    opt_b = SGD(b, 1.0)
    opt_b.load_state_dict(opt_a.state_dict())
    for _ in range(3):
        quadratic_grads(a, [target])
        quadratic_grads(b, [target])
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a[0].data, b[0].data)


def test_sgd_rejects_bad_settings():
    p = [Tensor(np.zeros(2), requires_grad=True)]
    with pytest.raises(ValueError, match="learning rate"):
        SGD(p, lr=0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    opt = SGD(p, 0.1, 0.9)
    state = opt.state_dict()
    state["velocity"] = [np.zeros(3)]
    with pytest.raises(ValueError, match="expected shape"):
        opt.load_state_dict(state)
