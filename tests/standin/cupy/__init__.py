"""A stand-in for CuPy, for minivgg's tests on machines without a GPU. It is
test code (it is not installed with minivgg) and it is not CuPy: arrays are
NumPy arrays in host memory, kernels run through minivgg's emulator (g++),
matrix products through NumPy.

What it is for is to refuse, as CuPy and CUDA would, what NumPy lets
through, so that the GPU half of minivgg fails here and not on a GPU:

* every array lives on a device (``arr.device``); new arrays go to the
  current device (``cupy.cuda.Device(i)`` as a context manager or
  ``.use()``), ``copy()`` and ``asarray`` included; an operation on an
  array of another device raises ValueError, as CuPy does without peer access;
* an array does not turn into a NumPy array by itself: ``np.asarray(arr)``
  raises TypeError, NumPy arrays are refused as operands, and only what the
  real CuPy 14.2 provides (``_names.py``) is offered; ``float(arr)``,
  ``int(arr)``, ``.get()`` and friends work and are counted as host
  synchronisations (``_standin.count_host_syncs``);
* work is ordered as on streams (see ``_standin``): reading a result that
  another stream writes without an event or synchronisation raises
  ``RaceError``;
* ``RawModule``/``RawKernel`` compile the given CUDA source with the
  emulator (``minivgg.cuda.emulator.compile_module``, with CuPy's
  ``-ftz=true`` and NVRTC's fused multiply-adds) and launch it on the
  arrays' memory with arguments passed as CuPy passes them: a pointer per
  array (strides ignored), NumPy scalars at their own width, Python ints as
  64 bits, Python floats as double, nothing checked against the kernel;
* the memory pool counts bytes as CuPy's does and honours ``set_limit``;
* ``cupy.cuda.nccl`` runs over MPI between real processes.

Start a program with it in place with ``python tests/standin/run.py
script.py ...`` (``CUPY_STANDIN_DEVICES``, default 2, sets the number of
devices). docs/gpu.md says what passing under it proves, and what it does not.
"""
import functools
import os

import numpy as _np

from . import _names, _standin, cuda
from .cuda import memory as _memory

__version__ = "14.2.0+standin"
#: Code can tell the stand-in from CuPy by this attribute.
STANDIN = True

get_default_memory_pool = _memory.get_default_memory_pool


def get_default_pinned_memory_pool():
    return _memory.get_default_memory_pool()


# ---------------------------------------------------------------------------
# One operation: device check, queueing on the current stream, race check
# ---------------------------------------------------------------------------

def _check_devices(arrays, what):
    dev = _standin.current_device()
    for a in arrays:
        if a._buf.device != dev:
            raise ValueError(f"The device where the array resides ({a._buf.device}) is "
                             f"different from the current device ({dev}). Peer access is "
                             f"unavailable between these devices. (stand-in: in {what})")


class _Op:
    """with _Op(what, reads, writes) as op: ... op.output(buffer) ...

    Queues one operation on the current stream: checks it may read and
    write what it touches, and records that it did."""

    def __init__(self, what, reads=(), writes=(), device_check=True, stream=None):
        self.what, self.reads, self.writes = what, list(reads), list(writes)
        self.stream = stream
        if device_check:
            _check_devices(self.reads + self.writes, what)

    def __enter__(self):
        if self.stream is None:
            self.stream = cuda.current_stream_state()
        self.seq = self.stream.begin()
        for a in self.reads:
            _standin.access(a._buf, self.stream, self.seq, self.what, False,
                            *_standin.extent(a._buf, a._a))
        for a in self.writes:
            _standin.access(a._buf, self.stream, self.seq, self.what, True,
                            *_standin.extent(a._buf, a._a))
        return self

    def output(self, buf):
        _standin.access(buf, self.stream, self.seq, self.what, True)

    def __exit__(self, *exc):
        self.stream.finish()
        return False


def _adopt(a):
    """Make NumPy result ``a`` (memory nobody else holds) a buffer of the current device."""
    owner = a if a.base is None else a.base
    if not isinstance(owner, _np.ndarray) or owner.base is not None:
        owner = a = a.copy()
    buf = _standin.Buffer(owner, _standin.current_device())
    st = _standin.device_state()
    size = _standin._rounded(owner.nbytes)
    from .cuda.memory import OutOfMemoryError
    if st.limit and st.used + size > st.limit:
        raise OutOfMemoryError(size, st.used, st.limit)
    st.used += size
    import bisect
    import weakref
    with _standin._lock:
        i = bisect.bisect(st.starts, buf.ptr)
        st.starts.insert(i, buf.ptr)
        st.bufs.insert(i, weakref.ref(buf))
    weakref.finalize(buf, _standin._release, buf.device, buf.ptr, size)
    _malloc_hooks(size)
    return a, buf


def _malloc_hooks(size):
    for hook in list(getattr(_standin._tls, "hooks", [])):
        hook.malloc_postprocess(device_id=_standin.current_device(), size=size,
                                mem_size=size, mem_ptr=0, pmem_id=0)


def _unwrap(x, arrays, host_ok=False):
    if isinstance(x, ndarray):
        arrays.append(x)
        return x._a
    if isinstance(x, _np.ndarray):
        if host_ok:
            return x
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i, arrays, host_ok) for i in x)
    return x


def _is_view(res, arrays):
    return next((a for a in arrays if _np.may_share_memory(res, a._a)), None)


def _wrap(res, op):
    """Wrap what NumPy returned: arrays (new, on the current device) and
    0-d results (CuPy's reductions give 0-d arrays, not scalars)."""
    if isinstance(res, tuple):
        return tuple(_wrap(r, op) for r in res)
    if isinstance(res, list):
        return [_wrap(r, op) for r in res]
    if isinstance(res, _np.generic):
        res = _np.asarray(res)
    if isinstance(res, _np.ndarray):
        res, buf = _adopt(res)
        op.output(buf)
        return ndarray._make(res, buf)
    return res


def _apply(what, fn, args, kwargs, host_ok=False):
    """Run NumPy ``fn`` on the unwrapped arguments as one device operation."""
    arrays = []
    args = _unwrap(args, arrays, host_ok)
    kwargs = {k: _unwrap(v, arrays, host_ok) for k, v in kwargs.items()}
    out = kwargs.get("out")
    outs = [a for a in arrays if out is not None and a._a is out]
    res = fn(*args, **kwargs)
    if isinstance(res, _np.ndarray) and outs and res is outs[0]._a:
        with _Op(what, [a for a in arrays if not any(a is o for o in outs)], outs):
            pass
        return outs[0]
    src = _is_view(res, arrays) if isinstance(res, _np.ndarray) else None
    if src is not None:  # a view: no work queued, no device involved
        return ndarray._make(res, src._buf)
    with _Op(what, arrays) as op:
        return _wrap(res, op)


# ---------------------------------------------------------------------------
# The array
# ---------------------------------------------------------------------------

class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]


class MemoryPointer:
    def __init__(self, a, buf):
        self.ptr = a.ctypes.data
        self.device_id = buf.device
        self.mem = type("Memory", (), {"size": buf.size, "ptr": buf.ptr})()

    @property
    def device(self):
        return cuda.Device(self.device_id)


def _binary(ufunc, reflected=False, inplace=False):
    def op(self, other):
        if not isinstance(other, (ndarray, _np.ndarray, _np.generic, bool, int, float,
                                  complex)):
            return NotImplemented
        if inplace:
            return _ufunc_call(ufunc, (self, other), {"out": self})
        return _ufunc_call(ufunc, (other, self) if reflected else (self, other), {})
    return op


class ndarray:
    """A device array: a NumPy array, the device it lives on, and its allocation."""
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        dtype = _np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = int(_np.prod(shape, dtype=_np.int64)) * dtype.itemsize
        buf = _standin.allocate(nbytes, dtype)
        _malloc_hooks(_standin._rounded(nbytes))
        self._a = _np.ndarray(shape, dtype, buffer=buf.owner, order=order)
        self._buf = buf

    @classmethod
    def _make(cls, a, buf):
        obj = cls.__new__(cls)
        obj._a, obj._buf = a, buf
        return obj

    # -- what CuPy refuses ---------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        parts = func.__module__.split(".")[1:] + [func.__name__]
        try:
            target = functools.reduce(getattr, parts, _this())
        except AttributeError:
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, _np.ndarray)):
                return NotImplemented
        return target(*args, **kwargs)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or ufunc.__name__ not in _names.MODULE:
            return NotImplemented
        if "out" in kwargs:
            (kwargs["out"],) = kwargs["out"]
        return _ufunc_call(ufunc, inputs, kwargs)

    # -- where it lives --------------------------------------------------------
    @property
    def device(self):
        return cuda.Device(self._buf.device)

    @property
    def data(self):
        return MemoryPointer(self._a, self._buf)

    # -- shape and type (no device work) ------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))

    @property
    def T(self):
        return self.transpose()

    def __len__(self):
        return len(self._a)

    # -- reading it on the host (a synchronisation) ----------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A NumPy copy: queued on the current stream, then the host waits for it."""
        s = (stream or cuda.get_current_stream()).state()
        with _Op("a device-to-host copy", [self], device_check=False, stream=s):
            host = _np.array(self._a, order=order, copy=True)
        if blocking:
            _standin.host_sync(dict(s.clock), s.device, ".get()")
            _standin.host_access(self._buf, "reads (.get())", *_standin.extent(self._buf, self._a))
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None):
        if not isinstance(arr, _np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray; got {type(arr)}")
        with _Op("a host-to-device copy", [], [self], device_check=False):
            self._a[...] = arr

    def item(self):
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def __float__(self):
        return float(self.get())

    def __int__(self):
        return int(self.get())

    def __index__(self):
        raise TypeError("a cupy.ndarray cannot be used as an index on the host")

    def __bool__(self):
        return bool(self.get())

    def __complex__(self):
        return complex(self.get())

    def __repr__(self):
        return repr(self.get()).replace("array(", "array(", 1)

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    # -- indexing ------------------------------------------------------------------------
    def __getitem__(self, key):
        arrays = []
        k = _unwrap(key, arrays)
        res = self._a[k]
        if isinstance(res, _np.generic):  # CuPy gives a 0-d view
            res = self._a[(k if isinstance(k, tuple) else (k,)) + (Ellipsis,)]
        if _np.may_share_memory(res, self._a):
            return ndarray._make(res, self._buf)
        with _Op("an indexing copy", [self] + arrays) as op:
            return _wrap(res, op)

    def __setitem__(self, key, value):
        arrays = []
        k = _unwrap(key, arrays)
        v = _unwrap(value, arrays)  # a NumPy array is refused, as CuPy refuses it
        with _Op("an assignment", arrays, [self]):
            self._a[k] = v

    # -- methods -----------------------------------------------------------------------
    def copy(self, order="C"):
        """A copy on the CURRENT device, whatever device this array is on (as CuPy)."""
        with _Op("a copy", [self], device_check=False) as op:
            return _wrap(_np.array(self._a, order=order, copy=True), op)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and _np.dtype(dtype) == self.dtype:
            return self
        with _Op("astype", [self]) as op:
            return _wrap(self._a.astype(dtype, order=order), op)

    def fill(self, value):
        with _Op("fill", [], [self]):
            self._a.fill(_unwrap(value, []))

    def view(self, dtype=None):
        return ndarray._make(self._a.view() if dtype is None else self._a.view(dtype), self._buf)

    def __getattr__(self, name):
        if name.startswith("_") or name not in _names.NDARRAY:
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}' "
                                 f"(the CuPy stand-in offers what CuPy 14.2 offers)")
        meth = getattr(self._a, name)
        if not callable(meth):
            return meth

        def method(*args, **kwargs):
            arrays = [self]
            a2 = _unwrap(args, arrays)
            k2 = {k: _unwrap(v, arrays) for k, v in kwargs.items()}
            res = meth(*a2, **k2)
            if name in ("sort", "partition", "put", "resize"):  # in place
                with _Op(name, arrays[1:], [self]):
                    pass
                return res
            if isinstance(res, _np.ndarray):
                src = _is_view(res, arrays)
                if src is not None:
                    return ndarray._make(res, src._buf)
            with _Op(name, arrays) as op:
                return _wrap(res, op)
        return method

    __add__ = _binary(_np.add)
    __radd__ = _binary(_np.add, reflected=True)
    __iadd__ = _binary(_np.add, inplace=True)
    __sub__ = _binary(_np.subtract)
    __rsub__ = _binary(_np.subtract, reflected=True)
    __isub__ = _binary(_np.subtract, inplace=True)
    __mul__ = _binary(_np.multiply)
    __rmul__ = _binary(_np.multiply, reflected=True)
    __imul__ = _binary(_np.multiply, inplace=True)
    __truediv__ = _binary(_np.true_divide)
    __rtruediv__ = _binary(_np.true_divide, reflected=True)
    __itruediv__ = _binary(_np.true_divide, inplace=True)
    __floordiv__ = _binary(_np.floor_divide)
    __rfloordiv__ = _binary(_np.floor_divide, reflected=True)
    __mod__ = _binary(_np.remainder)
    __pow__ = _binary(_np.power)
    __rpow__ = _binary(_np.power, reflected=True)
    __ipow__ = _binary(_np.power, inplace=True)
    __matmul__ = _binary(_np.matmul)
    __rmatmul__ = _binary(_np.matmul, reflected=True)
    __and__ = _binary(_np.bitwise_and)
    __or__ = _binary(_np.bitwise_or)
    __xor__ = _binary(_np.bitwise_xor)
    __iand__ = _binary(_np.bitwise_and, inplace=True)
    __ior__ = _binary(_np.bitwise_or, inplace=True)
    __lt__ = _binary(_np.less)
    __le__ = _binary(_np.less_equal)
    __gt__ = _binary(_np.greater)
    __ge__ = _binary(_np.greater_equal)
    __eq__ = _binary(_np.equal)
    __ne__ = _binary(_np.not_equal)
    __hash__ = None

    def __neg__(self):
        return _ufunc_call(_np.negative, (self,), {})

    def __pos__(self):
        return _ufunc_call(_np.positive, (self,), {})

    def __abs__(self):
        return _ufunc_call(_np.absolute, (self,), {})

    def __invert__(self):
        return _ufunc_call(_np.invert, (self,), {})


def _ufunc_call(ufunc, inputs, kwargs):
    for x in inputs:
        if isinstance(x, _np.ndarray):  # CuPy refuses host arrays as operands
            raise TypeError(f"Unsupported type {type(x)}")
        if not isinstance(x, (ndarray, _np.generic, bool, int, float, complex)):
            return NotImplemented
    if ufunc is _np.matmul:
        return _matmul(*inputs, **kwargs)
    return _apply(ufunc.__name__, ufunc, inputs, kwargs)


# ---------------------------------------------------------------------------
# cuBLAS products, with TF32 when asked for (_core._routines_linalg)
# ---------------------------------------------------------------------------

def _tf32(a):
    """float32 rounded to TF32's 10-bit mantissa (round to nearest even)."""
    bits = a.astype(_np.float32).view(_np.uint32)
    keep = bits + _np.uint32(0xFFF) + ((bits >> _np.uint32(13)) & _np.uint32(1))
    return (keep & _np.uint32(0xFFFFE000)).view(_np.float32)


def _matmul(a, b, out=None, **kwargs):
    from ._core import _routines_linalg as linalg
    arrays = []
    x, y = _unwrap((a, b), arrays)
    o = _unwrap(out, arrays) if out is not None else None
    if (x.dtype == _np.float32 and y.dtype == _np.float32
            and linalg.compute_types.get(_np.dtype(_np.float32)) == linalg.COMPUTE_TYPE_TF32):
        x, y = _tf32(x), _tf32(y)
    reads = [v for v in arrays if out is None or v is not out]
    with _Op("a cuBLAS product", reads, [out] if out is not None else []) as op:
        res = _np.matmul(x, y, out=o, **kwargs)
        return out if out is not None else _wrap(res, op)


matmul = _matmul


def dot(a, b, out=None):
    return _matmul(a, b, out=out)


# ---------------------------------------------------------------------------
# Functions of the cupy namespace
# ---------------------------------------------------------------------------

def _this():
    import sys
    return sys.modules[__name__]


#: Functions that make device arrays from host data (a host-to-device copy).
_FROM_HOST = {"array", "asarray", "ascontiguousarray", "asfortranarray", "asanyarray"}


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    """A new array on the current device; a host-to-device copy from NumPy
    data, a device-to-device copy from an array of another device."""
    if isinstance(obj, ndarray):
        same = obj._buf.device == _standin.current_device()
        if same and not copy and (dtype is None or _np.dtype(dtype) == obj.dtype):
            return obj
        with _Op("a copy", [obj], device_check=False) as op:
            return _wrap(_np.array(obj._a, dtype=dtype, order=order, ndmin=ndmin, copy=True), op)
    if isinstance(obj, (list, tuple)) and any(isinstance(x, ndarray) for x in obj):
        res = _this().stack(list(obj))
        return res if dtype is None else res.astype(dtype)
    host = _np.array(obj, dtype=dtype, order=order, ndmin=ndmin, copy=True)
    with _Op("a host-to-device copy") as op:
        return _wrap(host, op)


def asarray(a, dtype=None, order=None, *, blocking=False):
    return array(a, dtype=dtype, copy=False, order=order or "K")


def asanyarray(a, dtype=None, order=None):
    return asarray(a, dtype, order)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a._buf.device == _standin.current_device():
        if a.flags.c_contiguous and (dtype is None or _np.dtype(dtype) == a.dtype):
            return a
        with _Op("ascontiguousarray", [a]) as op:
            return _wrap(_np.ascontiguousarray(a._a, dtype=dtype), op)
    return array(a, dtype=dtype, copy=False, order="C")


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return _this() if any(isinstance(a, ndarray) for a in args) else _np


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return ndarray(a.shape if shape is None else shape, dtype or a.dtype)


def zeros(shape, dtype=float, order="C"):
    return full(shape, 0, dtype, order)


def ones(shape, dtype=float, order="C"):
    return full(shape, 1, dtype, order)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return zeros(a.shape if shape is None else shape, dtype or a.dtype)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return ones(a.shape if shape is None else shape, dtype or a.dtype)


def full(shape, fill_value, dtype=None, order="C"):
    out = ndarray(shape, dtype or _np.asarray(fill_value).dtype, order=order)
    out.fill(fill_value)
    return out


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return full(a.shape if shape is None else shape, fill_value, dtype or a.dtype)


def _numpy_function(name):
    fn = getattr(_np, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return _apply(name, fn, args, kwargs)
    wrapper.__module__ = __name__
    return wrapper


class _Namespace:
    def __init__(self, module, names):
        self._module, self._names = module, names

    def __getattr__(self, name):
        if name not in self._names:
            raise AttributeError(f"the CuPy stand-in has no {name} here (nor does CuPy)")
        fn = getattr(self._module, name)

        def wrapper(*args, **kwargs):
            return _apply(name, fn, args, kwargs)
        return wrapper


lib = type("lib", (), {"stride_tricks": _Namespace(_np.lib.stride_tricks,
                                                   {"as_strided", "sliding_window_view"})})()
linalg = _Namespace(_np.linalg, _names.LINALG)


class _Random:
    """cupy.random: NumPy's generator, the numbers made on the current device."""

    def __getattr__(self, name):
        if name not in _names.RANDOM:
            raise AttributeError(f"cupy.random has no {name}")
        fn = getattr(_np.random, name)

        def wrapper(*args, dtype=None, **kwargs):
            res = fn(*args, **kwargs)
            return array(res if dtype is None else _np.asarray(res, dtype=dtype))
        return wrapper


random = _Random()


def __getattr__(name):
    if name.startswith("_") or name not in _names.MODULE:
        raise AttributeError(f"module 'cupy' has no attribute '{name}' (the stand-in offers "
                             f"what CuPy 14.2 offers)")
    if name in ("RawModule", "RawKernel"):
        raise AttributeError(name)
    obj = getattr(_np, name, None)
    if obj is None:
        raise AttributeError(f"the CuPy stand-in does not implement cupy.{name}")
    if isinstance(obj, _np.ufunc):
        @functools.wraps(obj)
        def ufunc(*args, **kwargs):
            return _ufunc_call(obj, args, kwargs)
        globals()[name] = ufunc
        return ufunc
    if callable(obj) and not isinstance(obj, type):
        wrapper = globals()[name] = _numpy_function(name)
        return wrapper
    return obj  # dtypes, scalar types, constants


# ---------------------------------------------------------------------------
# Kernels: RawModule, RawKernel
# ---------------------------------------------------------------------------

_GARBAGE = b"\xab" * 8   # what a parameter reads beyond the bytes it was given


def _marshal(x):
    """The bytes CuPy hands the driver for one kernel argument."""
    if x is None:
        return (0).to_bytes(8, "little"), None
    if isinstance(x, ndarray):
        return x._a.ctypes.data.to_bytes(8, "little"), x
    if isinstance(x, _np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, _np.generic):
        return x.tobytes(), None
    if isinstance(x, bool):
        return _np.bool_(x).tobytes(), None
    if isinstance(x, int):
        return _np.int64(x).tobytes(), None
    if isinstance(x, float):
        return _np.float64(x).tobytes(), None
    raise TypeError(f"Unsupported type {type(x)}")


_FAULT = 700  # cudaErrorIllegalAddress


class RawKernel:
    def __init__(self, module, name, sig):
        self.module, self.name, self.sig = module, name, sig
        self.fn = getattr(module.lib, f"minivgg_emu_launch_{name}")

    def __call__(self, grid, block, args, shared_mem=0, stream=None, **kwargs):
        from .cuda.runtime import CUDARuntimeError
        dev = _standin.current_device()
        st = _standin.device_state(dev)
        grid = tuple(grid) + (1,) * (3 - len(tuple(grid)))
        block = tuple(block) + (1,) * (3 - len(tuple(block)))
        values, reads, writes, fault = [], [], [], None
        for i, p in enumerate(self.sig.params):
            raw, arr = _marshal(args[i]) if i < len(args) else (b"", None)
            size = 8 if p.pointer else p.dtype.itemsize
            raw = (raw + _GARBAGE)[:size]
            if p.pointer:
                ptr = int.from_bytes(raw, "little")
                buf = arr._buf if arr is not None else _standin.find_buffer(ptr, 1)[0]
                if buf is None or buf.device != dev:
                    fault = (f"argument {i} ({p.name}) of {self.name} points to "
                             + ("no device allocation" if buf is None else
                                f"memory of device {buf.device}, launched on device {dev}"))
                else:
                    if arr is None:  # a raw address: the kernel may reach the allocation's end
                        off = ptr - buf.ptr
                        arr = ndarray._make(buf.owner[off:], buf)
                    (reads if p.const else writes).append(arr)
                values.append(ptr)
            else:
                values.append(_np.frombuffer(raw, dtype=p.dtype)[0].item())
        s = (stream or cuda.get_current_stream()).state()
        with _Op(f"kernel {self.name}", reads, writes, device_check=False, stream=s):
            if self.name in st.faults:
                st.faults.discard(self.name)
                fault = f"{self.name} faulted (planted with inject_fault)"
            if fault is not None and st.sticky is None:
                st.sticky = CUDARuntimeError(_FAULT)
                st.sticky.standin_detail = fault
            if st.sticky is None:
                self.fn(*grid, *block, *values)
        if st.sticky is not None and os.environ.get("CUDA_LAUNCH_BLOCKING") == "1":
            _standin.note_host_sync("CUDA_LAUNCH_BLOCKING=1 launch")
            raise st.sticky


class RawModule:
    """CUDA C source compiled for the stand-in's devices by the emulator, as
    NVRTC compiles it for CuPy: -ftz=true always (CuPy adds it), fused
    multiply-adds unless --fmad=false."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=False):
        if code is None:
            raise NotImplementedError("the CuPy stand-in compiles source code only")
        self.code, self.options = code, tuple(options)
        self._lib = None

    @property
    def lib(self):
        if self._lib is None:
            from minivgg.cuda import emulator
            import hashlib
            name = "standin_" + hashlib.sha256(self.code.encode()).hexdigest()[:8]
            fmad = "--fmad=false" not in self.options and "-fmad=false" not in self.options
            self._lib, self._sigs = emulator.compile_module(self.code, name, ftz=True, fmad=fmad)
        return self._lib

    def get_function(self, name):
        self.lib
        if name not in self._sigs:
            from .cuda.runtime import CUDARuntimeError
            raise CUDARuntimeError(500)  # cudaErrorNotFound: no such symbol
        return RawKernel(self, name, self._sigs[name])


from . import _core  # noqa: E402,F401  (cupy._core._routines_linalg)

