"""The fast tier's max-pooling (minivgg/fast/pooling.py): its cache-sized
chunks and its split over threads, against loops written from the rule
(the first maximum of each window gets the gradient), with ties and NaNs.
(Its layouts: tests/fast/test_channels_last.py; its equality with the
textbook pooling: tests/test_tiers.py.)"""
import numpy as np
import pytest

from minivgg import Tensor
from minivgg import functional as F
from minivgg.fast import pooling, select
from minivgg.threads import set_threads


def _pool_backward_loops(x, gy, k, s, p):
    """dL/dx of max-pooling by loops: each window's gy goes to its first
    maximum in row-major order (its first NaN, if it holds one)."""
    (kh, kw), (sh, sw), (ph, pw) = [(v, v) if np.isscalar(v) else v for v in (k, s, p)]
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    gx = np.zeros(xpad.shape)
    for b in range(n):
        for ch in range(c):
            for i in range(gy.shape[2]):
                for j in range(gy.shape[3]):
                    win = xpad[b, ch, i * sh:i * sh + kh, j * sw:j * sw + kw].ravel()
                    nan = np.flatnonzero(np.isnan(win))
                    first = nan[0] if nan.size else int(np.argmax(win))
                    gx[b, ch, i * sh + first // kw, j * sw + first % kw] += gy[b, ch, i, j]
    return gx[:, :, ph:ph + h, pw:pw + w]


@pytest.mark.parametrize("chunk", [1, 5, 1 << 16])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs,k,s,p", [
    ((2, 6, 48, 48), 2, 2, 0), ((2, 5, 47, 45), 2, 2, 0), ((2, 4, 48, 44), 3, 2, 1),
    ((1, 6, 46, 48), (1, 2), (1, 2), 0), ((2, 5, 44, 46), (3, 1), (2, 1), (1, 0))])
def test_max_pool_in_channel_chunks_and_threads(rng, monkeypatch, chunk, threads, xs, k, s, p):
    """The CPU path's chunks (CHUNK_ELEMENTS outputs, down to one channel) and
    its split over threads (the inputs are big enough for two) give exactly
    the reference maximum and the first-maximum gradient, with ties (values
    from a few levels, ReLU-like zeros) and a NaN in some windows."""
    monkeypatch.setattr(pooling, "CHUNK_ELEMENTS", chunk)
    x = np.maximum(rng.integers(-3, 4, xs), 0).astype(np.float32)
    x[0, 1, 3, 4] = x[-1, -1, -2, -1] = np.nan
    set_threads(threads)
    try:
        t = Tensor(x, requires_grad=True)
        y = select.max_pool2d(t, k, s, p)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(gy)
    finally:
        set_threads(None)
    np.testing.assert_array_equal(y.data, F.max_pool2d_reference(x, k, s, p))
    np.testing.assert_allclose(t.grad, _pool_backward_loops(x, gy, k, s, p), rtol=1e-6,
                               atol=1e-6)  # overlapping windows add in float32
