"""Modules: registration, names, state dicts, modes, layer errors."""
import numpy as np
import pytest

from minivgg import Tensor, nn


def small_net():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 2 * 2, 5), nn.Dropout(0.5))
    rng = np.random.default_rng(0)
    for p in net.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    return net.assign_names()


def test_named_parameters_in_registration_order():
    names = [n for n, _ in small_net().named_parameters()]
    assert names == ["0.weight", "0.bias", "4.weight", "4.bias"]


def test_state_dict_round_trip_copies():
    net = small_net()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["0.weight"][...] = 0  # a copy: the model is untouched
    assert np.abs(net[0].weight.data).sum() > 0
    other = small_net()
    for p in other.parameters():
        p.data[...] = 0
    other.load_state_dict(net.state_dict())
    for (_, a), (_, b) in zip(net.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_state_dict_errors_name_keys_and_shapes_and_change_nothing():
    net = small_net()
    before = net.state_dict()
    sd = net.state_dict()
    del sd["0.bias"]
    sd["extra.weight"] = np.zeros(3)
    sd["4.weight"] = np.zeros((5, 3))
    with pytest.raises(ValueError) as exc:
        net.load_state_dict(sd)
    msg = str(exc.value)
    assert "missing keys: 0.bias (4,)" in msg
    assert "unexpected keys: extra.weight (3,)" in msg
    assert "4.weight: expected (5, 16), got (5, 3)" in msg
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    missing, unexpected = net.load_state_dict({"0.bias": np.ones(4)}, strict=False)
    assert "0.weight" in missing and unexpected == []
    np.testing.assert_array_equal(net[0].bias.data, np.ones(4))


def test_train_eval_propagate_and_dropout_follows():
    net = small_net()
    x = Tensor(np.ones((2, 3, 4, 4), np.float32))
    net.eval()
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(x).data, net(x).data)
    net.train()
    assert all(m.training for m in net.modules())


def test_layer_errors_name_the_layer():
    net = small_net()
    with pytest.raises(ValueError, match=r"^0 \(3, 4.*expected input of shape \(N, 3, H, W\), "
                                         r"got \(2, 1, 4, 4\)"):
        net(Tensor(np.ones((2, 1, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"^4 .*expected input of shape \(N, 16\), got \(2, 36\)"):
        net(Tensor(np.ones((2, 3, 6, 6), np.float32)))
    with pytest.raises(ValueError, match=r"^2 .*smaller than the 2x2"):
        net(Tensor(np.ones((2, 3, 1, 1), np.float32)))


def test_module_requires_super_init():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(RuntimeError, match="super"):
        Bad()


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2
