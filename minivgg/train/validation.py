"""Validation during training: single-crop top-1 and top-5 error on the
validation split, after every epoch (§3.1: the learning rate drops when the
validation accuracy stops improving). The paper's test protocols (§3.2) are
in minivgg/evaluate."""
import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..backend import as_numpy


def evaluate_loader(model, loader, progress=False, desc="val", comm=None, chunk=0):
    """Single-crop validation: (mean loss, top-1 error, top-5 error).

    With a communicator, each rank evaluates its shard of ``loader`` and the
    sums are added over ranks, so every rank returns the whole set's figures.
    ``chunk`` > 0: forward at most that many images at a time (--micro-batch:
    a machine short of memory for training is short of it here too).
    """
    from tqdm import tqdm

    from ..evaluate.metrics import topk_correct
    was_training = model.training
    model.eval()
    sums = np.zeros(4)  # loss sum, top-1 correct, top-5 correct, images
    try:
        with no_grad():
            dev = model.device
            param = next(iter(model.parameters()), None)
            dtype = None if param is None else param.dtype
            for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
                step = chunk or max(len(y), 1)
                for s in range(0, len(y), step):  # nothing when this rank's share is empty
                    xs, ys = x[s:s + step], y[s:s + step]
                    logits = model(Tensor(dev.asarray(xs, dtype=dtype), device=dev))
                    scores = as_numpy(logits.data)
                    sums += [float(F.softmax_cross_entropy(logits, ys).item()) * len(ys),
                             topk_correct(scores, ys, 1).sum(), topk_correct(scores, ys, 5).sum(),
                             len(ys)]
    finally:
        model.train(was_training)
    if comm is not None:
        sums = comm.sum_host(sums)
    loss_sum, c1, c5, n = sums
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    return loss_sum / n, 1.0 - c1 / n, 1.0 - c5 / n
