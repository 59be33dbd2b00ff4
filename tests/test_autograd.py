"""The autograd core: graph recording, accumulation, hooks, no_grad."""
import numpy as np
import pytest

import minivgg
from minivgg import Function, Tensor, gradcheck, no_grad


@pytest.mark.parametrize("tier", ["reference", "fast"])
def test_tensor_used_twice_accumulates(tier):
    """By the core's plain rule (autograd.LeafGradients, the textbook tier)
    and by the fast tier's hand-off alike."""
    with minivgg.use_ops(tier):
        x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
        y = (x * x + x * 3.0).sum()
        y.backward()
        np.testing.assert_allclose(x.grad, 2 * x.data + 3.0)
        # A second backward through a new graph accumulates into .grad.
        (x * 2.0).sum().backward()
        np.testing.assert_allclose(x.grad, 2 * x.data + 5.0)


def test_arithmetic_gradients_float64():
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal((4,)) + 3.0, requires_grad=True)
    c = Tensor(rng.standard_normal((4, 2)), requires_grad=True)

    def f(a, b, c):
        h = (a - b) * a / b + (-a) ** 2
        return (h @ c).reshape(6).mean(axis=0, keepdims=False) * 1.0 + h.T.sum(axis=1)[0]
    assert gradcheck(f, [a, b, c]) < 1e-6


def test_getitem_and_transpose_gradients():
    rng = np.random.default_rng(1)
    a = Tensor(rng.standard_normal((3, 4, 2)), requires_grad=True)
    assert gradcheck(lambda t: t[1:, ::2].transpose(2, 0, 1), [a]) < 1e-6


def test_backward_default_grad_only_for_scalars():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="does not match"):
        (x * 2.0).backward(np.ones(3))


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_graph_released_after_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    z = (x * 2.0).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad, np.full(3, 6.0))


def test_hook_fires_once_when_gradient_complete():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    seen = []
    # a feeds two branches: its hook must see the full sum, exactly once.
    a.register_hook(lambda t: seen.append(("a", t.grad.copy())))
    handle = b.register_hook(lambda t: seen.append(("b", t.grad.copy())))
    loss = (a * b).sum() + (a * a).sum()
    loss.backward()
    assert [n for n, _ in seen].count("a") == 1 and [n for n, _ in seen].count("b") == 1
    grads = dict(seen)
    np.testing.assert_allclose(grads["a"], b.data + 2 * a.data)
    handle.remove()
    seen.clear()
    (a * b).sum().backward()
    assert [n for n, _ in seen] == ["a"]


def test_hooks_fire_in_reverse_layer_order():
    """Later layers' gradients complete first: what overlap of communication needs."""
    model = minivgg.nn.Sequential(minivgg.nn.Linear(3, 4), minivgg.nn.ReLU(),
                                  minivgg.nn.Linear(4, 2))
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    order = []
    for name, p in model.named_parameters():
        p.register_hook(lambda t, name=name: order.append(name))
    model(Tensor(rng.standard_normal((5, 3)).astype(np.float32))).sum().backward()
    assert order.index("2.weight") < order.index("0.weight")
    assert sorted(order) == sorted(n for n, _ in model.named_parameters())


def test_custom_function_in_a_few_lines():
    class Cube(Function):
        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, gy):
            return 3 * self.x ** 2 * gy

    x = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    assert gradcheck(lambda t: Cube()(t), [x]) < 1e-6


def test_gradcheck_catches_a_wrong_backward():
    class Wrong(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 3

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(minivgg.GradcheckError, match="analytic"):
        gradcheck(lambda t: Wrong()(t), [x])
    err = gradcheck(lambda t: Wrong()(t), [x], raise_on_failure=False)
    assert err > 0.1


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2.0, [Tensor(np.ones(2, np.float32), requires_grad=True)])


def test_leaf_gradients_never_share_memory():
    """Add passes the same upstream array to both inputs, Reshape a view of
    it; each leaf must still own its gradient, and so must the caller's."""
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(6), requires_grad=True)
    d = Tensor(np.ones((2, 3)), requires_grad=True)
    y = a + b.reshape(2, 3) + d
    upstream = np.full((2, 3), 2.0)
    y.backward(upstream)
    grads = [a.grad, b.grad, d.grad]
    for i in range(3):
        assert not np.shares_memory(grads[i], upstream)
        for j in range(i + 1, 3):
            assert not np.shares_memory(grads[i], grads[j])
    a.grad *= 10  # mutating one gradient leaves the others alone
    np.testing.assert_array_equal(d.grad, upstream)
    np.testing.assert_array_equal(b.grad, upstream.reshape(6))


def test_linear_adds_its_weight_gradient_into_the_optimizers_buffer(rng, monkeypatch):
    """The fast Linear stores dW straight into the flat gradient view the
    hand-off offers (fn.grad_into, minivgg/fast/handoff.py), in blocks of
    rows: after zero_grad() (gradients None) the first backward writes over
    the view's stale contents, a second one adds to it; with zero_grad(set_to_none=False) it adds to the
    zeroed view. The view stays the same array, and hooks still fire once
    per pass."""
    import importlib
    from minivgg.fast import select
    linear_mod = importlib.import_module("minivgg.fast.linear")
    from minivgg.optim import SGD
    monkeypatch.setattr(linear_mod, "ACCUMULATE_ELEMENTS", 7)   # blocks of one row
    x = rng.standard_normal((3, 5))
    w = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    gy = rng.standard_normal((3, 4))
    opt = SGD([w, b], 0.1)
    opt.zero_grad()
    assert w.grad is None and b.grad is None
    view, bview = w.grad_home, b.grad_home
    assert np.shares_memory(view, opt.buffers().grad)
    opt.buffers().grad.fill(np.nan)       # stale contents: never read
    fired = []
    w.register_hook(lambda t: fired.append(1))
    select.linear(Tensor(x), w, b).backward(gy)
    assert w.grad is view and b.grad is bview
    np.testing.assert_allclose(w.grad, gy.T @ x, rtol=1e-13)
    np.testing.assert_allclose(b.grad, gy.sum(0), rtol=1e-13)
    select.linear(Tensor(x), w, b).backward(gy)
    np.testing.assert_allclose(w.grad, 2 * gy.T @ x, rtol=1e-13)
    np.testing.assert_allclose(b.grad, 2 * gy.sum(0), rtol=1e-13)
    assert fired == [1, 1]
    opt.zero_grad(set_to_none=False)
    assert w.grad is view and not w.grad.any()
    select.linear(Tensor(x), w, b).backward(gy)
    assert w.grad is view
    np.testing.assert_allclose(w.grad, gy.T @ x, rtol=1e-13)
    assert fired == [1, 1, 1]
    # Without a buffer the gradient is a new array, as before.
    w2 = Tensor(w.data.copy(), requires_grad=True)
    select.linear(Tensor(x), w2).backward(gy)
    np.testing.assert_allclose(w2.grad, gy.T @ x, rtol=1e-13)
