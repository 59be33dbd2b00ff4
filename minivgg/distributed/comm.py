"""Communicators: how the processes of a data-parallel run talk (§3.3).

The paper trained on 4 GPUs at once: each took a slice of the batch, and
"the resulting GPU batch gradients are averaged to obtain the gradient of
the full batch". A communicator is what that averaging needs, and nothing
more:

    rank, size, local_rank           who am I, how many are we, which GPU on my node
    allreduce_mean(buf)              in place: every rank ends with the mean of all ranks' buf
    allreduce_mean_async(buf)        the same, started now; .wait() before reading buf
    broadcast(buf, root=0)           in place: every rank ends with root's buf
    sum_host(values)                 small host-side sums (metrics, flags), float64
    gather_errors(message)           every rank learns whether any rank failed, and how
    barrier(), abort(code)

Three implementations:

* ``SingleProcess``: size 1, every operation a no-op; the default.
* ``MPICommunicator``: mpi4py over NumPy buffers (cpu and emu devices), for
  CPU clusters and for testing the whole data-parallel path on one machine
  (``mpiexec -n 2 ...``).
* ``NCCLCommunicator``: NCCL through ``cupy.cuda.nccl`` on CuPy buffers, one
  GPU per rank (GPU = local rank). MPI only starts it (it broadcasts NCCL's
  unique id) and carries the small host-side values.
"""
import os
import sys
import time

import numpy as np


class DistributedError(RuntimeError):
    """A data-parallel run cannot start or continue (printed once, by rank 0)."""


def env_rank():
    """This process's rank as the MPI launcher announced it (0 when not launched by one)."""
    for key in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def launched_by_mpiexec():
    return any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                         "PMIX_RANK", "MV2_COMM_WORLD_SIZE"))


class _Done:
    """A finished asynchronous operation."""

    def wait(self):
        pass


class Communicator:
    """The interface; see the module docstring."""
    rank, size, local_rank, local_size = 0, 1, 0, 1
    kind = "none"
    device_index = None  # the GPU this rank must use (NCCL), else None

    def allreduce_mean(self, buf):
        self.allreduce_mean_async(buf).wait()

    def allreduce_mean_async(self, buf):
        raise NotImplementedError

    def broadcast(self, buf, root=0):
        raise NotImplementedError

    def sum_host(self, values):
        raise NotImplementedError

    def broadcast_object(self, obj, root=0):
        raise NotImplementedError

    def gather_errors(self, message):
        """[(rank, message)] of every rank whose ``message`` is not None."""
        raise NotImplementedError

    def progress(self):
        """Let outstanding asynchronous operations advance (MPI needs calls to do so)."""

    def timer(self):
        """Measures the exchange a step waits for: .stop(), then .result() in
        seconds. On the host's clock here (the host waits for MPI); NCCL
        measures on the GPU's."""
        return _HostTimer()

    def barrier(self):
        pass

    def abort(self, code=1):
        sys.exit(code)

    def close(self):
        pass

    def describe(self):
        return f"{self.kind}, {self.size} rank(s)"


class SingleProcess(Communicator):
    """One process: averaging over one rank changes nothing."""

    def allreduce_mean_async(self, buf):
        return _Done()

    def broadcast(self, buf, root=0):
        pass

    def sum_host(self, values):
        return np.asarray(values, dtype=np.float64)

    def broadcast_object(self, obj, root=0):
        return obj

    def gather_errors(self, message):
        return [] if message is None else [(0, message)]


def _import_mpi():
    try:
        from mpi4py import MPI
    except Exception as e:  # ImportError, or an MPI library that fails to load
        raise DistributedError(f"--distributed needs mpi4py and an MPI library ({e}); install "
                               f"them with pip install -e \".[dist]\" (mpi4py and mpich, which "
                               f"brings mpiexec)") from None
    return MPI


class _MPIRequest:
    def __init__(self, req, buf, scale):
        self.req, self.buf, self.scale = req, buf, scale
        self.done = False

    def wait(self):
        if not self.done:
            self.req.Wait()
            self.buf *= self.buf.dtype.type(self.scale)
            self.done = True


class _HostSide:
    """Host-side collectives over an mpi4py communicator (shared by MPI and NCCL)."""

    def _init_world(self, MPI):
        self.MPI = MPI
        self.world = MPI.COMM_WORLD
        self.rank, self.size = self.world.Get_rank(), self.world.Get_size()
        node = self.world.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def sum_host(self, values):
        buf = np.array(values, dtype=np.float64)
        self.world.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def broadcast_object(self, obj, root=0):
        return self.world.bcast(obj, root=root)

    def gather_errors(self, message):
        every = self.world.allgather(message)
        return [(r, m) for r, m in enumerate(every) if m is not None]

    def barrier(self):
        self.world.Barrier()

    #: Seconds a failing rank waits between writing its report and calling
    #: MPI_Abort: the launcher forwards each rank's output through a pipe,
    #: and an abort that reaches it first can end the job with the report
    #: still unread (seen with MPICH's mpiexec: the failing rank's traceback
    #: was missing from the job's output in 4 of about 40 runs of
    #: tests/distributed/test_data_parallel.py's failure test, and in none
    #: of 20 with this wait).
    ABORT_GRACE_S = 0.5

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(self.ABORT_GRACE_S)
        self.world.Abort(code)


class MPICommunicator(_HostSide, Communicator):
    """Data parallelism over MPI: NumPy buffers, in-place Allreduce."""
    kind = "mpi"

    def __init__(self, require_launcher=True):
        MPI = _import_mpi()
        self._init_world(MPI)
        if require_launcher and self.size == 1 and not launched_by_mpiexec():
            raise DistributedError(
                "--distributed mpi: this process was not started by mpiexec (one rank, no "
                "launcher environment); start N ranks with: mpiexec -n N python "
                "examples/train_vgg.py ... --distributed mpi")
        self.pending = []

    def allreduce_mean_async(self, buf):
        if self.size == 1:
            return _Done()
        req = _MPIRequest(self.world.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), buf,
                          1.0 / self.size)
        self.pending.append(req)
        return req

    def allreduce_mean(self, buf):
        if self.size > 1:
            self.world.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            buf *= buf.dtype.type(1.0 / self.size)

    def progress(self):
        live = [p for p in self.pending if not p.done]
        if live:
            self.MPI.Request.Testall([p.req for p in live])
        self.pending = live

    def broadcast(self, buf, root=0):
        if self.size > 1:
            self.world.Bcast(buf, root=root)


class _NCCLRequest:
    def __init__(self, done_event, cp):
        self.done_event, self.cp = done_event, cp

    def wait(self):
        # The compute stream waits for the exchange; the host does not block.
        self.cp.cuda.get_current_stream().wait_event(self.done_event)


class _HostTimer:
    """Seconds the host spent between start and stop (MPI: the host waits)."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def stop(self):
        self.seconds = time.perf_counter() - self.t0

    def ready(self):
        return True

    def result(self):
        return self.seconds


class _StreamTimer:
    """Seconds the current (compute) stream spent between start and stop, on
    the GPU's own clock: CUDA events. Between the two, the stream only waits
    for the exchange, so this is the communication that backward did not
    hide. The host never waits here; reading the result waits for the stop."""

    def __init__(self, cp, device_index):
        self.cp, self.device_index = cp, device_index
        self.start = cp.cuda.Event()
        with cp.cuda.Device(device_index):
            self.start.record()

    def stop(self):
        self.end = self.cp.cuda.Event()
        with self.cp.cuda.Device(self.device_index):
            self.end.record()

    def ready(self):
        """True once the GPU has passed the stop (asks without waiting)."""
        return self.end.done

    def result(self):
        self.end.synchronize()
        return self.cp.cuda.get_elapsed_time(self.start, self.end) / 1e3


class NCCLCommunicator(_HostSide, Communicator):
    """Data parallelism over NCCL: CuPy buffers, one GPU per rank (= local rank).

    Exchanges run on a stream of their own, so an allreduce started during
    backward overlaps with the kernels computing the next gradients.
    """
    kind = "nccl"

    def __init__(self):
        MPI = _import_mpi()
        self._init_world(MPI)
        uid = None
        try:
            import cupy as cp
            from cupy.cuda import nccl
            if not nccl.available:
                raise ImportError("cupy.cuda.nccl is not available (install nvidia-nccl-cu13, or "
                                  "nvidia-nccl-cu12 with cupy-cuda12x)")
            count = cp.cuda.runtime.getDeviceCount()
            # NCCL's own opt-in for several ranks on one GPU (NCCL >= 2.30),
            # used to test two ranks on a machine with one GPU.
            shared = os.environ.get("NCCL_MULTI_RANK_GPU_ENABLE") == "1"
            if self.local_size > count and not shared:
                raise DistributedError(f"{self.local_size} ranks on one node but only {count} "
                                       f"GPU(s): start at most {count} ranks per node")
            self.cp, self.nccl = cp, nccl
            self.device_index = self.local_rank % count
            cp.cuda.Device(self.device_index).use()  # before creating the communicator
            uid = nccl.get_unique_id() if self.rank == 0 else None
            error = None
        except Exception as e:  # noqa: BLE001 - every rank must learn of any failure
            error = f"--distributed nccl: {e}"
        # Every rank learns of any failure so far before the communicator's
        # creation, which is collective: a rank that failed and never joined
        # it would leave the others waiting inside it.
        self._agree(error)
        uid = self.broadcast_object(uid, root=0)
        try:
            self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
            self.stream = cp.cuda.Stream(non_blocking=True)
            error = None
        except Exception as e:  # noqa: BLE001
            error = f"--distributed nccl: creating the NCCL communicator: {e}"
        self._agree(error)
        self._avg = getattr(nccl, "NCCL_AVG", None)  # NCCL >= 2.10

    def _agree(self, error):
        """DistributedError on every rank if ``error`` is set on any."""
        failures = self.gather_errors(error)
        if failures:
            rank, msg = failures[0]
            raise DistributedError(msg if self.size == 1 else f"rank {rank}: {msg}")

    def timer(self):
        return _StreamTimer(self.cp, self.device_index)

    def _dtype(self, buf):
        n = self.nccl
        return {np.dtype(np.float32): n.NCCL_FLOAT32, np.dtype(np.float64): n.NCCL_FLOAT64}[
            np.dtype(buf.dtype)]

    def allreduce_mean_async(self, buf):
        cp = self.cp
        ready = cp.cuda.Event()
        ready.record(cp.cuda.get_current_stream())   # the gradients are computed ...
        self.stream.wait_event(ready)                # ... before NCCL reads them
        op = self._avg if self._avg is not None else self.nccl.NCCL_SUM
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._dtype(buf), op,
                            self.stream.ptr)
        if self._avg is None:
            with self.stream:
                buf *= buf.dtype.type(1.0 / self.size)
        done = cp.cuda.Event()
        done.record(self.stream)
        return _NCCLRequest(done, cp)

    def broadcast(self, buf, root=0):
        self.comm.bcast(buf.data.ptr, buf.size, self._dtype(buf), root,
                        self.cp.cuda.get_current_stream().ptr)

    def close(self):
        self.cp.cuda.get_current_stream().synchronize()
        self.stream.synchronize()
        self.barrier()
        self.comm.destroy()


def init(kind="none", device_kind="cpu"):
    """The communicator for ``--distributed kind`` ('none', 'mpi' or 'nccl')
    on devices of ``device_kind``; DistributedError if it cannot work."""
    if kind in (None, "", "none"):
        return SingleProcess()
    if kind == "mpi":
        if device_kind == "cuda":
            raise DistributedError("--distributed mpi exchanges host (NumPy) buffers; on GPUs use "
                                   "--distributed nccl")
        return MPICommunicator()
    if kind == "nccl":
        if device_kind != "cuda":
            raise DistributedError(f"--distributed nccl averages GPU buffers; it needs --device "
                                   f"cuda, not {device_kind}")
        return NCCLCommunicator()
    raise DistributedError(f"unknown --distributed {kind!r}; expected none, mpi or nccl")
