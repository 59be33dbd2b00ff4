"""Averaging gradients across ranks, overlapped with backward (§3.3).

The optimizer keeps every gradient as a view into one flat buffer
(``optim/flat.py``), laid out in the order backward completes them: the
last layers first. ``GradientSync`` cuts that buffer into a few contiguous
*buckets* of about ``bucket_mb`` MiB. During the last backward pass of a
step, a hook on each parameter (``Tensor.register_hook``) fires the moment
its gradient is complete; when every gradient of the next bucket is
complete, that bucket's allreduce starts, while backward goes on computing
the gradients of earlier layers. ``finish()`` starts whatever is left and
waits for all of it. Buckets start strictly in order on every rank (MPI
and NCCL both require the same sequence of collectives everywhere).

With ``overlap=False`` nothing happens during backward and ``finish()``
averages the whole buffer in one allreduce: the reference the overlapped
path is tested against.
"""
import contextlib
import time


class GradientSync:
    """Averages the gradients of ``flat`` (a FlatParameters) over ``comm``."""

    def __init__(self, comm, flat, bucket_mb=25.0, overlap=True):
        self.comm, self.flat = comm, flat
        self.overlap_enabled = overlap and comm.size > 1
        self.buckets = self._make_buckets(bucket_mb * 2 ** 20 / flat.grad.itemsize)
        self.bucket_of = {}
        for b, (_, _, members) in enumerate(self.buckets):
            for i in members:
                self.bucket_of[i] = b
        self._reset()
        self.finish_seconds = 0.0   # time spent in finish(): the exchange backward did not hide

    def _make_buckets(self, cap):
        """[(start, end, [param indices])] over the buffer in layout order."""
        order = sorted(range(len(self.flat.params)), key=lambda i: self.flat.ranges()[i][0])
        buckets, members, start = [], [], None
        for i in order:
            a, b = self.flat.ranges()[i]
            if start is None:
                start = a
            members.append(i)
            if b - start >= cap:
                buckets.append((start, b, members))
                members, start = [], None
        if members:
            buckets.append((start, self.flat.ranges()[members[-1]][1], members))
        return buckets

    def _reset(self):
        self.waiting = [len(m) for _, _, m in self.buckets]
        self.next_bucket = 0
        self.requests = []

    def _launch_ready(self):
        while self.next_bucket < len(self.buckets) and self.waiting[self.next_bucket] == 0:
            a, b, _ = self.buckets[self.next_bucket]
            self.requests.append(self.comm.allreduce_mean_async(self.flat.grad[a:b]))
            self.next_bucket += 1

    @contextlib.contextmanager
    def during_backward(self, enabled=True):
        """Hooks that start bucket allreduces as gradients complete (the last
        backward of a step only: earlier micro-batches still accumulate)."""
        if not (enabled and self.overlap_enabled):
            yield
            return
        handles = []
        for i, p in enumerate(self.flat.params):
            handles.append(p.register_hook(self._hook(i)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, i):
        def on_gradient_complete(_tensor):
            self.flat.adopt(i)   # into the buffer, if the plain rule left it elsewhere
            b = self.bucket_of[i]
            self.waiting[b] -= 1
            self._launch_ready()
            self.comm.progress()
        return on_gradient_complete

    def finish(self):
        """Average every bucket not yet started, then wait for all of them."""
        if self.comm.size == 1:
            self._reset()
            return
        t0 = time.perf_counter()
        # Parameters this rank's backward did not reach (an empty slice of
        # the last batch) join the average with zeros, not stale buffer contents.
        self.flat.materialize_grads()
        if not self.overlap_enabled:
            self.comm.allreduce_mean(self.flat.grad)
        else:
            for b in range(self.next_bucket, len(self.buckets)):
                self.waiting[b] = 0
            self._launch_ready()
            for r in self.requests:
                r.wait()
        self.finish_seconds += time.perf_counter() - t0
        self._reset()
