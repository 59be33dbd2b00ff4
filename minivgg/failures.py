"""When a command fails: one line, a non-zero exit status, the last consistent
state kept.

The paper's nets trained for two to three weeks each (§3.3). A run that long
meets failures that have nothing to do with the recipe: the disk fills up
while a checkpoint is written, the kernel kills a data-loading worker when
memory runs short, a step needs more memory than the machine has. Every
command (train, evaluate, classify) reports such a failure the same way:

- one line on stderr, ``error: <what failed>; <what was kept>; <what to do>``,
  without a traceback (``--debug`` prints it first);
- exit status 1 (2 stays for a request that is wrong before any work, 130
  for an interruption);
- training keeps its last good checkpoint, and where the failure leaves the
  state of the last completed step intact (a worker died, memory ran out
  during a step, an unreadable image under ``--strict``) it saves that state
  as a SIGTERM does, so ``--resume`` continues with the same batches.

What a failure during training saves is decided in
minivgg/train/failures.py; docs/training.md, "When things fail", lists
each case.
"""
import contextlib
import errno
import os
import sys
import traceback

#: What an errno means for a file being written, and what to do about it.
_WRITE_REASONS = {
    errno.ENOSPC: ("no space is left on the device", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.EFBIG: ("the file grew past the largest size allowed (ulimit -f, or the file "
                  "system's limit)", "raise that limit or write to another file system"),
    errno.EIO: ("an input/output error (a failing disk, or a network file system that went "
                "away)", "check the disk"),
    errno.EROFS: ("the file system is read-only", "write to another folder"),
    errno.EACCES: ("permission denied", "make the folder writable or write to another one"),
    errno.EPERM: ("permission denied", "make the folder writable or write to another one"),
}


class WriteError(OSError):
    """Writing ``filename`` failed (its ``errno`` and ``strerror`` are the
    original error's). Raised by ``writing``; the file is the one meant, not
    the temporary file an atomic write was filling."""


class RunFailed(RuntimeError):
    """A failure already told in one line; ``status`` is the exit status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def writing(path):
    """Turn an OSError raised while writing ``path`` into a WriteError naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(e.errno, e.strerror or str(e), os.fspath(path)) from e


def write_reason(e):
    """(what happened, what to do) for a failed write ``e``."""
    reason, todo = _WRITE_REASONS.get(e.errno, (e.strerror or str(e), None))
    return f"{reason} [{errno.errorcode.get(e.errno, e.errno)}]", todo


def _first_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines) if len(lines) <= 3 else lines[0]


def describe(e):
    """(what failed, what to do or None), each one phrase, for any exception."""
    if isinstance(e, RunFailed):
        return str(e), None
    if isinstance(e, WriteError):
        reason, todo = write_reason(e)
        return f"could not write {e.filename}: {reason}", todo
    if isinstance(e, MemoryError):
        detail = _first_line(e)
        return "out of memory" + (f" ({detail})" if detail else ""), "free some memory"
    if isinstance(e, OSError) and e.filename:
        return f"could not read {e.filename}: {e.strerror or e}", None
    if isinstance(e, OSError) and e.errno == errno.EIO:
        return f"an input/output error ({e})", "check the disk"
    text = _first_line(e)
    return f"{type(e).__name__}" + (f": {text}" if text else ""), None


def unexpected(e):
    """True for an error that says more about minivgg than about the machine
    or the data (a bug, most likely): its message points to --debug."""
    from .data.loader import WorkerDied
    return not isinstance(e, (RunFailed, OSError, MemoryError, ValueError, WorkerDied))


def message(e, memory_advice=None, debug=False):
    """The one line (without 'error: ') that reports ``e``."""
    what, todo = describe(e)
    if isinstance(e, MemoryError) and memory_advice:
        todo = memory_advice
    parts = [what] + ([todo] if todo else [])
    cause = e.__cause__ if isinstance(e, RunFailed) else e
    if cause is not None and unexpected(cause) and not debug:
        parts.append("run again with --debug to see where it failed")
    return "; ".join(parts)


def report(e, debug=False, memory_advice=None, prefix=""):
    """Print ``e`` as one line on stderr (its traceback first with ``debug``);
    return the exit status (``e.status``, else 1)."""
    if debug:
        traceback.print_exception(e, file=sys.stderr)
    print(f"{prefix}error: {message(e, memory_advice, debug)}", file=sys.stderr, flush=True)
    return getattr(e, "status", 1)


def run_command(fn, debug=False, memory_advice=None):
    """``fn()`` under the one-line rule: exit status 0, or that of the
    failure it raised (reported by ``report``), 130 for Ctrl-C. SystemExit
    passes (argparse errors, an interruption already reported)."""
    try:
        fn()
        return 0
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        return report(e, debug, memory_advice)


def add_debug_flag(parser):
    """``--debug``: the traceback of a failure, before its one-line message."""
    parser.add_argument("--debug", action="store_true",
                        help="on a failure, print the traceback before the one-line message")
