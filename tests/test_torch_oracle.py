"""PyTorch as an oracle: forward and backward of every op, float32 and float64."""
import numpy as np
import pytest

from minivgg import Tensor
from minivgg import functional as F

torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                                            "pip install torch==2.13.0")
tF = torch.nn.functional

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def compare(ours_fn, torch_fn, arrays, dtype, grad_mask=None, rng=None):
    """Run both on the same inputs and a random upstream gradient; compare all."""
    rng = rng or np.random.default_rng(0)
    arrays = [a.astype(dtype) for a in arrays]
    grad_mask = grad_mask or [True] * len(arrays)
    ours_in = [Tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad_mask)]
    torch_in = [torch.tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad_mask)]
    y = ours_fn(*ours_in)
    ty = torch_fn(*torch_in)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), **TOL[dtype])
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.tensor(g))
    for o, t, req in zip(ours_in, torch_in, grad_mask):
        if req:
            np.testing.assert_allclose(o.grad, t.grad.numpy(), **TOL[dtype])


CONV_CASES = [((2, 3, 6, 5), (4, 3, 3, 3), 1, 1), ((2, 4, 5, 5), (3, 4, 1, 1), 1, 0),
              ((1, 1, 7, 6), (2, 1, 3, 2), 1, 0), ((2, 3, 7, 7), (2, 3, 3, 3), 2, 1),
              ((3, 3, 9, 4), (5, 3, 3, 3), 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES)
def test_conv2d(rng, dtype, xs, ws, stride, pad):
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]
    compare(lambda x, w, b: F.conv2d(x, w, b, stride, pad),
            lambda x, w, b: tF.conv2d(x, w, b, stride, pad), arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,k,s,p", [((2, 3, 8, 6), 2, 2, 0), ((2, 2, 7, 9), 2, 2, 0),
                                      ((1, 2, 7, 7), 3, 2, 1)])
def test_max_pool2d(rng, dtype, xs, k, s, p):
    x = rng.permutation(np.prod(xs)).reshape(xs) / 10.0
    compare(lambda t: F.max_pool2d(t, k, s, p), lambda t: tF.max_pool2d(t, k, s, p), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_ties_match_torch(dtype):
    x = np.zeros((1, 2, 4, 4))  # all ties: both pick the first element of each window
    x[0, 1, :2, :2] = 3.0
    compare(lambda t: F.max_pool2d(t, 2, 2), lambda t: tF.max_pool2d(t, 2, 2), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(rng, dtype):
    compare(F.relu, tF.relu, [rng.standard_normal((3, 4, 5))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [5, 3])
def test_local_response_norm_maps_to_torch_with_alpha_times_n(rng, dtype, size):
    x = rng.standard_normal((2, 9, 3, 4)) * 30
    alpha, beta, k = 1e-4, 0.75, 2.0
    compare(lambda t: F.local_response_norm(t, size, alpha, beta, k),
            lambda t: tF.local_response_norm(t, size, alpha=alpha * size, beta=beta, k=k),
            [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(rng, dtype):
    arrays = [rng.standard_normal((4, 6)), rng.standard_normal((3, 6)), rng.standard_normal(3)]
    compare(F.linear, tF.linear, arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten(rng, dtype):
    compare(F.flatten, lambda t: torch.flatten(t, 1), [rng.standard_normal((2, 3, 2, 2))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy(rng, dtype):
    labels = rng.integers(0, 7, 5)
    compare(lambda t: F.softmax_cross_entropy(t, labels),
            lambda t: tF.cross_entropy(t, torch.tensor(labels)),
            [rng.standard_normal((5, 7)) * 3], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_torch_given_the_same_mask(rng, dtype):
    # Masks come from different generators; compare with torch applying our mask.
    x = rng.standard_normal((6, 8))
    ours = F.dropout(Tensor(x.astype(dtype)), 0.5, True, key=5).data
    mask = (ours != 0).astype(dtype)
    np.testing.assert_allclose(ours, (torch.tensor(x.astype(dtype)) * torch.tensor(mask) / 0.5)
                               .numpy(), **TOL[dtype])
