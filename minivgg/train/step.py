"""One step of §3.1's mini-batch gradient descent.

The plain step, as examples/one_step.py writes it out::

    logits = model(x)                          # (N, K) class scores
    loss = softmax_cross_entropy(logits, y)    # the mean over the batch
    optimizer.zero_grad()
    loss.backward()                            # every parameter's .grad
    optimizer.step()                           # momentum, weight decay, learning rate

The Trainer's step is that same forward, backward and update, with three
things around it that a long run on several processes needs, each a
function here:

* ``accumulate``: the batch in pieces of ``--micro-batch`` images whose
  gradients add up (one batch's memory in smaller bites), the gradient
  exchange between processes started during the last piece's backward;
* the check that the loss is still a number, agreed by every process in
  the same exchange that adds up the step's loss and accuracy
  (``Trainer.train_step``);
* ``warmup``: an optional linear ramp of the learning rate over the first
  steps.

Why each piece back-propagates the *sum* of its images' losses, not their
mean: with several processes the slices of a batch may differ in size (the
last batch of an epoch can leave a process one image, or none), and only
the sum adds up the same way whatever the slicing. The update then divides
by the number of images of the whole batch (``SGD.step(grad_scale=...)``),
which makes it the gradient of the batch's mean loss, as in the plain step.
"""
import contextlib

from .. import functional as F


def plain_step(model, optimizer, x, y):
    """One SGD step on the batch ``x`` (Tensor (N, 3, H, W)), labels ``y``
    (N,); returns the loss (a scalar Tensor)."""
    logits = model(x)
    loss = F.softmax_cross_entropy(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def pieces(n, micro_batch):
    """[(start, stop)] covering n images in pieces of ``micro_batch`` (0: one
    piece); one empty piece when n is 0, so that an empty slice still takes
    part in the exchange."""
    size = micro_batch or max(n, 1)
    return [(a, min(n, a + size)) for a in range(0, n, size)] or [(0, 0)]


def accumulate(model, x, y, micro_batch, to_input, sync):
    """Forward and backward of this process's slice (``x`` host images,
    ``y`` labels) in pieces, each back-propagating the sum of its losses, so
    that the gradients add up to those of the slice's summed loss. The last
    piece's backward runs inside ``sync.during_backward()``, whose hooks
    start averaging gradients over the processes as they complete.
    ``to_input``: host images -> the model's input Tensor. Returns the
    slice's (summed loss, correctly classified images) as one float64 array
    on the model's device, or None for an empty slice; it is not read here,
    since reading waits for the device: the caller reads it once all the
    step's work is queued."""
    parts = pieces(len(y), micro_batch)
    stats = None
    for k, (a, b) in enumerate(parts):
        if b == a:
            continue
        with sync.during_backward(k == len(parts) - 1):
            logits = model(to_input(x[a:b]))
            loss = F.softmax_cross_entropy(logits, y[a:b])
            (loss * (b - a)).backward()
        dev = logits.device
        with dev.context():
            hits = (logits.data.argmax(axis=1) == dev.asarray(y[a:b])).sum()
            piece = dev.xp.stack([loss.data.astype("float64") * (b - a), hits.astype("float64")])
            stats = piece if stats is None else stats + piece
    return stats


@contextlib.contextmanager
def warmup(optimizer, step, warmup_steps):
    """The learning rate ramped linearly over the first ``warmup_steps``
    steps (step 0 at 1/warmup_steps of it) for the update inside the block;
    large early steps kill the ReLUs of narrow FC layers for good
    (docs/training.md). Not in the paper; 0 turns it off."""
    lr = optimizer.lr
    if warmup_steps and step < warmup_steps:
        optimizer.lr = lr * (step + 1) / warmup_steps
    try:
        yield
    finally:
        optimizer.lr = lr
