"""cupy.cuda of the stand-in: Device, Stream, Event, and where they are current."""
import time
import weakref

from .. import _standin
from . import memory, runtime  # noqa: F401
from .memory import OutOfMemoryError  # noqa: F401


def is_available():
    return _standin.visible_devices() > 0


class Device:
    """A device, and (as a context manager) the current one."""

    def __init__(self, device=None):
        self.id = _standin.current_device() if device is None else int(device)

    def use(self):
        _standin.set_current_device(self.id)
        return self

    def __enter__(self):
        stack = _standin._tls.__dict__.setdefault("device_stack", [])
        stack.append(_standin.current_device())
        _standin.set_current_device(self.id)
        return self

    def __exit__(self, *exc):
        _standin._tls.device = _standin._tls.device_stack.pop()
        return False

    def synchronize(self):
        """The host waits for all work of this device."""
        clock = {}
        for s in list(_standin.device_state(self.id).streams.values()):
            _standin.merge(clock, s.clock)
        _standin.host_sync(clock, self.id, f"Device({self.id}).synchronize()")

    @property
    def compute_capability(self):
        return "90"

    @property
    def mem_info(self):
        with self:
            return runtime.memGetInfo()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------

def _null_state(device):
    st = _standin.device_state(device)
    s = st.streams.get(("null", device))
    if s is None:
        s = _standin.StreamState(device, blocking=True, null=True)
        st.__dict__.setdefault("null_keepalive", s)
    return s


def _stack():
    return _standin._tls.__dict__.setdefault("streams", {})


class Stream:
    """A CUDA stream of the device current at its creation."""
    null = None  # set below

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        if null:
            self.device_id, self._state, self.ptr = -1, None, 0
            return
        self.device_id = _standin.current_device()
        self._state = _standin.StreamState(self.device_id, blocking=not non_blocking)
        self.ptr = id(self)
        _by_ptr[self.ptr] = self

    def state(self):
        """The StreamState this stream is on the current device."""
        if self._state is None:
            return _null_state(_standin.current_device())
        return self._state

    def __enter__(self):
        dev = _standin.current_device()
        if self.device_id not in (-1, dev):
            raise RuntimeError(f"The device that the stream is created on ({self.device_id}) "
                               f"does not match with the current device ({dev})")
        _stack().setdefault(dev, []).append(self)
        return self

    def __exit__(self, *exc):
        _stack()[_standin.current_device()].pop()
        return False

    def use(self):
        dev = _standin.current_device()
        if self.device_id not in (-1, dev):
            raise RuntimeError(f"The device that the stream is created on ({self.device_id}) "
                               f"does not match with the current device ({dev})")
        stack = _stack().setdefault(dev, [])
        if stack:
            stack[-1] = self
        else:
            stack.append(self)
        return self

    def synchronize(self):
        s = self.state()
        _standin.host_sync(dict(s.clock), s.device, "Stream.synchronize()")

    @property
    def done(self):
        s = self.state()
        _standin.poll()
        if any(entry[1].time is None for entry in s.pending):
            return False
        _standin.host_sync(dict(s.clock), s.device, "Stream.done")
        return True

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        """Work queued on this stream from now on runs after the event."""
        if event._clock is None:
            return  # an event never recorded: CUDA ignores the wait
        s = self.state()
        _standin.merge(s.clock, event._clock)
        s.waits.append(event._node)

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return self.ptr

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"


_by_ptr = weakref.WeakValueDictionary()
Stream.null = Stream(null=True)


def stream_state_from_ptr(ptr, device):
    """The StreamState of a raw stream handle (0: the null stream of ``device``)."""
    if ptr == 0:
        return _null_state(device)
    s = _by_ptr.get(ptr)
    if s is None:
        raise runtime.CUDARuntimeError(400)
    return s._state


def get_current_stream(device_id=None):
    dev = _standin.current_device() if device_id is None else device_id
    stack = _stack().get(dev)
    return stack[-1] if stack else Stream.null


def current_stream_state():
    return get_current_stream().state()


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self.disable_timing = disable_timing
        self._clock, self._node, self._device = None, None, None
        self.ptr = id(self)

    def record(self, stream=None):
        s = (stream or get_current_stream()).state()
        self._device = s.device
        self._clock = dict(s.clock)
        self._node = s.mark()

    def synchronize(self):
        if self._clock is None:
            return
        self._node.resolve(True)
        _standin.host_sync(self._clock, self._device, "Event.synchronize()")

    @property
    def done(self):
        if self._clock is None:
            return True
        _standin.poll()
        if self._node.resolve(False) is None:
            return False
        _standin.host_sync(self._clock, self._device, "Event.done")
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two completed events (CUDA refuses otherwise)."""
    for e in (start_event, end_event):
        if e._clock is None or e.disable_timing:
            raise runtime.CUDARuntimeError(400)
        if e._node.resolve(False) is None:
            raise runtime.CUDARuntimeError(600)  # recorded, not yet complete
    _standin.raise_sticky(end_event._device)
    return 1e3 * (end_event._node.time - start_event._node.time)


class MemoryHook:
    """CuPy's memory hooks: malloc_postprocess(**kw) after each allocation."""
    name = "hook"

    def __enter__(self):
        _standin._tls.__dict__.setdefault("hooks", []).append(self)
        return self

    def __exit__(self, *exc):
        _standin._tls.hooks.remove(self)
        return False

    def malloc_preprocess(self, **kwargs):
        pass

    def malloc_postprocess(self, **kwargs):
        pass


def _clock_now():
    return time.perf_counter()
