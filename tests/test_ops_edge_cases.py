"""The ops of §2.1 on their edge cases, against values computed by hand or
by plain loops written in this file: ReLU at exactly 0, max-pooling of
negative inputs with padding, ties (also in overlapping windows), odd sizes
that floor mode drops, batch 1, convolutions on the col2im path, LRN with
fewer channels than its window, the loss on one image, and dropout by its
statistics and invariants (never by its exact masks)."""
import math

import numpy as np
import pytest

import minivgg
from minivgg import Tensor, gradcheck, nn
from minivgg import functional as F


# -- convolution ----------------------------------------------------------------

def conv_loops(x, w, b, stride, pad):
    """y[n,k,i,j] = b[k] + sum_{c,u,v} w[k,c,u,v] * xpad[n,c,i*s+u,j*s+v], as loops."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, k, oh, ow))
    for a in range(n):
        for o in range(k):
            for i in range(oh):
                for j in range(ow):
                    y[a, o, i, j] = b[o] + np.sum(
                        w[o] * xp[a, :, i * stride:i * stride + kh, j * stride:j * stride + kw])
    return y


EDGE_CONVS = [
    # (N, C, H, W), (K, C, KH, KW), stride, padding
    ((1, 1, 1, 1), (2, 1, 1, 1), 1, 0),   # one pixel, batch 1
    ((1, 2, 3, 3), (1, 2, 3, 3), 1, 1),   # 3x3 pad 1 on a 3x3 image: every tap hits padding
    ((1, 2, 5, 4), (3, 2, 1, 1), 1, 1),   # padding larger than K-1 (the col2im gradient path)
    ((1, 1, 4, 4), (1, 1, 3, 3), 1, 2),   # padding K-1: output larger than the input
    ((2, 1, 7, 6), (2, 1, 3, 3), 2, 0),   # stride leaving a remainder (odd sizes)
    ((1, 3, 5, 5), (2, 3, 2, 2), 1, 1),   # even kernel
]


@pytest.mark.parametrize("xs,ws,stride,pad", EDGE_CONVS)
def test_conv_edge_cases_against_loops_and_gradcheck(xs, ws, stride, pad):
    g = np.random.default_rng(sum(xs) + sum(ws))
    x, w, b = g.standard_normal(xs), g.standard_normal(ws), g.standard_normal(ws[0])
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride, pad).data
    np.testing.assert_allclose(y, conv_loops(x, w, b, stride, pad), rtol=1e-12, atol=1e-12)
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, pad), ts) < 1e-6


def test_conv_hand_value():
    # A 1-channel 3x3 image of 1..9, a kernel picking the centre minus the top-left.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 1, 1], w[0, 0, 0, 0] = 1.0, -1.0
    y = F.conv2d(Tensor(x), Tensor(w), None, 1, 1).data[0, 0]
    # out[i,j] = x[i,j] - x[i-1,j-1] (0 outside): cross-correlation, not convolution.
    np.testing.assert_array_equal(y, [[1, 2, 3], [4, 4, 4], [7, 4, 4]])


# -- ReLU -------------------------------------------------------------------------

def test_relu_at_exactly_zero_has_zero_gradient():
    x = Tensor(np.array([-2.0, -0.0, 0.0, 1e-300, 3.0]), requires_grad=True)
    y = F.relu(x)
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 1e-300, 3.0])
    y.backward(np.array([10.0, 20.0, 30.0, 40.0, 50.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 40.0, 50.0])


def test_relu_zero_gradient_inside_a_network():
    # A ReLU fed exact zeros (a dead unit) passes no gradient to the layer below.
    lin = nn.Linear(2, 2)
    lin.weight.data[...] = [[1.0, -1.0], [0.5, 0.5]]
    x = Tensor(np.array([[3.0, 3.0]], np.float32))  # first unit: exactly 0
    F.relu(lin(x)).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad, [[0.0, 0.0], [3.0, 3.0]])
    np.testing.assert_array_equal(lin.bias.grad, [0.0, 1.0])


# -- max-pooling --------------------------------------------------------------------

def test_max_pool_negative_inputs_with_padding_ignore_the_padding():
    x = Tensor(-np.arange(1.0, 17.0).reshape(1, 1, 4, 4), requires_grad=True)
    y = F.max_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(y.data[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])
    y.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    want = np.zeros((4, 4))
    want[0, 0], want[0, 1], want[1, 0], want[1, 1] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(x.grad[0, 0], want)
    # 2x2 windows with padding 1 on a 3x3 all-negative image: corners are alone.
    z = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(F.max_pool2d(Tensor(z), 2, 2, 1).data[0, 0],
                                  [[-1.0, -2.0], [-4.0, -5.0]])
    # float32 too.
    np.testing.assert_array_equal(
        F.max_pool2d(Tensor(z.astype(np.float32)), 2, 2, 1).data[0, 0],
        np.array([[-1.0, -2.0], [-4.0, -5.0]], np.float32))


def test_max_pool_ties_in_overlapping_windows_go_to_each_windows_first():
    x = Tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    y = F.max_pool2d(x, 2, 1)
    y.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    # Overlapping windows sharing one maximum: its gradient is the sum.
    x2 = Tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)
    x2.data[0, 0, 1, 1] = 5.0
    F.max_pool2d(x2, 2, 1).backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    want = np.zeros((3, 3))
    want[1, 1] = 10.0
    np.testing.assert_array_equal(x2.grad[0, 0], want)


def test_max_pool_ties_non_overlapping_row_major_first():
    x = Tensor(np.array([[[[2.0, 2.0, 0.0, 1.0],
                           [2.0, 2.0, 1.0, 1.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2, 2).backward(np.array([[[[7.0, 9.0]]]]))
    np.testing.assert_array_equal(x.grad[0, 0], [[7, 0, 0, 9], [0, 0, 0, 0]])


def test_max_pool_odd_sizes_drop_the_last_row_and_column():
    x = Tensor(np.arange(25.0).reshape(1, 1, 5, 5), requires_grad=True)
    y = F.max_pool2d(x, 2, 2)
    np.testing.assert_array_equal(y.data[0, 0], [[6, 8], [16, 18]])
    y.sum().backward()
    want = np.zeros((5, 5))
    for r, c in [(1, 1), (1, 3), (3, 1), (3, 3)]:
        want[r, c] = 1
    np.testing.assert_array_equal(x.grad[0, 0], want)


def test_max_pool_batch_one_and_many_channels_are_independent():
    g = np.random.default_rng(0)
    x = g.permutation(2 * 3 * 4 * 6).reshape(2, 3, 4, 6) - 70.0  # distinct, mixed signs
    whole = F.max_pool2d(Tensor(x), 2, 2).data
    for n in range(2):
        single = F.max_pool2d(Tensor(x[n:n + 1]), 2, 2).data[0]
        np.testing.assert_array_equal(single, whole[n])
        for c in range(3):
            for i in range(2):
                for j in range(3):
                    assert whole[n, c, i, j] == x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max()


# -- LRN -------------------------------------------------------------------------------

def test_lrn_with_fewer_channels_than_the_window_by_hand():
    a = np.array([1.0, 20.0, -30.0]).reshape(1, 3, 1, 1)
    y = F.local_response_norm(Tensor(a), size=5, alpha=1e-3, beta=0.75, k=2.0).data.ravel()
    total = 1.0 + 400.0 + 900.0  # every channel's clipped window holds all three
    want = a.ravel() / (2.0 + 1e-3 * total) ** 0.75
    np.testing.assert_allclose(y, want, rtol=1e-13)
    y3 = F.local_response_norm(Tensor(a), size=3, alpha=1e-3, beta=0.75, k=2.0).data.ravel()
    sums = [1.0 + 400.0, total, 400.0 + 900.0]  # windows {0,1}, {0,1,2}, {1,2}
    np.testing.assert_allclose(y3, a.ravel() / (2.0 + 1e-3 * np.array(sums)) ** 0.75,
                               rtol=1e-13)
    x = Tensor(a * 1.5, requires_grad=True)
    assert gradcheck(lambda t: F.local_response_norm(t, 5, 1e-3, 0.75, 2.0), [x]) < 1e-7


def test_lrn_paper_constants_by_hand():
    # §2.2 / AlexNet: k=2, n=5, alpha=1e-4, beta=0.75; 7 channels, channel 3's
    # window is channels 1..5.
    a = np.arange(1.0, 8.0).reshape(1, 7, 1, 1) * 10
    y = F.local_response_norm(Tensor(a)).data.ravel()
    s3 = sum((10.0 * c) ** 2 for c in (2, 3, 4, 5, 6))
    assert y[3] == pytest.approx(40.0 / (2.0 + 1e-4 * s3) ** 0.75, rel=1e-13)
    s0 = sum((10.0 * c) ** 2 for c in (1, 2, 3))
    assert y[0] == pytest.approx(10.0 / (2.0 + 1e-4 * s0) ** 0.75, rel=1e-13)


# -- loss, linear, flatten --------------------------------------------------------------------

def test_cross_entropy_batch_one_by_hand():
    logits = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    loss = F.softmax_cross_entropy(logits, np.array([0]))
    z = math.exp(1) + math.exp(2) + math.exp(3)
    assert loss.item() == pytest.approx(-(1.0 - math.log(z)), rel=1e-14)
    loss.backward()
    p = np.exp([1.0, 2.0, 3.0]) / z
    np.testing.assert_allclose(logits.grad[0], p - [1, 0, 0], rtol=1e-13)


def test_cross_entropy_is_the_batch_mean_by_hand():
    logits = Tensor(np.array([[0.0, 0.0], [0.0, math.log(3.0)]]), requires_grad=True)
    loss = F.softmax_cross_entropy(logits, np.array([0, 1]))
    # -log(1/2) and -log(3/4), averaged.
    assert loss.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-14)
    loss.backward()
    np.testing.assert_allclose(logits.grad, [[-0.25, 0.25], [0.125, -0.125]], rtol=1e-13)


def test_linear_batch_one_without_bias_by_hand():
    x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    w = Tensor(np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]]), requires_grad=True)
    y = F.linear(x, w)
    np.testing.assert_array_equal(y.data, [[-2.0, 4.0]])
    y.backward(np.array([[1.0, 10.0]]))
    np.testing.assert_array_equal(x.grad, [[21.0, 10.0, -1.0]])
    np.testing.assert_array_equal(w.grad, [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])


def test_flatten_is_channel_major():
    x = np.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    y = F.flatten(Tensor(x)).data
    # Feature index c*H*W + i*W + j, as torch.flatten of an NCHW tensor.
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert y[1, c * 4 + i * 2 + j] == x[1, c, i, j]


# -- dropout: statistics and invariants -----------------------------------------------------

N_DROP = 400 * 250


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_dropout_drops_a_fraction_p_and_scales_the_rest_by_1_over_1_minus_p(p):
    minivgg.manual_seed(11)
    x = Tensor(np.full((400, 250), 3.0, np.float32))
    y = F.dropout(x, p, training=True).data
    dropped = float((y == 0).mean())
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / N_DROP), dropped
    np.testing.assert_allclose(y[y != 0], np.float32(3.0 / (1 - p)), rtol=1e-6)
    assert abs(float(y.mean()) - 3.0) < 0.05  # inverted dropout keeps the expectation
    # Every row and every column is dropped at about the same rate (no striping).
    rows, cols = (y == 0).mean(axis=1), (y == 0).mean(axis=0)
    assert abs(rows.mean() - p) < 0.01 and rows.std() < 3 * math.sqrt(p * (1 - p) / 250)
    assert cols.std() < 3 * math.sqrt(p * (1 - p) / 400)


def test_dropout_draws_a_new_mask_each_call():
    minivgg.manual_seed(5)
    x = Tensor(np.ones((100, 100)))
    a = F.dropout(x, 0.5).data != 0
    b = F.dropout(x, 0.5).data != 0
    # Independent masks agree on about half of the units.
    assert 0.45 < float((a == b).mean()) < 0.55


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout_backward_uses_the_forward_mask(p):
    minivgg.manual_seed(2)
    g = np.random.default_rng(0)
    x = Tensor(g.standard_normal((50, 40)) + 5.0, requires_grad=True)  # never 0
    y = F.dropout(x, p)
    up = g.standard_normal((50, 40))
    y.backward(up)
    kept = y.data != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(x.grad, np.where(kept, up / (1 - p), 0.0), rtol=1e-12)
    np.testing.assert_allclose(y.data, np.where(kept, x.data / (1 - p), 0.0), rtol=1e-12)


def test_dropout_identity_in_eval_mode_and_for_p_zero():
    x = Tensor(np.random.default_rng(0).standard_normal((20, 30)), requires_grad=True)
    for y in (F.dropout(x, 0.5, training=False), F.dropout(x, 0.0, training=True)):
        np.testing.assert_array_equal(y.data, x.data)
    x.grad = None
    F.dropout(x, 0.5, training=False).backward(np.full((20, 30), 2.0))
    np.testing.assert_array_equal(x.grad, np.full((20, 30), 2.0))


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_module_drops_in_train_mode_only(p):
    minivgg.manual_seed(8)
    layer = nn.Dropout(p)
    assert layer.training
    x = Tensor(np.ones((300, 200), np.float32))
    y = layer(x).data
    assert abs(float((y == 0).mean()) - p) < 0.01
    np.testing.assert_allclose(y[y != 0], 1.0 / (1 - p), rtol=1e-6)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, x.data)
    layer.train()
    assert float((layer(x).data == 0).mean()) > p - 0.01
    # Inside a container: the container's mode reaches the layer.
    seq = nn.Sequential(nn.ReLU(), nn.Dropout(p))
    seq.eval()
    np.testing.assert_array_equal(seq(x).data, x.data)
    seq.train()
    assert abs(float((seq(x).data == 0).mean()) - p) < 0.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeros", [7, 1 << 18])
def test_relu_into_equals_maximum_with_zero(rng, monkeypatch, dtype, zeros):
    """relu_into (the CPU convolutions' fused ReLU) against np.maximum(a, 0):
    small and large, contiguous (in slices when larger than the kept zeros)
    and strided arrays, in place and into another array, NaN and -0.0 kept
    as maximum keeps them."""
    from minivgg.fast import activation
    monkeypatch.setattr(activation, "RELU_ZEROS", zeros)
    for shape in [(5,), (3, 4, 5), (64, 70)]:
        a = rng.standard_normal(shape).astype(dtype)
        a.reshape(-1)[:3] = [np.nan, -0.0, 0.0]
        for src in (a, a[..., ::2], a.T, np.asfortranarray(a)):
            want = np.maximum(src, 0)
            got = activation.relu_into(src, np.empty_like(src))
            np.testing.assert_array_equal(got, want)
            assert np.array_equal(np.signbit(got), np.signbit(want))
            inplace = src.copy()
            assert activation.relu_into(inplace, inplace) is inplace
            np.testing.assert_array_equal(inplace, want)
