"""Every elementwise and shape Function of the autograd, gradchecked in
float64 on inputs that exercise its edge cases: broadcasting in both
directions, scalar and 0-d operands, repeated and boolean indices, negative
axes, reductions over several axes. The oracle is the centred finite
difference of minivgg.gradcheck, plus hand-computed values."""
import numpy as np
import pytest

from minivgg import Tensor, gradcheck, no_grad
from minivgg.arithmetic import sum_to

R = np.random.default_rng(7)


def t(*shape, positive=False, seed=None):
    g = R if seed is None else np.random.default_rng(seed)
    a = g.standard_normal(shape)
    if positive:
        a = np.asarray(np.abs(a) + 0.5)  # stays an array for shape ()
    return Tensor(a, requires_grad=True)


BROADCASTS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)),
              ((2, 3, 4), (3, 1)), ((1, 3, 1), (2, 1, 5)), ((3, 4), ()), ((), (2, 3))]


@pytest.mark.parametrize("sa,sb", BROADCASTS)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_ops_with_broadcasting(op, sa, sb):
    a, b = t(*sa), t(*sb, positive=(op == "div"))
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
         "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    assert gradcheck(f, [a, b]) < 1e-6
    # The gradient of a broadcast operand is the sum over the broadcast axes.
    a.grad = b.grad = None
    f(a, b).backward(np.ones(np.broadcast_shapes(sa, sb)))
    assert a.grad.shape == sa and b.grad.shape == sb


def test_binary_ops_hand_values_and_python_scalars():
    a = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    b = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    (a / b).sum().backward()
    np.testing.assert_allclose(a.grad, [[0.5, -1.0], [0.5, -1.0]])
    # d/db sum_i a_ij / b_j = -sum_i a_ij / b_j^2
    np.testing.assert_allclose(b.grad, [-(1 + 3) / 4.0, -(2 + 4) / 1.0])
    x = Tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    y = (2.0 - x) * 3.0 + 1.0 / x - (-x)  # __rsub__, __rmul__, __rtruediv__, neg
    np.testing.assert_allclose(y.data, (2 - x.data) * 3 + 1 / x.data + x.data)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -3.0 - 1.0 / x.data ** 2 + 1.0)
    x2 = t(3)
    assert gradcheck(lambda x: 2.0 - x * 3.0 + 1.0 / (x * x + 1.0), [x2]) < 1e-6


def test_same_tensor_on_both_sides():
    x = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)
    x.grad = None
    (x / x).sum().backward()  # constant 1: zero gradient
    np.testing.assert_allclose(x.grad, [0.0, 0.0], atol=1e-15)
    x.grad = None
    (x - x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0])


def test_zero_dim_tensors():
    a = Tensor(np.array(3.0), requires_grad=True)
    b = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (a * b).sum() * a
    y.backward()
    assert a.grad.shape == () and float(a.grad) == pytest.approx(2 * 3.0 * 3.0)
    np.testing.assert_allclose(b.grad, [9.0, 9.0])
    assert gradcheck(lambda a, b: a * b + a, [t(), t(4)]) < 1e-6


@pytest.mark.parametrize("exponent", [2, 3, -1, -2.5, 0.5, 1])
def test_pow(exponent):
    x = t(3, 2, positive=True)
    assert gradcheck(lambda x: x ** exponent, [x]) < 1e-6
    x.grad = None
    (x ** exponent).sum().backward()
    np.testing.assert_allclose(x.grad, exponent * x.data ** (exponent - 1), rtol=1e-12)


def test_pow_of_negative_base_with_integer_exponent():
    x = Tensor(np.array([-2.0, -0.5, 3.0]), requires_grad=True)
    (x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2)
    x.grad = None
    (x ** 2).sum().backward()
    np.testing.assert_allclose(x.grad, [-4.0, -1.0, 6.0])


def test_neg():
    x = t(2, 3)
    assert gradcheck(lambda x: -x, [x]) < 1e-8


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((4, 1), (1, 3)),
                                   ((1, 1), (1, 1))])
def test_matmul(sa, sb):
    a, b = t(*sa), t(*sb)
    assert gradcheck(lambda a, b: a @ b, [a, b]) < 1e-6
    a.grad = b.grad = None
    g = R.standard_normal((sa[0], sb[1]))
    (a @ b).backward(g)
    np.testing.assert_allclose(a.grad, g @ b.data.T)
    np.testing.assert_allclose(b.grad, a.data.T @ g)


def test_matmul_only_computes_wanted_gradients():
    a = t(2, 3)
    b = Tensor(R.standard_normal((3, 2)))  # a constant
    (a @ b).sum().backward()
    assert b.grad is None and a.grad.shape == (2, 3)
    with pytest.raises(ValueError, match="2-D"):
        a @ Tensor(np.ones(3))


@pytest.mark.parametrize("shape", [(6,), (2, 3), (3, -1), (1, 6, 1), (-1,)])
def test_reshape(shape):
    x = t(2, 3)
    assert gradcheck(lambda x: x.reshape(shape) * Tensor(np.arange(6.0).reshape(
        x.reshape(shape).shape)), [x]) < 1e-8


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (1, 2, 0), (-1, 0, 1),
                                  (0, -1, -2), (2, 1, 0)])
def test_transpose_any_permutation_including_negative_axes(axes):
    x = t(2, 3, 4)
    f = (lambda x: x.transpose()) if axes is None else (lambda x: x.transpose(*axes))
    assert gradcheck(f, [x]) < 1e-8
    # The gradient of a transpose is the inverse transpose of the upstream.
    x.grad = None
    y = f(x)
    g = R.standard_normal(y.shape)
    y.backward(g)
    want = np.zeros(x.shape)
    perm = list(range(3))[::-1] if axes is None else [a % 3 for a in axes]
    for idx in np.ndindex(*x.shape):
        want[idx] = g[tuple(idx[p] for p in perm)]
    np.testing.assert_array_equal(x.grad, want)


def test_transpose_of_a_square_matrix_with_negative_axes():
    x = Tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    g = np.arange(9.0).reshape(3, 3) * 10
    x.transpose(-1, 0).backward(g)
    np.testing.assert_array_equal(x.grad, g.T)
    x.grad = None
    x.T.backward(g)
    np.testing.assert_array_equal(x.grad, g.T)


INDICES = [
    (1,), (-1,), (slice(1, None),), (slice(None, None, -1),), (slice(None, None, 2), -2),
    ([0, 0, 2],),                       # repeated rows: gradients add up
    (np.array([2, 0, 2, 2]),),
    ([0, 0, 2], [1, 1, 3]),             # repeated (row, col) pairs
    (slice(None), [3, 3, 0]),
    (Ellipsis, 1), (None, slice(None)), (Ellipsis, None),
    (np.array([[True, False, True, False]] * 3),),  # boolean mask
    (np.array([True, False, True]),),
]


@pytest.mark.parametrize("index", INDICES, ids=[repr(i)[:40] for i in INDICES])
def test_getitem(index):
    x = t(3, 4)
    assert gradcheck(lambda x: x[index], [x]) < 1e-8


def test_getitem_repeated_indices_accumulate_by_hand():
    x = Tensor(np.zeros((3, 2)), requires_grad=True)
    y = x[[0, 2, 0, 0]]
    y.backward(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]))
    np.testing.assert_array_equal(x.grad, [[13.0, 16.0], [0.0, 0.0], [3.0, 4.0]])
    x.grad = None
    x[[1, 1], [0, 0]].backward(np.array([2.5, 4.0]))
    np.testing.assert_array_equal(x.grad, [[0, 0], [6.5, 0], [0, 0]])


SUMS = [(None, False), (0, False), (1, True), (-1, False), ((0, 2), False), ((0, 2), True),
        ((-1, 0), False), ((0, 1, 2), False), ((1, 2), True), ((), False)]


@pytest.mark.parametrize("axis,keepdims", SUMS)
def test_sum_and_mean_over_several_axes(axis, keepdims):
    x = t(2, 3, 4)
    assert gradcheck(lambda x: x.sum(axis=axis, keepdims=keepdims), [x]) < 1e-6
    assert gradcheck(lambda x: x.mean(axis=axis, keepdims=keepdims), [x]) < 1e-6
    with no_grad():
        np.testing.assert_allclose(x.mean(axis=axis, keepdims=keepdims).data,
                                   x.data.mean(axis=axis, keepdims=keepdims), rtol=1e-12)


def test_mean_gradient_by_hand():
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    x.mean(axis=(0, 2)).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 3, 4), 1 / 8))
    x.grad = None
    x.mean().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 3, 4), 1 / 24))


@pytest.mark.parametrize("src,dst", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (1, 4)),
                                     ((3, 4), (3, 1)), ((2, 3, 4), (3, 1)), ((2, 3, 4), ()),
                                     ((2, 1, 4), (1, 1)), ((5,), (1,))])
def test_sum_to_undoes_broadcasting(src, dst):
    x = R.standard_normal(src)
    y = sum_to(x, dst)
    assert y.shape == dst
    # The defining property: <sum_to(x), z> = <x, broadcast(z)> for every z.
    z = R.standard_normal(dst)
    assert (y * z).sum() == pytest.approx((x * np.broadcast_to(z, src)).sum(), rel=1e-12)


def test_long_chain_of_mixed_ops():
    a, b, c = t(3, 4), t(4, positive=True), t(4, 2)

    def f(a, b, c):
        h = (a[[0, 2, 2]] - b) / b * a[::-1] + a ** 2
        return ((h @ c).transpose(-1, 0).reshape(-1, 3).mean(axis=(0,)) * h.sum((0, -1))[None])
    assert gradcheck(f, [a, b, c]) < 1e-6
