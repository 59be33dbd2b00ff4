"""Mini-batch loader for SGD training (§3.1: batch 256, one random crop per image per iteration).

The loader turns a dataset and a transform into (x, y) mini-batches,
reshuffled every epoch, optionally decoding and augmenting in worker
processes ahead of the training step.

Determinism.  Everything random is derived from ``(seed, epoch, index)``:
the epoch's order from ``default_rng([seed, epoch])`` and sample ``index``'s
augmentation from ``default_rng([seed, epoch, 1, index])``.  (The extra 1 is
a stream tag: SeedSequence pads short entropy with zeros, so
``[seed, epoch, 0]`` would reproduce the permutation's stream.)  A batch is
therefore the same whatever the number of workers, and a run resumed in the
middle of an epoch with :meth:`DataLoader.iter_from` sees exactly the batches
an uninterrupted run would have seen.

Data parallelism (§3.3).  With ``shard=(rank, size)`` each nominal batch of
``batch_size`` images (the *global* batch) is cut into ``size`` equal,
disjoint slices of the same seeded order, and this loader yields slice
``rank``. Augmentation stays keyed by the image's index, so an image is
augmented identically whichever rank loads it. Every nominal batch is
yielded on every rank, even when this rank's slice of the last, short batch
is empty (then x is None and y has length 0): all ranks take the same number
of steps and none waits forever for the others.

Epochs are explicit: call ``loader.set_epoch(e)`` before iterating epoch e
(it starts at 0 and is never advanced implicitly, so iterating twice without
``set_epoch`` repeats the same epoch).

A worker that dies (the kernel's out-of-memory killer sends SIGKILL) is
replaced, up to ``restarts`` times per pass: the new worker builds the dead
one's remaining batches from the batch the consumer waits for, and since a
batch is a function of ``(seed, epoch, indices)`` the pass yields exactly
what it would have. Past that, :class:`WorkerDied` names the worker, how it
ended and the batch.
"""

import mmap
import multiprocessing as mp
import numbers
import os
import pickle
import queue
import signal
import threading
import traceback
import warnings
import weakref

import numpy as np

from ..fast import select
from ..fast.select import use_ops
from .base import CorruptImageError
from .transforms import Compose, ToCHW, ToFloat

__all__ = ["DataLoader", "WorkerDied"]

_STREAM_SAMPLE = 1


class WorkerDied(RuntimeError):
    """A loader worker process ended without handing over its batch, and so
    did every replacement allowed (``DataLoader(restarts=...)``)."""

    def __init__(self, wid, pid, exitcode, batch, epoch, deaths):
        self.wid, self.pid, self.exitcode = wid, pid, exitcode
        self.batch, self.epoch, self.deaths = batch, epoch, deaths
        self.how = _how_it_ended(exitcode)
        again = (f", worker death {deaths} of this pass ({deaths - 1} replaced)" if deaths > 1
                 else "")
        super().__init__(f"DataLoader worker {wid} (pid {pid}) {self.how} before handing over "
                         f"batch {batch + 1} of epoch {epoch + 1}{again} (killed for memory? try "
                         f"fewer workers or a smaller prefetch)")

    @property
    def killed_for_memory(self):
        """SIGKILL: what the kernel's out-of-memory killer sends."""
        return self.exitcode == -signal.SIGKILL


def _how_it_ended(exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited unexpectedly with code {exitcode}"


def sample_rng(seed, epoch, index):
    """The generator that augments sample ``index`` in ``epoch``."""
    return np.random.default_rng([seed, epoch, _STREAM_SAMPLE, int(index)])


def epoch_order(n, seed, epoch, shuffle):
    """(n,) int64: the order in which epoch ``epoch`` visits the samples."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def _describe(dataset, i):
    try:
        return dataset.describe(i)
    except Exception:  # a description must never hide the real error
        return f"{type(dataset).__name__}[{i}]"


def _transformed(transform, img, dataset, seed, epoch, i):
    """transform(img) with sample i's generator; errors name the sample."""
    try:
        return transform(img, sample_rng(seed, epoch, i))
    except CorruptImageError:
        raise  # an undecodable file (ImageFile): the caller skips it like dataset[i]'s
    except Exception as e:
        e.add_note(f"while transforming sample {i} ({_describe(dataset, i)})")
        raise


def _load_samples(dataset, transform, indices, seed, epoch, strict):
    """Decode and transform the samples of one batch.

    Returns ``(xs, ys, skipped)``: the transformed arrays, their labels and a
    list of ``(description, message)`` for corrupt images left out.
    """
    xs, ys, skipped = [], [], []
    # A dataset of files and a transform that decodes them itself (a rescale
    # and a crop first: only the crop's pixels are resampled, large JPEGs are
    # decoded at a reduced scale): hand over the files undecoded.
    files = getattr(transform, "reads_files", False) and hasattr(dataset, "open_file")
    for i in indices:
        i = int(i)
        try:
            img, label = dataset.open_file(i) if files else dataset[i]
            if files:  # decoding happens in the transform: its decoding errors are skipped too
                out = _transformed(transform, img, dataset, seed, epoch, i)
        except CorruptImageError as e:
            if strict:
                e.add_note(f"while loading {_describe(dataset, i)} (DataLoader strict=True)")
                raise
            skipped.append((_describe(dataset, i), str(e)))
            continue
        if not files:
            try:
                out = transform(img, sample_rng(seed, epoch, i))
            except Exception as e:
                e.add_note(f"while transforming sample {i} ({_describe(dataset, i)})")
                raise
        xs.append(out)
        ys.append(label)
    if xs:
        shapes = {np.shape(a) for a in xs}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(
                f"DataLoader: the transform produced arrays of shapes {sorted(shapes)}; a batch "
                f"needs one (C, H, W) shape: end the transform with a crop and ToCHW()"
            )
    return xs, ys, skipped


def _load_batch(dataset, transform, indices, seed, epoch, strict):
    """One batch ``(x, y, skipped)``: x (N, C, H, W) float32, y (N,) int64.

    x and y are None when every image of the batch was corrupt.
    """
    xs, ys, skipped = _load_samples(dataset, transform, indices, seed, epoch, strict)
    if not xs:
        return None, None, skipped
    return np.stack(xs).astype(np.float32, copy=False), np.asarray(ys, np.int64), skipped


def _portable(e):
    """The exception itself if it survives pickling, else a RuntimeError copy."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


class _Slots:
    """``count`` batch-sized float32 buffers in one anonymous shared mapping.

    Created before the fork, so parent and worker see the same pages: a
    worker stacks its batch straight into a slot and the parent copies it
    out once, instead of pickling it through a pipe (a 32x3x224x224 batch,
    19 MB: about 60 ms through a Queue against 4 ms for the copy on the
    2-core development machine; 150 MB for the paper's batch of 256).
    ``free`` counts released slots; the worker fills slots round-robin and
    the parent releases them in the same order, so a slot is reused only
    after its batch was copied out.
    """

    def __init__(self, ctx, count, batch_size, sample_shape):
        self.count = count
        self.shape = tuple(int(v) for v in sample_shape)
        self.per_sample = int(np.prod(self.shape))
        self.slot_bytes = batch_size * self.per_sample * 4
        self.buf = mmap.mmap(-1, max(1, count * self.slot_bytes))
        self.free = ctx.Semaphore(count)
        self.next = 0  # the slot this side (the worker) fills next

    def view(self, slot, n):
        """(n, *shape) float32 view of slot ``slot``."""
        return np.frombuffer(self.buf, np.float32, n * self.per_sample,
                             offset=slot * self.slot_bytes).reshape((n,) + self.shape)

    def close(self):
        try:
            self.buf.close()
        except BufferError:  # pragma: no cover - a view still alive; the GC unmaps it later
            pass


def _put(out_q, msg, stop, parent_pid):
    """Put ``msg`` unless told to stop; False if the worker should exit."""
    while True:
        if stop.is_set() or os.getppid() != parent_pid:
            # Unread items must not keep this process alive at exit.
            out_q.cancel_join_thread()
            return False
        try:
            out_q.put(msg, timeout=0.1)
            return True
        except queue.Full:
            continue


def _worker_loop(dataset, transform, jobs, seed, epoch, strict, out_q, stop, parent_pid, slots,
                 tier="fast"):
    """Worker process body: build the batches in ``jobs`` in order, hand them over via out_q."""
    use_ops(tier)   # the parent's tier (fused or unfused transforms), also under spawn
    # Ctrl-C goes to the whole process group; the parent alone handles it and
    # then stops the workers, so they do not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for pos, indices in jobs:
        if stop.is_set():
            break
        try:
            xs, ys, skipped = _load_samples(dataset, transform, indices, seed, epoch, strict)
            if not xs:
                payload = (None, None, skipped)
            elif slots is not None and xs[0].shape == slots.shape:
                while not slots.free.acquire(timeout=0.1):
                    if stop.is_set() or os.getppid() != parent_pid:
                        out_q.cancel_join_thread()
                        return
                slot = slots.next
                slots.next = (slot + 1) % slots.count
                np.stack(xs, out=slots.view(slot, len(xs)), casting="same_kind")
                payload = (("slot", slot, len(xs)), np.asarray(ys, np.int64), skipped)
            else:  # no shared slots (spawn) or an unexpected shape: pickle the array
                payload = (np.stack(xs).astype(np.float32, copy=False), np.asarray(ys, np.int64), skipped)
            msg = ("ok", pos, payload)
        except BaseException as e:
            msg = ("error", pos, (_portable(e), traceback.format_exc()))
        if not _put(out_q, msg, stop, parent_pid) or msg[0] == "error":
            return


def _shutdown(procs, stop, queues, slots):
    """Stop and reap worker processes (idempotent; also run at interpreter exit)."""
    stop.set()
    procs = [p for p in procs if p is not None]  # None: not started (a start failed)
    for p in procs:
        p.join(timeout=0.5)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=2)
        if p.is_alive():  # pragma: no cover - SIGTERM is not ignored by workers
            p.kill()
            p.join()
    for q in queues:
        if q is not None:
            q.close()
            q.cancel_join_thread()
    for s in slots:
        if s is not None:
            s.close()


class _Ahead:
    """The batches of one pass loaded one ahead of the consumer in a thread
    of this process (``workers=0`` with more than one thread: the next
    batch is decoded and augmented while the training step runs on the
    current one). A batch is a function of (seed, epoch, indices), so the
    batches are those the consumer would have loaded itself; an error
    reaches the consumer at the batch it belongs to."""

    def __init__(self, loader, jobs, epoch):
        self._q = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(loader, jobs, epoch),
                                        daemon=True, name="minivgg-loader")
        self._thread.start()

    def _run(self, ld, jobs, epoch):
        for _, indices in jobs:
            try:
                item = ("batch", _load_batch(ld.dataset, ld.transform, indices, ld.seed, epoch,
                                             ld.strict))
            except BaseException as e:  # re-raised by the consumer, at this batch
                item = ("error", e)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] == "error" or self._stop.is_set():
                return

    def get(self):
        kind, payload = self._q.get()
        if kind == "error":
            raise payload
        return payload

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.05)    # let a put() that waits finish
            except queue.Empty:
                pass
        self._thread.join()


class _BatchIterator:
    """Iterator over one pass of a DataLoader, from nominal batch ``start``.

    ``position`` is the index of the next nominal batch: pass it to
    ``loader.iter_from`` to resume right after the last batch received.
    """

    def __init__(self, loader, start):
        self._finalizer = None  # first, so __del__ works even if __init__ fails
        self._procs = None
        self.loader = loader
        self.epoch = loader.epoch
        order = epoch_order(len(loader.dataset), loader.seed, self.epoch, loader.shuffle)
        bs = loader.batch_size
        rank, size = loader.shard
        local = bs // size
        self.jobs = [(b, order[b * bs:(b + 1) * bs][rank * local:(rank + 1) * local])
                     for b in range(start, len(loader))]
        self.position = start
        loader.position = start
        self._k = 0  # jobs consumed
        self._ahead = None  # the thread that loads ahead (workers=0, overlap)

    def __iter__(self):
        return self

    def _probe_shape(self):
        """Shape of one transformed sample, or None (then batches are pickled)."""
        ld = self.loader
        for _, indices in self.jobs[:2]:
            for i in indices[:4]:
                try:
                    img, _ = ld.dataset[int(i)]
                    out = ld.transform(img, sample_rng(ld.seed, self.epoch, int(i)))
                except Exception:
                    continue  # the worker will meet (and report) the same problem
                return np.shape(out) if np.ndim(out) == 3 else None
        return None

    def _start_workers(self):
        ld = self.loader
        w = min(ld.workers, len(self.jobs))
        method = ld._start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        fork = method == "fork"
        ctx = mp.get_context(method)
        self._ctx, self._shape = ctx, (self._probe_shape() if fork else None)
        self._stop = ctx.Event()
        self._queues, self._slots, self._procs = [None] * w, [None] * w, [None] * w
        self._deaths = 0  # workers replaced in this pass
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._stop,
                                           self._queues, self._slots)
        for wid in range(w):
            self._start_worker(wid, wid)

    def _start_worker(self, wid, k):
        """Start worker ``wid`` on its jobs (every w-th, w workers) from job ``k`` on,
        with a queue and slots of its own."""
        ld, ctx = self.loader, self._ctx
        w = len(self._procs)
        self._queues[wid] = ctx.Queue(maxsize=ld.prefetch)
        self._slots[wid] = (_Slots(ctx, ld.prefetch, ld.batch_size // ld.shard[1], self._shape)
                            if self._shape else None)
        p = ctx.Process(
            target=_worker_loop,
            args=(ld.dataset, ld.transform, self.jobs[k::w], ld.seed, self.epoch,
                  ld.strict, self._queues[wid], self._stop, os.getpid(), self._slots[wid],
                  select.tier()),
            name=f"minivgg-loader-{wid}",
            daemon=True,
        )
        p.start()
        self._procs[wid] = p

    def _replace_worker(self, wid):
        """Worker ``wid`` died before handing over job ``self._k``: start another
        on its jobs from there, or raise WorkerDied when no replacement is left."""
        ld, dead = self.loader, self._procs[wid]
        self._deaths += 1
        pos = self.jobs[self._k][0]
        if self._deaths > ld.restarts:
            raise WorkerDied(wid, dead.pid, dead.exitcode, pos, self.epoch, self._deaths)
        warnings.warn(f"DataLoader worker {wid} (pid {dead.pid}) {_how_it_ended(dead.exitcode)} "
                      f"before handing over batch {pos + 1} of epoch {self.epoch + 1}; a new "
                      f"worker loads its batches again from there, the same batches "
                      f"(replacement {self._deaths} of {ld.restarts} in this pass)",
                      stacklevel=4)
        # A message or batch the dead worker was writing may be half-written:
        # its queue and slots are dropped, not read.
        self._queues[wid].close()
        self._queues[wid].cancel_join_thread()
        if self._slots[wid] is not None:
            self._slots[wid].close()
        self._start_worker(wid, self._k)

    def _next_result(self):
        """The next job's (x, y, skipped), loaded here or received from a worker."""
        ld = self.loader
        pos, indices = self.jobs[self._k]
        if ld.workers == 0:
            if self._ahead is None and self._k == 0 and ld.overlaps():
                self._ahead = _Ahead(ld, self.jobs, self.epoch)
            if self._ahead is not None:
                return self._ahead.get()
            return _load_batch(ld.dataset, ld.transform, indices, ld.seed, self.epoch, ld.strict)
        if self._procs is None:
            self._start_workers()
        wid = self._k % len(self._procs)
        q, proc = self._queues[wid], self._procs[wid]
        while True:
            try:
                kind, got_pos, payload = q.get(timeout=0.2)
                break
            except queue.Empty:
                if proc.is_alive():
                    continue
            try:  # what it handed over just before it ended is still there
                kind, got_pos, payload = q.get(timeout=0.05)
                break
            except queue.Empty:
                self._replace_worker(wid)
                q, proc = self._queues[wid], self._procs[wid]
        assert got_pos == pos, (got_pos, pos)
        if kind == "error":
            exc, tb = payload
            exc.add_note(f"raised in DataLoader worker {wid}; worker traceback:\n{tb}")
            raise exc
        x, y, skipped = payload
        if isinstance(x, tuple):
            slots = self._slots[wid]
            _, slot, n = x
            x = slots.view(slot, n).copy()  # the consumer may keep x; the slot is reused
            slots.free.release()
        return x, y, skipped

    def __next__(self):
        ld = self.loader
        while self._k < len(self.jobs):
            try:
                x, y, skipped = self._next_result()
            except BaseException:
                self.close()
                raise
            self._k += 1
            self.position = self.jobs[self._k - 1][0] + 1
            ld.position = self.position
            for desc, msg in skipped:
                ld.skipped.append(desc)
                ld._report_skip(desc, msg)
            if x is not None:
                return x, y
            if ld.shard[1] > 1:  # a sharded loader yields every batch: ranks stay in step
                return None, np.zeros(0, np.int64)
        self.close()
        raise StopIteration

    def close(self):
        """Stop the worker processes (or the thread that loads ahead) now
        (also done on exhaustion, error and GC)."""
        ahead, self._ahead = getattr(self, "_ahead", None), None
        if ahead is not None:
            ahead.close()
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class DataLoader:
    """Mini-batches ``(x, y)`` from a dataset, shuffled per epoch, deterministic.

    Args:
        dataset: ``ds[i] -> (img, label)`` (see minivgg.data.base).
        batch_size: images per batch (the paper: 256).
        transform: ``t(img, rng) -> (C, H, W) float32``, e.g. train_transform(...);
            None means ToFloat + ToCHW (images must then share one size).
        shuffle: new random order each epoch (else index order).
        seed: non-negative int; with the epoch it fixes order and augmentation.
        workers: 0 loads in the calling process; k > 0 uses k processes
            (fork on Linux, started at the first batch of each pass), batch
            b built by worker b % k, yielded in order.  With fork, batches
            come back through shared memory sized from one sample that the
            parent transforms when the workers start; other platforms
            (spawn) pickle them, and need a picklable dataset and transform.
        prefetch: batches each worker may have ready ahead of the consumer
            (memory: workers * prefetch batches).
        overlap: with workers=0, load the next batch in a thread while the
            consumer works on the current one; None (default): when
            minivgg runs more than one thread (minivgg.threads), so that
            one thread means one thread.
        drop_last: drop the last incomplete batch.
        strict: re-raise CorruptImageError instead of skipping the image.
        restarts: workers that may die and be replaced in one pass (the
            batches stay the same); one more death raises WorkerDied.
        shard: (rank, size) to yield only slice ``rank`` of ``size`` of each
            batch (data-parallel training); batch_size must be a multiple of size.
        on_skip: called as ``on_skip(description, message)`` for every image
            skipped as corrupt; by default a warning, once per file over the
            loader's life (not again every epoch).

    Iterating yields x (N, C, H, W) float32 and y (N,) int64; N = batch_size
    except for the last batch, or when corrupt images were skipped (each
    skip is reported (``on_skip``) and its ``describe`` string appended to
    ``loader.skipped``, reset at every pass).  A batch whose images are all
    corrupt is not yielded.  ``len(loader)`` is the number of nominal
    batches; ``loader.position`` the nominal index of the next batch.
    """

    _start_method = None  # multiprocessing start method; None: fork where available (tests set it)

    def __init__(self, dataset, batch_size, transform=None, shuffle=True, seed=0, workers=0,
                 prefetch=2, drop_last=False, strict=False, shard=(0, 1), restarts=2,
                 on_skip=None, overlap=None):
        def nonneg_int(v, what, minimum):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
                raise ValueError(f"DataLoader: {what} must be an int >= {minimum}, got {v!r}")
            return int(v)

        self.dataset = dataset
        self.batch_size = nonneg_int(batch_size, "batch_size", 1)
        self.transform = transform if transform is not None else Compose([ToFloat(), ToCHW()])
        if not callable(self.transform):
            raise ValueError(f"DataLoader: transform must be callable as t(img, rng), got {transform!r}")
        self.shuffle = bool(shuffle)
        self.seed = nonneg_int(seed, "seed", 0)
        self.workers = nonneg_int(workers, "workers", 0)
        self.prefetch = nonneg_int(prefetch, "prefetch", 1)
        self.restarts = nonneg_int(restarts, "restarts", 0)
        self.drop_last = bool(drop_last)
        self.strict = bool(strict)
        rank, size = (int(v) for v in shard)
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"DataLoader: shard must be (rank, size) with 0 <= rank < size, got "
                             f"{shard!r}")
        if self.batch_size % size:
            raise ValueError(f"DataLoader: the batch of {self.batch_size} images cannot be split "
                             f"evenly over {size} ranks; use a batch size that is a multiple "
                             f"of {size}")
        self.shard = (rank, size)
        self.epoch = 0
        self.position = 0
        self.skipped = []
        self.on_skip = on_skip
        self.overlap = overlap
        self._warned = set()

    def overlaps(self):
        """True when a pass with workers=0 loads its next batch in a thread
        (``overlap``; by default when minivgg's thread count is above one)."""
        if self.overlap is not None:
            return bool(self.overlap)
        from ..threads import threads
        return threads() > 1

    def _report_skip(self, desc, msg):
        if self.on_skip is not None:
            self.on_skip(desc, msg)
        elif desc not in self._warned:
            self._warned.add(desc)
            warnings.warn(f"DataLoader: skipping corrupt image {desc}: {msg}", stacklevel=4)

    def set_epoch(self, epoch):
        """Select the epoch whose order and augmentation the next pass uses."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)
        self.position = 0
        self.skipped = []

    def __len__(self):
        n, bs = len(self.dataset), self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def order(self):
        """(len(dataset),) int64: this epoch's sample order."""
        return epoch_order(len(self.dataset), self.seed, self.epoch, self.shuffle)

    def sample_rng(self, index):
        """The numpy Generator that augments sample ``index`` in this epoch."""
        return sample_rng(self.seed, self.epoch, index)

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, batch_index):
        """Iterate this epoch from nominal batch ``batch_index`` on.

        The first ``batch_index`` batches are neither loaded nor augmented,
        and the rest are exactly what a full pass would yield after them.
        """
        if (isinstance(batch_index, bool) or not isinstance(batch_index, numbers.Integral)
                or not 0 <= batch_index <= len(self)):
            raise ValueError(f"DataLoader.iter_from: batch_index must be an int in 0..{len(self)}, "
                             f"got {batch_index!r}")
        self.skipped = []
        return _BatchIterator(self, int(batch_index))

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed}, workers={self.workers}, epoch={self.epoch})")
