"""The training objective (§3.1: "optimising the multinomial logistic
regression objective"): softmax cross-entropy, averaged over the batch.

On cuda and emu devices forward and backward are the kernels of
``kernels/loss.cu``.
"""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module, is_cupy_array
from ..cuda import ops


def log_softmax(logits, axis=1):
    """Array-level log-softmax (no gradient), numerically stable."""
    logits = logits.data if isinstance(logits, Tensor) else logits
    xp = get_array_module(logits)
    z = logits - logits.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def softmax(logits, axis=1):
    """Array-level softmax (no gradient): class posteriors from scores."""
    xp = get_array_module(logits.data if isinstance(logits, Tensor) else logits)
    return xp.exp(log_softmax(logits, axis))


class SoftmaxCrossEntropy(Function):
    """loss = -mean_n log softmax(logits)[n, labels[n]].

    logits (N, K), labels (N,) integers in [0, K) -> scalar.
    """

    def __init__(self, labels):
        self.labels = labels

    def forward(self, logits):
        if self.device.uses_kernels:
            loss, self.probs = ops.softmax_xent_forward(self.device, logits, self.labels)
            return loss.mean()
        xp = get_array_module(logits)
        n = logits.shape[0]
        logp = log_softmax(logits, axis=1)
        rows = xp.arange(n)
        self.probs = xp.exp(logp)
        return -logp[rows, self.labels].mean()

    def backward(self, gy):
        n = self.probs.shape[0]
        if self.device.uses_kernels:
            return ops.softmax_xent_backward(self.device, self.probs, self.labels, gy)
        xp = get_array_module(gy)
        g = self.probs.copy()
        g[xp.arange(n), self.labels] -= 1
        g *= gy / n
        return g

    def release(self):
        super().release()
        self.probs = None


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy. logits (N, K) Tensor, labels (N,) ints -> scalar Tensor.

    Labels may be given on the host (NumPy) for a model on a GPU: they are
    class indices, not activations, and are copied to the logits' device.
    Host labels outside [0, K) are refused here. Labels already on a GPU are
    not checked on the host (that would stall it until the forward pass is
    done, every step); a label out of range makes its row's loss NaN.
    """
    if not isinstance(logits, Tensor):
        logits = Tensor(logits)
    labels = labels.data if isinstance(labels, Tensor) else labels
    if not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    dev = logits.device
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K), "
                         f"got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: expected labels of shape ({logits.shape[0]},), "
                         f"got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"softmax_cross_entropy: labels must be integers, got {labels.dtype}")
    k = logits.shape[1]
    if not is_cupy_array(labels) and labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"softmax_cross_entropy: labels must be in [0, {k}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    with dev.context():
        labels = dev.asarray(labels).astype(np.int64, copy=False)
    return SoftmaxCrossEntropy(labels)(logits)
