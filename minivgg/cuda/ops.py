"""The GPU side of each op: which kernel it launches, with which grid,
arguments and output arrays. The same code runs on a ``cuda`` device (CuPy
arrays) and on the ``emu`` device (NumPy arrays, kernels built by g++), so
everything here is checked on a machine without a GPU.

Each function mirrors a NumPy function of ``minivgg/functional`` and
returns the same values (up to float rounding); the functional modules
choose between the two from ``Function.device``.

Layouts. Activations are 4-D arrays (N, C, H, W) that are *dense* in some
axis order: the convolution leaves them channel-major, (C, N, H, W) in
memory, and nobody transposes them back. Kernels receive the dense buffer
as a C-contiguous array plus the element strides of the logical (N, C, H,
W) view (``dense``), and allocate outputs in the input's axis order
(``empty_in_order_of``). Scalars are passed as explicit NumPy types, as the
launcher demands.
"""
import numpy as np

i64 = np.int64


# ---------------------------------------------------------------------------
# Layout helpers
# ---------------------------------------------------------------------------

def _axis_order(a):
    """Axes of ``a`` from the largest stride to the smallest."""
    return sorted(range(a.ndim), key=lambda i: (-abs(a.strides[i]), i))


def _elements(strides, itemsize):
    return tuple(i64(s // itemsize) for s in strides)


def dense(a, xp):
    """(a, buffer, strides) for a kernel that reads ``a`` through strides.

    ``a`` is returned unchanged when it is dense in some axis order (for
    example a channel-major activation viewed as (N, C, H, W)), else as a
    C-order copy; ``buffer`` is its C-contiguous view in memory order, and
    ``strides`` the element strides of ``a``'s logical axes.
    """
    buf = a.transpose(tuple(_axis_order(a)))
    if not buf.flags.c_contiguous:
        a = xp.ascontiguousarray(a)
        buf = a
    return a, buf, _elements(a.strides, a.itemsize)


def empty_in_order_of(a, shape, xp, dtype=None):
    """An empty array of ``shape`` laid out in the same axis order as ``a``."""
    order = _axis_order(a)
    buf = xp.empty(tuple(shape[i] for i in order), dtype=dtype or a.dtype)
    return buf.transpose(tuple(int(i) for i in np.argsort(order)))


def same_layout(a, like, xp):
    """``a`` itself if its element strides equal ``like``'s, else a copy laid
    out like ``like`` (so that both can be walked as flat buffers together)."""
    if _elements(a.strides, a.itemsize) == _elements(like.strides, like.itemsize):
        return a
    out = empty_in_order_of(like, like.shape, xp, a.dtype)
    out[...] = a
    return out


def _flat(a):
    """The C-contiguous buffer of a dense array, in memory order."""
    return a.transpose(tuple(_axis_order(a)))


#: The kernels split each 64-bit element index once and do the rest of their
#: index arithmetic in 32 bits (kernels/common.cuh): these products must stay
#: below it.
INDEX_LIMIT = 2 ** 31


def check_index_range(kernel, **products):
    """ValueError unless every product named here is below INDEX_LIMIT."""
    for name, value in products.items():
        if int(value) >= INDEX_LIMIT:
            raise ValueError(f"{kernel}: {name} = {int(value):,} is too large for the kernel's "
                             f"32-bit index arithmetic (at most {INDEX_LIMIT - 1:,}); use a "
                             f"smaller batch, or split it with --micro-batch")


# ---------------------------------------------------------------------------
# Convolution (kernels/conv.cu)
# ---------------------------------------------------------------------------

def im2col(dev, x, kh, kw, stride, padding):
    """x (N, C, H, W) -> col (C*KH*KW, N*OH*OW), the CPU path's layout."""
    xp = dev.xp
    (sy, sx), (py, px) = stride, padding
    n, c, h, w = x.shape
    oh, ow = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    check_index_range("im2col", **{"C*KH*KW": c * kh * kw, "N*OH*OW": n * oh * ow})
    _, buf, (sn, sc, sh, sw) = dense(x, xp)
    col = xp.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    dev.kernels.launch("im2col", x.dtype, col.size, col, buf, i64(n), i64(c), i64(h), i64(w),
                       sn, sc, sh, sw, i64(kh), i64(kw), i64(sy), i64(sx), i64(py), i64(px),
                       i64(oh), i64(ow))
    return col


def col2im(dev, col, x_shape, kh, kw, stride, padding):
    """col (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), stored channel-major."""
    xp = dev.xp
    (sy, sx), (py, px) = stride, padding
    n, c, h, w = x_shape
    oh, ow = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    check_index_range("col2im", **{"N*H*W": n * h * w})
    col = xp.ascontiguousarray(col)
    dx = xp.empty((c, n, h, w), dtype=col.dtype)
    dev.kernels.launch("col2im", col.dtype, dx.size, dx, col, i64(n), i64(c), i64(h), i64(w),
                       i64(kh), i64(kw), i64(sy), i64(sx), i64(py), i64(px), i64(oh), i64(ow))
    return dx.transpose(1, 0, 2, 3)


def bias_act(dev, y2, b, relu):
    """In place on the (K, M) GEMM result: y2 += b[:, None], then ReLU if ``relu``."""
    check_index_range("bias_act", M=y2.shape[1])
    b = dev.xp.ascontiguousarray(b, dtype=y2.dtype)
    dev.kernels.launch("bias_act", y2.dtype, y2.size, y2, b, i64(y2.shape[0]),
                       i64(y2.shape[1]), np.int32(bool(relu)))
    return y2


# ---------------------------------------------------------------------------
# ReLU and dropout (kernels/activation.cu)
# ---------------------------------------------------------------------------

def relu_forward(dev, x):
    """y = max(x, 0), in x's layout."""
    xp = dev.xp
    x, buf, _ = dense(x, xp)
    y = empty_in_order_of(x, x.shape, xp)
    dev.kernels.launch("relu_fwd", x.dtype, y.size, _flat(y), buf, i64(y.size))
    return y


def relu_backward(dev, gy, y):
    """gx = gy where y > 0, else 0; in y's layout."""
    xp = dev.xp
    gy = same_layout(gy, y, xp)
    gx = empty_in_order_of(y, y.shape, xp)
    dev.kernels.launch("relu_bwd", y.dtype, y.size, _flat(gx), _flat(gy), _flat(y), i64(y.size))
    return gx


def dropout(dev, x, key, threshold, scale, backward=False):
    """x * mask with the hashed mask of stream ``key`` (see minivgg.random)."""
    xp = dev.xp
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    dev.kernels.launch("dropout_bwd" if backward else "dropout_fwd", x.dtype, x.size, y, x,
                       i64(x.size), np.uint64(key), i64(threshold), x.dtype.type(scale))
    return y


# ---------------------------------------------------------------------------
# Max-pooling (kernels/pool.cu)
# ---------------------------------------------------------------------------

def max_pool_forward(dev, x, kernel, stride, padding):
    """x (N, C, H, W) -> y (N, C, OH, OW) and the window-local argmax (uint8)."""
    xp = dev.xp
    (kh, kw), (sy, sx), (py, px) = kernel, stride, padding
    n, c, h, w = x.shape
    oh, ow = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    check_index_range("max_pool_fwd", **{"C*OH*OW": c * oh * ow})
    x, buf, xs = dense(x, xp)
    y = empty_in_order_of(x, (n, c, oh, ow), xp)
    arg = empty_in_order_of(x, (n, c, oh, ow), xp, np.uint8)
    ys = _elements(y.strides, y.itemsize)
    dev.kernels.launch("max_pool_fwd", x.dtype, y.size, _flat(y), _flat(arg), buf, i64(n),
                       i64(c), i64(h), i64(w), *xs, i64(oh), i64(ow), *ys, i64(kh), i64(kw),
                       i64(sy), i64(sx), i64(py), i64(px))
    return y, arg


def max_pool_backward(dev, gy, arg, x_shape, kernel, stride, padding):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each window's gradient to its argmax."""
    xp = dev.xp
    (kh, kw), (sy, sx), (py, px) = kernel, stride, padding
    n, c, h, w = x_shape
    oh, ow = gy.shape[2:]
    check_index_range("max_pool_bwd", **{"C*H*W": c * h * w})
    gy = same_layout(gy, arg, xp)
    gx = empty_in_order_of(arg, x_shape, xp, gy.dtype)
    xs, ys = _elements(gx.strides, gx.itemsize), _elements(arg.strides, arg.itemsize)
    dev.kernels.launch("max_pool_bwd", gy.dtype, gx.size, _flat(gx), _flat(gy), _flat(arg),
                       i64(n), i64(c), i64(h), i64(w), *xs, i64(oh), i64(ow), *ys, i64(kh),
                       i64(kw), i64(sy), i64(sx), i64(py), i64(px))
    return gx


# ---------------------------------------------------------------------------
# Local response normalisation (kernels/lrn.cu)
# ---------------------------------------------------------------------------

def lrn_forward(dev, x, size, alpha, beta, k):
    """y and the normaliser s = k + alpha * (window sum of x^2), both in x's layout."""
    xp = dev.xp
    check_index_range("lrn_fwd", **{"C*H*W": int(np.prod(x.shape[1:]))})
    x, buf, strides = dense(x, xp)
    y = empty_in_order_of(x, x.shape, xp)
    s = empty_in_order_of(x, x.shape, xp)
    t = x.dtype.type
    dev.kernels.launch("lrn_fwd", x.dtype, x.size, _flat(y), _flat(s), buf, *map(i64, x.shape),
                       *strides, i64(size), t(alpha), t(beta), t(k))
    return y, s


def lrn_backward(dev, gy, x, s, size, alpha, beta):
    """The gradient of LRN (x and s as returned by lrn_forward's input and output)."""
    xp = dev.xp
    gy = same_layout(gy, s, xp)
    x = same_layout(x, s, xp)
    gx = empty_in_order_of(s, s.shape, xp)
    strides = _elements(s.strides, s.itemsize)
    t = s.dtype.type
    dev.kernels.launch("lrn_bwd", s.dtype, s.size, _flat(gx), _flat(gy), _flat(x), _flat(s),
                       *map(i64, s.shape), *strides, i64(size), t(alpha), t(beta))
    return gx


# ---------------------------------------------------------------------------
# Softmax cross-entropy (kernels/loss.cu)
# ---------------------------------------------------------------------------

def softmax_xent_forward(dev, logits, labels):
    """(per-row losses (N,), probabilities (N, K)) for int64 labels (N,)."""
    xp = dev.xp
    logits = xp.ascontiguousarray(logits)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    n, k = logits.shape
    loss = xp.empty(n, dtype=logits.dtype)
    probs = xp.empty_like(logits)
    dev.kernels.launch("softmax_xent_fwd", logits.dtype, n, loss, probs, logits, labels, i64(n),
                       i64(k))
    return loss, probs


def softmax_xent_backward(dev, probs, labels, dloss):
    """(probs - onehot(labels)) * dloss / N, dloss a one-element array on the device
    (read by the kernel, so that the host need not wait for its value)."""
    xp = dev.xp
    gx = xp.empty_like(probs)
    n, k = probs.shape
    check_index_range("softmax_xent_bwd", K=k)
    dloss = xp.ascontiguousarray(dloss, dtype=probs.dtype).reshape(1)
    dev.kernels.launch("softmax_xent_bwd", probs.dtype, probs.size, gx, probs,
                       xp.ascontiguousarray(labels, dtype=np.int64), dloss, i64(n), i64(k))
    return gx


# ---------------------------------------------------------------------------
# SGD (kernels/sgd.cu)
# ---------------------------------------------------------------------------

def sgd_step(dev, p, v, g, lr, momentum, weight_decay, grad_scale=1.0):
    """In place on flat buffers: v = mu*v + grad_scale*g + wd*p; p -= lr*v."""
    t = p.dtype.type
    dev.kernels.launch("sgd_step", p.dtype, p.size, p, v, g, i64(p.size), t(lr), t(momentum),
                       t(weight_decay), t(grad_scale))
