"""Fault injection for the failure tests (tests/test_failures.py): runs a
minivgg command with faults planted, the way tests/distributed/worker.py
plants a failing rank. Nothing here is imported by minivgg itself.

    python tests/faults.py [--fault SPEC]... -- train|evaluate|classify <arguments>

SPEC is one of:

  memory:STEP           MemoryError inside training step STEP of this process,
                        after its forward pass drew its dropout masks
  memory-update:STEP    MemoryError halfway through the weight update of step STEP
                        (half the parameters updated)
  crash-epoch-end:EPOCH a RuntimeError at the end of training epoch EPOCH of this
                        process, once it is validated, while it is being recorded
  memory-eval           MemoryError in the first forward pass of evaluate/classify
  crash-eval            the same with a RuntimeError (an error that is nobody's fault
                        but minivgg's)
  kill-worker:EPOCH:BATCH[:MARK]
                        the loader worker about to build batch BATCH (1-based) of
                        training epoch EPOCH kills itself with SIGKILL, as the
                        kernel's out-of-memory killer would; with MARK (a file
                        path) only once: the kill creates MARK, and a worker
                        finding it goes on
  eio:NAME[:SKIP]       renaming a finished temporary file onto a file named NAME
                        fails with EIO after SKIP successful ones (default 0)

A file-size limit (the full-disk case) needs no planting: the test sets
RLIMIT_FSIZE on the subprocess.
"""
import argparse
import errno
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def plant_memory_in_step(step):
    from minivgg import functional
    from minivgg.train import Trainer
    state = {"step": 0, "inside": False}
    real_step, real_loss = Trainer.train_step, functional.softmax_cross_entropy

    def train_step(self, x, y):
        state["step"] += 1
        state["inside"] = True
        try:
            return real_step(self, x, y)
        finally:
            state["inside"] = False

    def loss(logits, y, *args, **kwargs):
        if state["inside"] and state["step"] == step:
            raise MemoryError(f"Unable to allocate 96.0 MiB for an array (planted in step {step})")
        return real_loss(logits, y, *args, **kwargs)
    Trainer.train_step = train_step
    functional.softmax_cross_entropy = loss


def plant_memory_in_update(step):
    from minivgg.optim import SGD
    real = SGD._update

    def update(self, p, v, g, grad_scale):
        if self.steps + 1 == step:
            half = p.size // 2
            real(self, p[:half], v[:half], g[:half], grad_scale)
            raise MemoryError(f"planted halfway through the update of step {step}")
        return real(self, p, v, g, grad_scale)
    SGD._update = update


def plant_crash_at_epoch_end(epoch):
    from minivgg.optim import ReduceLROnPlateau
    real = ReduceLROnPlateau.step
    state = {"calls": 0}

    def step(self, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] == epoch:
            raise RuntimeError(f"planted crash at the end of epoch {epoch}")
        return real(self, *args, **kwargs)
    ReduceLROnPlateau.step = step


def plant_in_eval(error):
    from minivgg.evaluate import evalnet, protocols

    def forward(*args, **kwargs):
        raise error
    for module in (evalnet, protocols):   # the modules that run the views through the net
        module._crop_forward = lambda model: forward
        module._dense_forward = lambda model, pool="mean": forward


def plant_worker_kill(epoch, batch, mark=None):
    from minivgg.data import loader
    real = loader._worker_loop

    def worker_loop(dataset, transform, jobs, seed, ep, *rest):
        def jobs_with_fault():
            for pos, indices in jobs:
                if (getattr(dataset, "split", "train") == "train" and ep + 1 == epoch
                        and pos + 1 == batch and _first_time(mark)):
                    os.kill(os.getpid(), signal.SIGKILL)
                yield pos, indices
        return real(dataset, transform, jobs_with_fault(), seed, ep, *rest)
    loader._worker_loop = worker_loop


def _first_time(mark):
    if mark is None:
        return True
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def plant_eio(name, skip=0):
    real = os.replace
    state = {"seen": 0}

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == name:
            state["seen"] += 1
            if state["seen"] > skip:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst, *args, **kwargs)
    os.replace = replace


def plant(spec):
    kind, *args = spec.split(":")
    if kind == "memory":
        plant_memory_in_step(int(args[0]))
    elif kind == "memory-update":
        plant_memory_in_update(int(args[0]))
    elif kind == "crash-epoch-end":
        plant_crash_at_epoch_end(int(args[0]))
    elif kind == "memory-eval":
        plant_in_eval(MemoryError("Unable to allocate 2.0 GiB for an array (planted)"))
    elif kind == "crash-eval":
        plant_in_eval(RuntimeError("planted crash"))
    elif kind == "kill-worker":
        plant_worker_kill(int(args[0]), int(args[1]), ":".join(args[2:]) or None)
    elif kind == "eio":
        plant_eio(args[0], int(args[1]) if len(args) > 1 else 0)
    else:
        raise SystemExit(f"unknown fault {spec!r}")


def main():
    argv = sys.argv[1:]
    split = argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--fault", action="append", default=[])
    for spec in p.parse_args(argv[:split]).fault:
        plant(spec)
    from minivgg.__main__ import main as minivgg_main
    return minivgg_main(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
