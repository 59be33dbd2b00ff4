"""Synchronous data parallelism (§3.3): several processes, each with a slice
of every batch, averaging their gradients before each update.

    comm.py   communicators: single process, MPI (CPU), NCCL (GPU)
    sync.py   gradient averaging in buckets, overlapped with backward

The trainer (``minivgg.train.Trainer``) takes a communicator; see
docs/distributed.md for launching, the scaling model and measurements.
"""
from .comm import (Communicator, DistributedError, MPICommunicator, NCCLCommunicator,  # noqa
                   SingleProcess, env_rank, init, launched_by_mpiexec)
from .sync import GradientSync  # noqa: F401
