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
        self._finished, self._timers = 0.0, []

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

    @property
    def finish_seconds(self):
        """Seconds the steps so far waited for the exchange that backward did
        not hide. Under MPI the host waits in ``finish()``, and this is that
        time; under NCCL ``finish()`` only queues the wait on the GPU, and this
        is the time the GPU's compute stream spent waiting, from CUDA events
        (reading it waits for the last step's exchange). Assign 0 to restart."""
        for t in self._timers:
            self._finished += t.result()
        self._timers = []
        return self._finished

    @finish_seconds.setter
    def finish_seconds(self, value):
        self.finish_seconds  # noqa: B018 - settle the pending timers first
        self._finished = float(value)

    def finish(self):
        """Average every bucket not yet started, then wait for all of them."""
        if self.comm.size == 1:
            self._reset()
            return
        timer = self.comm.timer()
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
        timer.stop()
        self._timers.append(timer)
        # Settle the timers the GPU has passed already (without waiting), so
        # that a long run does not keep two CUDA events per step.
        done = [t for t in self._timers[:-1] if t.ready()]
        self._finished += sum(t.result() for t in done)
        self._timers = [t for t in self._timers if not any(t is d for d in done)]
        self._reset()
