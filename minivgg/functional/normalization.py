"""Local Response Normalisation, as in AlexNet (Krizhevsky et al. 2012), used
by configuration A-LRN (§2.2, Table 1) and found by the paper not to help
(§4.1, Table 3).

    b_c = a_c / (k + alpha * sum_{c' in window(c)} a_{c'}^2) ** beta

over a window of ``size`` neighbouring channels, c' from c - size//2 to
c + (size-1)//2, clipped at the first and last channel. The paper's values:
size 5, k 2, alpha 1e-4, beta 0.75.

Convention: here ``alpha`` multiplies the plain *sum* of squares (AlexNet's
and the paper's definition). PyTorch's ``nn.LocalResponseNorm`` and Caffe's
LRN layer divide alpha by ``size`` (they use the mean) and default k to 1, so
this layer with alpha equals theirs with alpha * size and the same k.

Backward. Write s_c = k + alpha * sum_{c' in window(c)} a_{c'}^2, so that
b_c = a_c * s_c^-beta. Input a_j reaches b_j directly, and every b_c whose
window holds j through s_c, with d s_c / d a_j = 2 alpha a_j:

    dL/da_j = g_j s_j^-beta  -  2 alpha beta a_j * sum_{c : j in window(c)} g_c a_c s_c^(-beta-1)

The sum runs over the channels whose window contains j: the same window with
its two extents swapped (``_window_sum(..., hi, lo)``).

On cuda and emu devices forward and backward are the kernels of
``kernels/lrn.cu``.
"""
from ..autograd import Function
from ..cuda import ops


def _window_sum(a, before, after):
    """s[:, c] = sum of a[:, c-before .. c+after], clipped at the edges."""
    s = a.copy()
    c = a.shape[1]
    for d in range(1, before + 1):
        if d < c:
            s[:, d:] += a[:, :c - d]
    for d in range(1, after + 1):
        if d < c:
            s[:, :c - d] += a[:, d:]
    return s


class LocalResponseNorm(Function):
    """x (N, C, H, W) -> y (N, C, H, W), normalised across channels."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if self.device.uses_kernels:
            y, self.s = ops.lrn_forward(self.device, x, self.size, self.alpha, self.beta, self.k)
            self.x = x
            return y
        lo, hi = self.size // 2, (self.size - 1) // 2
        s = _window_sum(x * x, lo, hi)
        s *= x.dtype.type(self.alpha)
        s += x.dtype.type(self.k)
        self.x, self.s = x, s
        return x * s ** x.dtype.type(-self.beta)

    def backward(self, gy):
        x, s = self.x, self.s
        if self.device.uses_kernels:
            return ops.lrn_backward(self.device, gy, x, s, self.size, self.alpha, self.beta)
        dt = x.dtype.type
        scale = s ** dt(-self.beta)
        # Channel c is in the window of c' for c' from c-hi to c+lo: the
        # adjoint window swaps the two extents.
        lo, hi = self.size // 2, (self.size - 1) // 2
        t = _window_sum(gy * x * scale / s, hi, lo)
        return gy * scale - dt(2.0 * self.alpha * self.beta) * x * t

    def release(self):
        super().release()
        self.x = self.s = None


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """AlexNet LRN across channels. x (N, C, H, W) -> (N, C, H, W).

    alpha multiplies the *sum* of squares (not divided by ``size``); to match
    ``torch.nn.LocalResponseNorm`` pass it alpha * size and the same k.
    """
    if x.ndim != 4:
        raise ValueError(f"local_response_norm: expected input of shape (N, C, H, W), "
                         f"got {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be >= 1, got {size}")
    return LocalResponseNorm(size, alpha, beta, k)(x)
