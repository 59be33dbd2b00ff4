"""Every op: float64 gradient check, and the fast path against its plain
reference implementation."""
import numpy as np

import minivgg
import pytest

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.functional.conv import col2im, im2col
from minivgg.gradcheck import away_from_kinks, pool_ties, relu_kinks
from kinks import conv_inputs, conv_relu_kinks

CONV_CASES = [
    # (N, C, H, W), (K, C, KH, KW), stride, padding
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1),     # VGG's 3x3 pad 1, non-square input
    ((2, 4, 5, 5), (3, 4, 1, 1), 1, 0),     # configuration C's 1x1
    ((1, 1, 7, 6), (2, 1, 3, 2), 1, 0),     # batch 1, one channel, non-square kernel
    ((2, 3, 7, 7), (2, 3, 3, 3), 2, 1),     # stride 2
    ((2, 2, 8, 6), (3, 2, 2, 3), (2, 1), (0, 1)),  # mixed strides and paddings
]


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d_matches_reference(rng, xs, ws, stride, pad):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride, pad).data
    np.testing.assert_allclose(y, F.conv2d_reference(x, w, b, stride, pad), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d_gradcheck(rng, xs, ws, stride, pad):
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal(ws), requires_grad=True)
    b = Tensor(rng.standard_normal(ws[0]), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, pad), [x, w, b]) < 1e-6


def test_conv2d_without_bias_and_without_input_grad(rng):
    x = Tensor(rng.standard_normal((2, 3, 5, 5)))  # the image needs no gradient
    w = Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, None, 1, 1), [x, w]) < 1e-6
    assert x.grad is None


def test_im2col_col2im_are_adjoint(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    col = im2col(x, 3, 2, (2, 1), (1, 1))
    c = rng.standard_normal(col.shape)
    lhs = (col * c).sum()
    rhs = (x * col2im(c, x.shape, 3, 2, (2, 1), (1, 1))).sum()
    assert abs(lhs - rhs) < 1e-9 * abs(lhs)


def test_conv2d_bad_shapes():
    x = Tensor(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\).*\(2, 3, 8, 8\)"):
        F.conv2d(x, Tensor(np.zeros((5, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.conv2d(Tensor(np.zeros((3, 8, 8))), Tensor(np.zeros((5, 3, 3, 3))))
    with pytest.raises(ValueError, match="2x2 is smaller than the 3x3 kernel"):
        F.conv2d(Tensor(np.zeros((1, 3, 2, 2))), Tensor(np.zeros((5, 3, 3, 3))))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, Tensor(np.zeros((5, 3, 3, 3))), Tensor(np.zeros(4)))


POOL_CASES = [((2, 3, 8, 6), 2, 2, 0), ((2, 2, 7, 9), 2, 2, 0), ((1, 2, 7, 7), 3, 2, 1),
              ((2, 1, 6, 8), (3, 2), (1, 2), 0)]


@pytest.mark.parametrize("xs,k,s,p", POOL_CASES)
def test_max_pool_matches_reference_and_gradcheck(rng, xs, k, s, p):
    # Distinct values, so the max is unique and finite differences are valid.
    x = rng.permutation(np.prod(xs)).reshape(xs).astype(np.float64) / 7.0
    y = F.max_pool2d(Tensor(x), k, s, p).data
    np.testing.assert_array_equal(y, F.max_pool2d_reference(x, k, s, p))
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p), [Tensor(x, requires_grad=True)],
                     eps=1e-4, kinks=lambda a: [pool_ties(a, k, s, p)]) < 1e-6


def test_max_pool_ties_go_to_first_in_row_major_order():
    x = Tensor(np.zeros((1, 1, 2, 4)), requires_grad=True)
    x.data[0, 0] = [[1, 5, 5, 2], [5, 0, 7, 7]]
    F.max_pool2d(x, 2, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1, 0, 0], [0, 0, 1, 0]])


def test_max_pool_nan_is_the_maximum_and_its_first_position_gets_the_gradient():
    """As np.maximum and the CUDA kernel do (kernels/pool.cu)."""
    x = Tensor(np.array([[[[1.0, np.nan, 3.0, 4.0], [np.nan, 2.0, 0.0, 1.0]]]]),
               requires_grad=True)
    y = F.max_pool2d(x, 2, 2)
    assert np.isnan(y.data[0, 0, 0, 0]) and y.data[0, 0, 0, 1] == 4
    y.backward(np.array([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 2, 0, 3], [0, 0, 0, 0]])


def test_max_pool_too_small_input():
    with pytest.raises(ValueError, match="smaller than the 2x2"):
        F.max_pool2d(Tensor(np.zeros((1, 1, 1, 4))), 2, 2)


def test_relu_gradcheck_and_values(rng):
    relu_kinks_of = lambda a: [relu_kinks(a)]   # noqa: E731
    x, = away_from_kinks(lambda r: (r.standard_normal((3, 4, 2)),), relu_kinks_of, 1e-4)
    y = F.relu(Tensor(x)).data
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert gradcheck(F.relu, [Tensor(x, requires_grad=True)], kinks=relu_kinks_of) < 1e-8


def test_dropout_is_inverted_seedable_and_identity_in_eval(rng):
    x = Tensor(np.ones((200, 50)))
    minivgg.manual_seed(7)
    y1 = F.dropout(x, 0.5, True).data
    y3 = F.dropout(x, 0.5, True).data       # the next stream: another mask
    minivgg.manual_seed(7)
    y2 = F.dropout(x, 0.5, True).data
    np.testing.assert_array_equal(y1, y2)
    assert (y1 != y3).mean() > 0.3
    assert set(np.unique(y1)) <= {0.0, 2.0}
    assert abs(y1.mean() - 1.0) < 0.05
    assert F.dropout(x, 0.5, training=False) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.dropout(x, 1.0)
    xt = Tensor(rng.standard_normal((4, 6)), requires_grad=True)
    assert gradcheck(lambda t: F.dropout(t, 0.3, True, key=3), [xt]) < 1e-8


@pytest.mark.parametrize("size", [5, 4, 1])
def test_lrn_matches_reference_and_gradcheck(rng, size):
    x = rng.standard_normal((2, 7, 3, 2)) * 20  # large enough that the denominator matters
    y = F.local_response_norm(Tensor(x), size, 1e-3, 0.75, 2.0).data
    np.testing.assert_allclose(y, F.local_response_norm_reference(x, size, 1e-3, 0.75, 2.0),
                               rtol=1e-12)
    # Inputs of size ~20 make round-off in the finite differences ~1e-6.
    assert gradcheck(lambda t: F.local_response_norm(t, size, 1e-3, 0.75, 2.0),
                     [Tensor(x, requires_grad=True)], eps=1e-5) < 1e-5


def test_lrn_alpha_multiplies_the_sum_not_the_mean():
    x = np.zeros((1, 5, 1, 1))
    x[0, :, 0, 0] = 10.0
    y = F.local_response_norm(Tensor(x), 5, 1e-4, 0.75, 2.0).data
    # centre channel: 10 / (2 + 1e-4 * 5 * 100) ** 0.75
    assert y[0, 2, 0, 0] == pytest.approx(10.0 / (2.0 + 1e-4 * 500.0) ** 0.75, rel=1e-12)


def test_linear_and_flatten_gradcheck(rng):
    x = Tensor(rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 8)), requires_grad=True)
    b = Tensor(rng.standard_normal(5), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.linear(F.flatten(x), w, b), [x, w, b]) < 1e-6
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        F.linear(Tensor(np.zeros((3, 7))), w)


def test_softmax_cross_entropy(rng):
    logits = Tensor(rng.standard_normal((6, 5)), requires_grad=True)
    labels = rng.integers(0, 5, 6)
    assert gradcheck(lambda t: F.softmax_cross_entropy(t, labels), [logits]) < 1e-6
    p = np.exp(logits.data) / np.exp(logits.data).sum(1, keepdims=True)
    expected = -np.log(p[np.arange(6), labels]).mean()
    assert F.softmax_cross_entropy(Tensor(logits.data), labels).item() == pytest.approx(expected)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32),
                    requires_grad=True)
    loss = F.softmax_cross_entropy(logits, np.array([1, 2]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx((2e4 + np.log(2)) / 2, rel=1e-6)


def test_softmax_cross_entropy_bad_labels():
    logits = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.softmax_cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        F.softmax_cross_entropy(logits, np.array([0, 1, 2]))
