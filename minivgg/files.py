"""Writing a file so that a failure leaves the old one whole: the rule every
output of minivgg follows (checkpoints, weights, the run folder's logs,
plots, ONNX models)."""
import contextlib
import os
import tempfile

from .failures import writing


def atomic_write(path, write, suffix=".npz", by_name=False):
    """Call ``write(f)`` on a temporary file beside ``path`` (``write(name)``
    with ``by_name``, for writers that open the file themselves), flush it to
    disk, then rename it over ``path``; on any error remove it and re-raise, so
    ``path`` is either the old file or the complete new one. Returns ``path``.
    An OSError (a full disk...) is raised as a ``failures.WriteError`` naming
    ``path``."""
    with writing(path):
        return _write_then_rename(path, write, suffix, by_name)


def _write_then_rename(path, write, suffix, by_name):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    try:
        # mkstemp makes the file private (0600); give it the mode any new file
        # gets under the user's umask, as open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        if by_name:
            os.close(fd)
            write(tmp)
            # The writer may have replaced the file (safetensors does, with 0600).
            os.chmod(tmp, 0o666 & ~_umask())
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a failing disk must not hide the first error
            os.unlink(tmp)
        raise
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
