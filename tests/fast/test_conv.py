"""The fast tier's channel-major im2col convolution (minivgg/fast/conv.py):
its blocks of whole images or bands of output rows, the copies split over
threads, the bias from a row of ones or added, and the first layer's
backward without dX, against the loop reference and the plain chunked dW
(float64), with gradchecks."""
import numpy as np
import pytest

from minivgg import Tensor, gradcheck
from minivgg import functional as F
from minivgg.backend import device
from minivgg.fast import conv, select
from kinks import conv_inputs, conv_relu_kinks
from test_functional import CONV_CASES   # the textbook tier's cases, on the fast tier


def test_conv2d_chunked_and_threaded_paths_match_reference(rng, monkeypatch):
    """Large layers build im2col chunk by chunk and copy with threads; force
    both on a small case and compare with the one-chunk path and the reference."""
    monkeypatch.setattr(select, "CONV", "im2col")
    x0, w0, b0 = (rng.standard_normal((5, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3)),
                  rng.standard_normal(4))
    g = rng.standard_normal((5, 4, 6, 7))

    def run():
        ts = [Tensor(a.copy(), requires_grad=True) for a in (x0, w0, b0)]
        y = select.conv2d(*ts, stride=1, padding=1)
        y.backward(g)
        return [y.data] + [t.grad for t in ts]

    whole = run()
    monkeypatch.setitem(conv.CHUNK_ELEMENTS, "cpu", 200)   # one image per chunk
    monkeypatch.setattr(conv, "_PARALLEL_MIN", 16)
    assert len(conv._chunks(5, 27 * 42)) == 5
    chunked = run()
    np.testing.assert_allclose(chunked[0], F.conv2d_reference(x0, w0, b0, 1, 1), rtol=1e-12,
                               atol=1e-12)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    x, w, b = (Tensor(a.copy(), requires_grad=True) for a in (x0, w0, b0))
    assert gradcheck(lambda x, w, b: select.conv2d(x, w, b, 1, 1), [x, w, b]) < 1e-5


@pytest.mark.parametrize("chunk", [1, 300, 1 << 20])
@pytest.mark.parametrize("bias,relu", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("xs,ws,stride,pad", CONV_CASES + [
    ((2, 8, 3, 4), (5, 8, 3, 3), 1, 0),   # more weights per filter than outputs: bias added
])
def test_conv2d_in_bands_and_without_input_grad(rng, monkeypatch, chunk, bias, relu, xs, ws,
                                                stride, pad):
    """The CPU im2col path in blocks of whole images or, when one image's
    columns exceed CHUNK_ELEMENTS, in bands of output rows (down to one row),
    with the bias from a ones row of the columns (or, for a layer with more
    weights per filter than outputs per channel, added); and a layer whose input
    needs no gradient (the first), whose backward masks gy and forms dW and
    db block by block: all against the loop reference, and dW and db of that
    layer and of the same layer with dX against the plain reference
    (_conv_weight_grad of the masked gy, a bias sum)."""
    monkeypatch.setitem(conv.CHUNK_ELEMENTS, "cpu", chunk)
    monkeypatch.setattr(select, "CONV", "im2col")
    x0, w0, *b0 = conv_inputs(xs, ws, stride, pad, relu, bias=bias)
    b0 = b0[0] if bias else None

    def run(x_grad):
        x = Tensor(x0, requires_grad=x_grad)
        w = Tensor(w0, requires_grad=True)
        b = Tensor(b0, requires_grad=True) if bias else None
        y = select.conv2d(x, w, b, stride, pad, relu=relu)
        gy = np.random.default_rng(1).standard_normal(y.shape)
        y.backward(gy)
        return y.data, w.grad, (b.grad if bias else None)

    ref = F.conv2d_reference(x0, w0, b0, stride, pad)
    y, gw, gb = run(False)
    np.testing.assert_allclose(y, np.maximum(ref, 0) if relu else ref, rtol=1e-12, atol=1e-12)
    _, gw_dx, gb_dx = run(True)
    gy = np.random.default_rng(1).standard_normal(y.shape) * ((y > 0) if relu else 1)
    gy2 = gy.transpose(1, 0, 2, 3).reshape(ws[0], -1)
    gw_ref = conv._conv_weight_grad(device("cpu"), x0, gy2, ws, conv._pair(stride, "stride"),
                                    conv._pair(pad, "padding"))
    for got_w, got_b in ((gw, gb), (gw_dx, gb_dx)):
        np.testing.assert_allclose(got_w, gw_ref, rtol=1e-12, atol=1e-12)
        if bias:
            np.testing.assert_allclose(got_b, gy2.sum(axis=1), rtol=1e-12, atol=1e-12)
    x = Tensor(x0)
    w = Tensor(w0, requires_grad=True)
    args = [x, w] + ([Tensor(b0, requires_grad=True)] if bias else [])
    assert gradcheck(lambda x, w, *b: select.conv2d(x, w, b[0] if b else None, stride, pad,
                                               relu=relu), args,
                     kinks=conv_relu_kinks(stride, pad) if relu else None) < 1e-5


def test_conv2d_bands_cut_only_images_bigger_than_a_chunk():
    assert conv.CHUNK_ELEMENTS["cpu"] == 1 << 19
    # VGG's first layer at 224x224: 27 x 50,176 columns per image, cut into
    # bands whose columns and 64 outputs hold about 2^19 numbers (25 rows).
    blocks = conv._cpu_blocks(2, 224, 224, 27, 64)
    assert blocks[:2] == [(0, 1, 0, 25), (0, 1, 25, 50)] and blocks[8] == (0, 1, 200, 224)
    assert len(blocks) == 18 and blocks[9] == (1, 2, 0, 25)
    # At 32x32 whole images: 18 per chunk would make four blocks, but a
    # batch is cut into at least MIN_BLOCKS even ones, for the threads.
    assert conv.MIN_BLOCKS == 8
    assert conv._cpu_blocks(64, 32, 32, 27, 64) == [(8 * i, 8 * i + 8, 0, 32) for i in range(8)]
    # A bigger batch into as many chunks as the cache needs, spread evenly.
    blocks = conv._cpu_blocks(200, 32, 32, 27, 64)
    assert len(blocks) == 12 and {i1 - i0 for i0, i1, _, _ in blocks} == {16, 17}
    assert conv._cpu_blocks(3, 32, 32, 27, 64) == [(i, i + 1, 0, 32) for i in range(3)]
