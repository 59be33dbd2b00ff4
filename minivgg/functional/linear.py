"""Fully-connected layers (§2.1: FC-4096, FC-4096, FC-1000 of Table 1), and
the flattening of the last feature map that feeds them.

    y = x @ W^T + b               x (N, F_in), W (F_out, F_in)
    dx = gy @ W,  dW = gy^T @ x,  db = gy summed over the batch
"""
from ..arithmetic import reshape
from ..autograd import Function
from .shapes import check_linear_shapes


class Linear(Function):
    """y = x @ w^T + b. x (N, F_in), w (F_out, F_in), b (F_out,) -> (N, F_out)."""

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = x @ w.T
        if b is not None:
            y = y + b
        return y

    def backward(self, gy):
        need = self.needs_input_grad
        gx = gy @ self.w if need[0] else None
        gw = gy.T @ self.x if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (gy.sum(axis=0) if need[2] else None)

    def release(self):
        super().release()
        self.x = self.w = None


def linear(x, w, b=None):
    """Affine map. x (N, F_in), w (F_out, F_in), b (F_out,) or None -> (N, F_out)."""
    check_linear_shapes(x.shape, w.shape)
    return Linear()(x, w) if b is None else Linear()(x, w, b)


def flatten(x):
    """(N, C, H, W) -> (N, C*H*W), in C order (matches PyTorch's flatten)."""
    return reshape(x, (x.shape[0], -1))
