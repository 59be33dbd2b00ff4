"""Fully-connected layers (§2.1: FC-4096, FC-4096, FC-1000 of Table 1) and
the flattening between the conv stack and them.
"""
from ..autograd import Function, reshape


def check_linear_shapes(x_shape, w_shape, where="linear"):
    if len(w_shape) != 2:
        raise ValueError(f"{where}: expected weight of shape (F_out, F_in), got {tuple(w_shape)}")
    if len(x_shape) != 2 or x_shape[1] != w_shape[1]:
        raise ValueError(f"{where}: expected input of shape (N, {w_shape[1]}), "
                         f"got {tuple(x_shape)}")


class Linear(Function):
    """y = x @ w^T + b. x (N, F_in), w (F_out, F_in), b (F_out,) -> (N, F_out)."""

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        gx = gy @ self.w if self.needs_input_grad[0] else None
        gw = gy.T @ self.x if self.needs_input_grad[1] else None
        grads = (gx, gw)
        if len(self.needs_input_grad) == 3:
            grads += (gy.sum(axis=0) if self.needs_input_grad[2] else None,)
        return grads

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
