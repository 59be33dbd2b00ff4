"""cupy.cuda.nccl of the stand-in: NCCL's communicator over MPI between the
real processes of an ``mpiexec`` job (one MPI rank per NCCL rank; the
communicator spans MPI_COMM_WORLD, so ``ndev`` must be its size).

As with NCCL, ``NcclCommunicator(...)`` is collective: a rank that never
calls it leaves the others waiting in it. Collectives are queued on the
given stream and are asynchronous: they start a non-blocking MPI operation
and complete when something needs their result (later work on that stream,
an event of it that is waited for or synchronised), so reading the buffer
from another stream, or the host, without such an ordering raises
RaceError. Buffers are device pointers (``arr.data.ptr``) into allocations
of the communicator's device; anything else is NCCL_ERROR_INVALID_ARGUMENT.
Two ranks on one device are refused ("Duplicate GPU detected") unless
NCCL_MULTI_RANK_GPU_ENABLE=1, which NCCL >= 2.30 allows.
"""
import os
import time

import numpy as np

from .. import _standin

available = True

NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32 = 0, 1, 2, 3
NCCL_INT64, NCCL_UINT64, NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 4, 5, 6, 7, 8
NCCL_CHAR, NCCL_INT, NCCL_HALF, NCCL_FLOAT, NCCL_DOUBLE = 0, 2, 6, 7, 8

_DTYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
           6: np.float16, 7: np.float32, 8: np.float64}
_ERRORS = {1: ("NCCL_ERROR_UNHANDLED_CUDA_ERROR", "unhandled cuda error"),
           2: ("NCCL_ERROR_SYSTEM_ERROR", "unhandled system error"),
           3: ("NCCL_ERROR_INTERNAL_ERROR", "internal error"),
           4: ("NCCL_ERROR_INVALID_ARGUMENT", "invalid argument"),
           5: ("NCCL_ERROR_INVALID_USAGE", "invalid usage")}


class NcclError(RuntimeError):
    def __init__(self, status, detail=""):
        self.status = status
        name, text = _ERRORS.get(status, ("NCCL_ERROR", "error"))
        super().__init__(f"{name}: {text}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        return (type(self), (self.status,))


NcclError.__module__ = "cupy_backends.cuda.libs.nccl"


def get_version():
    return int(os.environ.get("CUPY_STANDIN_NCCL_VERSION", "23000"))


def get_build_version():
    return get_version()


def get_unique_id():
    """128 bytes, as NCCL's ncclUniqueId (CuPy >= 14 returns bytes)."""
    return os.urandom(128)


def _mpi():
    from mpi4py import MPI
    return MPI


class NcclCommunicator:
    def __init__(self, ndev, commId, rank, config=None):
        if not isinstance(commId, bytes):
            raise TypeError(f"Argument 'commId' has incorrect type (expected bytes, got "
                            f"{type(commId).__name__})")
        if len(commId) != 128:
            raise ValueError(f"commId length {len(commId)} != 128.")
        ndev, rank = int(ndev), int(rank)
        MPI = _mpi()
        world = MPI.COMM_WORLD
        if ndev != world.Get_size():
            raise NcclError(4, f"the stand-in's NCCL spans MPI_COMM_WORLD ({world.Get_size()} "
                               f"ranks), not {ndev}")
        if not 0 <= rank < ndev:
            raise NcclError(4, f"rank {rank} of {ndev}")
        self.device = _standin.current_device()
        # Collective, like ncclCommInitRank: every rank must get here.
        self._mpi = world.Dup()
        import socket
        me = (commId, rank, socket.gethostname(), self.device)
        everyone = self._mpi.allgather(me)
        if len({e[0] for e in everyone}) != 1 or sorted(e[1] for e in everyone) != \
                list(range(ndev)):
            self._mpi.Free()
            raise NcclError(5, "ranks disagree on the unique id, or on their ranks")
        places = [(e[2], e[3]) for e in everyone]
        shared = os.environ.get("NCCL_MULTI_RANK_GPU_ENABLE") == "1" and get_version() >= 23000
        if len(set(places)) != len(places) and not shared:
            a, b = [e[1] for e in everyone if places.count((e[2], e[3])) > 1][:2]
            self._mpi.Free()
            raise NcclError(5, f"Duplicate GPU detected : rank {a} and rank {b} both on CUDA "
                               f"device {self.device}")
        self.rank, self.ndev = rank, ndev
        self._comm = True

    # -- queries --------------------------------------------------------------
    def rank_id(self):
        return self.rank

    def size(self):
        return self.ndev

    def device_id(self):
        return self.device

    def destroy(self):
        if self._comm:
            self._comm = False
            self._mpi.Free()

    def abort(self):
        self.destroy()

    # -- collectives ----------------------------------------------------------
    def _buffer(self, ptr, count, datatype, what):
        dtype = np.dtype(_DTYPES.get(datatype, np.float32))
        nbytes = int(count) * dtype.itemsize
        buf, _ = _standin.find_buffer(ptr, max(nbytes, 1))
        if buf is None or buf.device != self.device:
            raise NcclError(4, f"{what} {ptr:#x}: not memory of device {self.device}")
        import ctypes
        view = np.frombuffer((ctypes.c_char * max(nbytes, 1)).from_address(ptr), dtype=dtype,
                             count=int(count))
        return (buf, ptr - buf.ptr, ptr - buf.ptr + nbytes), view

    def _queue(self, what, stream_ptr, reads, writes, start):
        if not self._comm:
            raise NcclError(5, "the communicator was destroyed")
        from . import stream_state_from_ptr
        s = stream_state_from_ptr(stream_ptr, self.device)
        if s.device != self.device:
            raise NcclError(4, f"a stream of device {s.device} for a communicator of device "
                               f"{self.device}")
        seq = s.begin(asynchronous=True)
        for b, lo, hi in reads:
            _standin.access(b, s, seq, what, False, lo, hi)
            s.overlapping(b, lo, hi)   # earlier exchanges on this stream that write it
        for b, lo, hi in writes:
            _standin.access(b, s, seq, what, True, lo, hi)
        finish = start()
        done = {}

        def complete(wait):
            if not done:
                if not finish(wait):
                    return None
                done["t"] = time.perf_counter()
            return done["t"]
        s.finish(complete, writes)

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        MPI = _mpi()
        sb, send = self._buffer(sendbuf, count, datatype, "sendbuf")
        rb, recv = self._buffer(recvbuf, count, datatype, "recvbuf")
        ops = {NCCL_SUM: MPI.SUM, NCCL_PROD: MPI.PROD, NCCL_MAX: MPI.MAX, NCCL_MIN: MPI.MIN,
               NCCL_AVG: MPI.SUM}
        if op not in ops:
            raise NcclError(4, f"reduction op {op}")

        def start():
            data = send.copy()   # what the stream's earlier work left there
            out = np.empty_like(data)
            req = self._mpi.Iallreduce(data, out, op=ops[op])

            def finish(wait):
                if wait:
                    req.Wait()
                elif not req.Test():
                    return False
                recv[...] = out / self.ndev if op == NCCL_AVG else out
                return True
            return finish
        self._queue("ncclAllReduce", stream, [sb], [rb], start)

    def broadcast(self, sendbuff, recvbuff, count, datatype, root, stream):
        sb, send = self._buffer(sendbuff, count, datatype, "sendbuff")
        rb, recv = self._buffer(recvbuff, count, datatype, "recvbuff")

        def start():
            data = send.copy()
            req = self._mpi.Ibcast(data, root=root)

            def finish(wait):
                if wait:
                    req.Wait()
                elif not req.Test():
                    return False
                recv[...] = data
                return True
            return finish
        self._queue("ncclBroadcast", stream, [sb], [rb], start)

    def bcast(self, buff, count, datatype, root, stream):
        self.broadcast(buff, buff, count, datatype, root, stream)
