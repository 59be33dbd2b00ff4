"""The state of the CuPy stand-in: devices, streams, events, allocations, and
the rules a real GPU enforces that NumPy does not.

Ordering. Every operation runs at once (NumPy, or the emulator's build of a
kernel), but is *recorded* as work queued on a stream: on the current stream
of the current device, as CuPy queues it. Each stream keeps a vector clock;
an event records its stream's clock, ``wait_event`` merges it into another
stream's, and a host synchronisation (``Stream.synchronize``,
``Event.synchronize``, ``Device.synchronize``, or reading an array with
``.get()``, ``float()``, ``int()``, ...) merges it into the host's. Every
allocation remembers the last work that wrote it and the work that has read
it since; touching it from a stream (or the host) whose clock has not seen
that work is a race on a GPU, and raises ``RaceError`` here, naming both.
The legacy null stream is ordered with every blocking stream of its device,
as in CUDA; a ``Stream(non_blocking=True)`` is not.

NCCL operations really are asynchronous: they start an MPI request and
complete only when something needs their result (a later operation on
their stream, or a clock that has seen them), so the time they take shows
in the events around them.

Faults. ``inject_fault(kernel)`` (or ``CUPY_STANDIN_FAULT=kernel``) makes the
next launch of that kernel fault like an illegal memory access: nothing
happens at the launch (unless ``CUDA_LAUNCH_BLOCKING=1``), and every later
synchronising call on that device raises ``CUDARuntimeError``, as a real
device's sticky error does. ``CUPY_STANDIN_UNAVAILABLE=1`` makes device 1
refuse to be used (an exclusive-process GPU taken by another process).

Host synchronisations are counted (``host_syncs``, ``count_host_syncs()``):
each one stalls a real host until the GPU has caught up.
"""
import bisect
import contextlib
import os
import threading
import time
import traceback
import weakref

import numpy as np

#: Devices the stand-in pretends to have (before CUDA_VISIBLE_DEVICES).
PHYSICAL_DEVICES = int(os.environ.get("CUPY_STANDIN_DEVICES", "2"))
#: CuPy's memory pool rounds every allocation up to this many bytes.
ALLOCATION_UNIT = 512


def visible_devices():
    """How many devices CUDA would show: CUDA_VISIBLE_DEVICES hides them as it does."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return PHYSICAL_DEVICES
    n = 0
    for item in spec.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) >= PHYSICAL_DEVICES:
            break  # CUDA stops at the first invalid entry
        n += 1
    return n


class RaceError(RuntimeError):
    """Work touched memory that other queued work wrote (or read) without an
    event, stream wait or host synchronisation ordering the two; on a GPU the
    result would depend on timing."""


# ---------------------------------------------------------------------------
# Errors shaped like CuPy's (their classes live in cuda/runtime.py)
# ---------------------------------------------------------------------------

def _runtime_error(code):
    from .cuda import runtime
    return runtime.CUDARuntimeError(code)


# ---------------------------------------------------------------------------
# Devices, the current device, the current stream
# ---------------------------------------------------------------------------

_tls = threading.local()


def unavailable():
    return {int(x) for x in os.environ.get("CUPY_STANDIN_UNAVAILABLE", "").split(",")
            if x.strip().isdigit()}


def check_device_index(i):
    n = visible_devices()
    if n == 0:
        raise _runtime_error(100)  # cudaErrorNoDevice
    if not 0 <= i < n:
        raise _runtime_error(101)  # cudaErrorInvalidDevice
    if i in unavailable():
        raise _runtime_error(46)   # cudaErrorDevicesUnavailable


def current_device():
    d = getattr(_tls, "device", None)
    if d is None:
        check_device_index(0)
        d = _tls.device = 0
    return d


def set_current_device(i):
    check_device_index(i)
    _tls.device = i


class DeviceState:
    def __init__(self, index):
        self.index = index
        self.sticky = None          # the CUDARuntimeError every later sync raises
        self.faults = set(x for x in os.environ.get("CUPY_STANDIN_FAULT", "").split(",") if x)
        self.starts, self.bufs = [], []   # allocations by address (bisect)
        self.used = 0
        self.free_blocks = []       # sizes of freed blocks the pool keeps
        self.limit = 0
        self.streams = weakref.WeakValueDictionary()  # key -> StreamState


_devices = {}
_lock = threading.RLock()


def device_state(i=None):
    i = current_device() if i is None else i
    with _lock:
        if i not in _devices:
            _devices[i] = DeviceState(i)
        return _devices[i]


# ---------------------------------------------------------------------------
# Ordering: streams, vector clocks, timing nodes
# ---------------------------------------------------------------------------

class Node:
    """A point on a stream's timeline and when it was reached (None: not yet).

    An operation that ran at once was reached when it ran; asynchronous work
    (``complete``) when it completed; an event's mark when everything before
    it on its stream, and every event that stream waited for, was."""
    __slots__ = ("time", "deps", "complete", "created")

    def __init__(self, deps=(), complete=None, ran=False):
        self.deps, self.complete = list(deps), complete
        self.created = time.perf_counter() if ran else None
        self.time = None

    def resolve(self, wait):
        """The time, finishing pending work first when ``wait``; None if it
        is not reached yet and ``wait`` is False."""
        if self.time is None:
            for d in self.deps:
                if d.resolve(wait) is None:
                    return None
            times = [d.time for d in self.deps]
            if self.complete is not None:
                t = self.complete(wait)
                if t is None:
                    return None
                self.complete = None
                times.append(t)
            if self.created is not None:
                times.append(self.created)
            self.time = max(times) if times else time.perf_counter()
            self.deps = []
        return self.time


_stream_ids = iter(range(1, 1 << 62))


class StreamState:
    """What the stand-in knows about one CUDA stream of one device."""

    def __init__(self, device, blocking, null=False):
        self.key = ("null", device) if null else next(_stream_ids)
        self.device, self.blocking, self.null = device, blocking, null
        self.seq = 0
        self.clock = {}
        self.last = Node(ran=True)
        self.last.resolve(True)
        self.waits = []          # nodes waited on since the last operation
        self.pending = []        # nodes of asynchronous work not yet complete
        device_state(device).streams[self.key] = self

    def _implicit_order(self):
        """The legacy null stream and blocking streams wait for each other."""
        if not self.blocking:
            return
        for other in list(device_state(self.device).streams.values()):
            if other is not self and other.blocking and (self.null or other.null):
                merge(self.clock, other.clock)
                self.waits.append(other.last)

    def begin(self, asynchronous=False):
        """Queue one operation: returns its sequence number.

        An operation that runs now needs everything its stream has seen
        complete; an asynchronous one (NCCL) only what other streams' work it
        waits for: the work queued before it on its own stream runs first
        without the host waiting (``overlapping`` settles what it reads)."""
        # Work queued after the host waited for something runs after it.
        merge(self.clock, _host_clock())
        self._implicit_order()
        poll()
        if asynchronous:
            settle({k: v for k, v in self.clock.items() if k != self.key})
        else:
            settle(self.clock)
        self.seq += 1
        self.clock[self.key] = self.seq
        return self.seq

    def finish(self, complete=None, writes=()):
        """The node of the operation just begun (pending until ``complete``
        returns a time, for asynchronous work writing ``writes``: (Buffer,
        lo, hi) ranges)."""
        node = Node([self.last] + self.waits, complete, ran=complete is None)
        self.waits = []
        self.last = node
        if complete is not None:
            self.pending.append((self.seq, node, list(writes)))
        else:
            node.resolve(True)
        return node

    def overlapping(self, buf, lo, hi):
        """Complete this stream's pending work that writes bytes [lo, hi) of ``buf``."""
        for _, node, writes in self.pending:
            if any(b is buf and wlo < hi and lo < whi for b, wlo, whi in writes):
                node.resolve(True)

    def mark(self):
        """A node for an event recorded now (no new work)."""
        merge(self.clock, _host_clock())
        self._implicit_order()
        node = Node([self.last] + self.waits)
        self.waits = []
        return node


def merge(into, clock):
    for k, v in clock.items():
        if into.get(k, 0) < v:
            into[k] = v


def _host_clock():
    c = getattr(_tls, "host_clock", None)
    if c is None:
        c = _tls.host_clock = {}
    return c


def settle(clock, wait=True):
    """Complete every pending operation ``clock`` has seen (they are needed now)."""
    for dev in list(_devices.values()):
        for s in list(dev.streams.values()):
            seen = clock.get(s.key, 0)
            keep = []
            for entry in s.pending:
                if entry[0] <= seen:
                    entry[1].resolve(wait)
                if entry[1].time is None:
                    keep.append(entry)
            s.pending = keep


def poll():
    """Let asynchronous work that has finished record when it did (no waiting)."""
    for dev in list(_devices.values()):
        for s in list(dev.streams.values()):
            for entry in s.pending:
                entry[1].resolve(False)


# -- host synchronisation -----------------------------------------------------

host_syncs = []   # (what, where) of every synchronisation of the host with a device
_sync_counting = []


def note_host_sync(what):
    frame = traceback.extract_stack(limit=8)[:-2]
    where = next((f"{f.filename}:{f.lineno}" for f in reversed(frame)
                  if "/standin/" not in f.filename), "?")
    host_syncs.append((what, where))


@contextlib.contextmanager
def count_host_syncs():
    """with count_host_syncs() as syncs: ... -> syncs is the list of (what, where)."""
    start = len(host_syncs)
    out = []
    try:
        yield out
    finally:
        out.extend(host_syncs[start:])


def host_sync(clock, device, what):
    """The host waits for everything ``clock`` has seen; raises a sticky error."""
    note_host_sync(what)
    settle(clock)
    merge(_host_clock(), clock)
    raise_sticky(device)


def raise_sticky(device):
    st = device_state(device)
    if st.sticky is not None:
        raise st.sticky


# ---------------------------------------------------------------------------
# Allocations and the race check
# ---------------------------------------------------------------------------

class Buffer:
    """One device allocation: its host memory, its device, and the queued
    work that touched which bytes of it (see ``access``)."""
    __slots__ = ("owner", "device", "size", "ptr", "writes", "reads", "__weakref__")

    def __init__(self, owner, device):
        self.owner, self.device = owner, device
        self.size = owner.nbytes
        self.ptr = owner.ctypes.data
        self.writes = []   # (lo, hi, stream key, seq, description), byte offsets
        self.reads = []


def extent(buf, a):
    """The bytes [lo, hi) of ``buf`` that NumPy array ``a`` (a view into it) spans."""
    if a.size == 0:
        return 0, 0
    lo = hi = a.ctypes.data - buf.ptr
    for n, st in zip(a.shape, a.strides):
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


def _rounded(n):
    return max(1, -(-n // ALLOCATION_UNIT)) * ALLOCATION_UNIT


def allocate(nbytes, dtype, device=None):
    """A new device buffer (a NumPy array of ``nbytes`` bytes) on ``device``,
    filled with garbage as cudaMalloc'd memory is: NaN for floats."""
    from .cuda.memory import OutOfMemoryError
    device = current_device() if device is None else device
    st = device_state(device)
    size = _rounded(nbytes)
    if st.limit and st.used + size > st.limit:
        raise OutOfMemoryError(size, st.used, st.limit)
    if size in st.free_blocks:
        st.free_blocks.remove(size)
    st.used += size
    owner = np.empty(max(nbytes, 1), dtype=np.uint8)
    dt = np.dtype(dtype)
    if dt.kind == "f" and nbytes >= dt.itemsize:
        owner[:nbytes - nbytes % dt.itemsize].view(dt)[...] = np.nan
    else:
        owner[...] = 0xA5
    buf = Buffer(owner, device)
    with _lock:
        i = bisect.bisect(st.starts, buf.ptr)
        st.starts.insert(i, buf.ptr)
        st.bufs.insert(i, weakref.ref(buf))
    weakref.finalize(buf, _release, device, buf.ptr, size)
    return buf


def _release(device, ptr, size):
    st = _devices.get(device)
    if st is None:
        return
    with _lock:
        st.used -= size
        st.free_blocks.append(size)
        i = bisect.bisect_left(st.starts, ptr)
        if i < len(st.starts) and st.starts[i] == ptr:
            del st.starts[i], st.bufs[i]


def find_buffer(ptr, nbytes):
    """(Buffer, offset) of the live allocation holding [ptr, ptr + nbytes), on any device."""
    with _lock:
        for st in _devices.values():
            i = bisect.bisect(st.starts, ptr) - 1
            if i >= 0:
                buf = st.bufs[i]()
                if buf is not None and ptr + nbytes <= buf.ptr + buf.size:
                    return buf, ptr - buf.ptr
    return None, 0


def _stream_name(key):
    return f"the null stream of device {key[1]}" if isinstance(key, tuple) else f"stream #{key}"


def _prune(buf):
    """Forget work the host has waited for: all work queued later is ordered after it."""
    host = _host_clock()
    buf.writes = [w for w in buf.writes if host.get(w[2], 0) < w[3]]
    buf.reads = [r for r in buf.reads if host.get(r[2], 0) < r[3]]


def access(buf, stream, seq, what, write, lo=0, hi=None):
    """Record that operation ``seq`` on ``stream`` reads (and, if ``write``,
    writes) bytes [lo, hi) of ``buf``; RaceError if other work touching
    them is not ordered before it."""
    hi = buf.size if hi is None else hi
    if hi <= lo:
        return
    _prune(buf)
    clock, key = stream.clock, stream.key
    for wlo, whi, wkey, wseq, wwhat in buf.writes:
        if wlo < hi and lo < whi and wkey != key and clock.get(wkey, 0) < wseq:
            raise RaceError(f"{what} on {_stream_name(key)} {'writes' if write else 'reads'} "
                            f"memory that {wwhat} on {_stream_name(wkey)} writes, with "
                            f"nothing ordering the two (record an event after the writer and "
                            f"wait for it, or synchronize)")
    if write:
        for rlo, rhi, rkey, rseq, rwhat in buf.reads:
            if rlo < hi and lo < rhi and rkey != key and clock.get(rkey, 0) < rseq:
                raise RaceError(f"{what} on {_stream_name(key)} overwrites memory that "
                                f"{rwhat} on {_stream_name(rkey)} may still be reading (no "
                                f"event or synchronisation orders the two)")
        buf.writes = [w for w in buf.writes if not (lo <= w[0] and w[1] <= hi)]
        buf.reads = [r for r in buf.reads if not (lo <= r[0] and r[1] <= hi)]
        buf.writes.append((lo, hi, key, seq, what))
    else:
        buf.reads = [r for r in buf.reads if not (r[2] == key and lo <= r[0] and r[1] <= hi)]
        buf.reads.append((lo, hi, key, seq, what))


def host_access(buf, what, lo=0, hi=None):
    """The host reads bytes [lo, hi) of ``buf``: it must have waited for the work writing them."""
    hi = buf.size if hi is None else hi
    _prune(buf)
    for wlo, whi, wkey, wseq, wwhat in buf.writes:
        if wlo < hi and lo < whi:
            raise RaceError(f"the host {what} memory that {wwhat} on {_stream_name(wkey)} "
                            f"writes, without having waited for it")


def reset():
    """Forget every device, stream and allocation (between tests)."""
    with _lock:
        _devices.clear()
    _tls.__dict__.clear()
    del host_syncs[:]
