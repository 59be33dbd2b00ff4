"""Matrix products cut into tasks for minivgg's threads (minivgg/threads.py):
the fully-connected layers of §2.1 (FC1 of VGG at 224x224 is 103M weights)
and every other product too big for one core, on the CPU.

BLAS runs each call on one thread inside the fast tier's ops; a product is
cut along the longer side of its result, rows of the left operand or
columns of the right, never along the sum (so no number is a sum of
partial sums), into as many tasks as its size calls for (``tasks``),
which the threads run side by side. The cut depends on the shapes alone:
OpenBLAS can round a product's rows differently when they come in
smaller pieces, so cutting by the thread count would make the result
depend on it.
"""
import numpy as np

from ..threads import parallel_ranges

#: Multiply-adds per task: a few hundred microseconds of one core, so that
#: handing a task to a thread, and BLAS's packing of the operand every task
#: reads whole, cost little beside it.
TASK_MACS = 1 << 25
#: Tasks per product at most (as many cores as it can keep busy).
MAX_TASKS = 64
#: Rows (or columns) per task at least: narrower slices run below BLAS's speed.
MIN_EXTENT = 64


def tasks(macs, extent):
    """How many tasks a product of ``macs`` multiply-adds is cut into along
    a side of ``extent`` rows or columns: shapes only."""
    return int(max(1, min(MAX_TASKS, macs // TASK_MACS, extent // MIN_EXTENT)))


def _product(a, b, out, add):
    if add:
        out += a @ b
    else:
        np.matmul(a, b, out=out)


def matmul(a, b, out, add=False):
    """out = a @ b (out += a @ b with ``add``), a (M, P), b (P, Q), out
    (M, Q), cut into tasks along M or Q, whichever is longer."""
    m, p = a.shape
    q = b.shape[1]
    if m >= q:
        parallel_ranges(lambda r0, r1: _product(a[r0:r1], b, out[r0:r1], add), m,
                        tasks(m * p * q, m))
    else:
        parallel_ranges(lambda c0, c1: _product(a, b[:, c0:c1], out[:, c0:c1], add), q,
                        tasks(m * p * q, q))
    return out


def matmul_turned(a, b, out):
    """out (Q, M) = (a @ b)^T for a (M, P), b (P, Q): the product formed with
    ``a`` on the left (OpenBLAS's faster order when ``a`` is big and Q
    small: a dense evaluation's FC-as-conv, the fully-connected layers at
    small batches) and copied turned round, cut into tasks along M."""
    m, p = a.shape
    q = b.shape[1]

    def part(r0, r1):
        np.copyto(out[:, r0:r1], (a[r0:r1] @ b).T)
    parallel_ranges(part, m, tasks(m * p * q, m))
    return out
