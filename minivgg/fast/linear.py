"""Fully-connected layers (§2.1: FC-4096, FC-4096, FC-1000 of Table 1), the
fast tier's twin of minivgg/functional/linear.py (tests/test_tiers.py holds
them equal): the product turned round for small batches, and dW handed to
the optimizer's buffer (handoff.py) in cache-sized blocks. What each lever
bought: docs/benchmarks.md, "Measurements behind the fast tier's constants".
"""
import numpy as np

from ..autograd import Function
from ..threads import parallel, serial_blas
from . import products
from .handoff import ADDED_IN_PLACE
from .winograd import scratch

#: Elements of dW per block (its rows x F_in) when Linear stores its weight
#: gradient straight into the optimizer's gradient buffer: a block stays in
#: cache between the GEMM that writes it and the addition that reads it,
#: or, when written over the buffer, between OpenBLAS's own pass that
#: clears it and the pass that fills it.
ACCUMULATE_ELEMENTS = 1 << 20
#: matmul_into cuts dW into at least this many blocks of at least MIN_ROWS
#: rows where it can, so that a small layer's dW is shared by the threads
#: too (constants: the blocks decide how the products round).
MIN_BLOCKS = 8
MIN_ROWS = 16


def matmul_into(a, b, out, add=True):
    """out += a @ b (out = a @ b when not ``add``), a (M, P), b (P, Q),
    out (M, Q), without an out-sized temporary.

    The product is formed in blocks of rows that fit in cache: each block
    is added while it is hot (one pass over ``out`` instead of a freshly
    allocated, page-faulted M x Q product and a second pass to add it), or
    written in place (BLAS clears its output before it accumulates into
    it: on a cache-sized block both passes stay in cache; over the whole of
    FC1's 103M-element dW they would be two passes over memory). The
    blocks, which write disjoint rows, run on the threads side by side.
    """
    m = out.shape[0]
    rows = max(1, ACCUMULATE_ELEMENTS // max(out.shape[1], 1))
    # At least MIN_BLOCKS blocks of MIN_ROWS rows or more, for the threads to share.
    rows = max(1, min(rows, max(MIN_ROWS, -(-m // MIN_BLOCKS))))
    starts = range(0, m, rows)

    def block(j):
        r0 = starts[j]
        r1 = min(out.shape[0], r0 + rows)
        if add:
            t = scratch("fcdw", (r1 - r0, out.shape[1]), out.dtype)
            np.matmul(a[r0:r1], b, out=t)
            out[r0:r1] += t
        else:
            np.matmul(a[r0:r1], b, out=out[r0:r1])
    parallel(block, len(starts))
    return out


class Linear(Function):
    """y = x @ w^T + b. x (N, F_in), w (F_out, F_in), b (F_out,) -> (N, F_out).

    The textbook Linear (minivgg/functional/linear.py) with two CPU levers:
    the product turned round for small batches, and dW handed straight to
    the optimizer's buffer (handoff.py) in cache-sized blocks."""

    grad_into = grad_fresh = None   # set by handoff.BufferHandOff.offer before backward

    @serial_blas
    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        # On the CPU, (w @ x^T)^T: OpenBLAS is faster with the weights as
        # the left operand when the batch is small. The transposed product
        # is copied back to rows (N x F_out, a few MB at most), so that the
        # ReLU and dropout after it, and their gradients, which arrive in
        # rows, run on arrays of one layout (docs/benchmarks.md,
        # "Measurements behind the fast tier's constants").
        if self.device.uses_kernels:
            y = x @ w.T
        else:
            y = products.matmul_turned(w, x.T, np.empty((x.shape[0], w.shape[0]),
                                                        dtype=np.result_type(x.dtype, w.dtype)))
        if b is not None:
            y += b
        return y

    @serial_blas
    def backward(self, gy):
        gx = None
        if self.needs_input_grad[0]:
            gx = (gy @ self.w if self.device.uses_kernels else
                  products.matmul(gy, self.w, np.empty((gy.shape[0], self.w.shape[1]),
                                                       dtype=np.result_type(gy.dtype,
                                                                            self.w.dtype))))
        gw = None
        if self.needs_input_grad[1]:
            into = self.grad_into[1] if self.grad_into else None
            if into is not None and not self.device.uses_kernels \
                    and into.dtype == np.result_type(gy.dtype, self.x.dtype):
                # The optimizer's gradient view: add dW to it (write it
                # there, for the first gradient of the pass) in cached
                # blocks (FC1 of VGG at 224x224 has 103M weights).
                matmul_into(gy.T, self.x, into, add=not self.grad_fresh[1])
                gw = ADDED_IN_PLACE
            elif self.device.uses_kernels:
                gw = gy.T @ self.x
            else:
                gw = products.matmul(gy.T, self.x, np.empty(self.w.shape, dtype=np.result_type(
                    gy.dtype, self.x.dtype)))
        grads = (gx, gw)
        if len(self.needs_input_grad) == 3:
            grads += (gy.sum(axis=0) if self.needs_input_grad[2] else None,)
        return grads

    def release(self):
        super().release()
        self.x = self.w = self.grad_into = self.grad_fresh = None
