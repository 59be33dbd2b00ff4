"""cupy.cuda.memory of the stand-in: the pool's counters and OutOfMemoryError."""
from .. import _standin


class OutOfMemoryError(MemoryError):
    def __init__(self, size, total, limit=0):
        self._size, self._total, self._limit = size, total, limit
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


class MemoryPool:
    """Counters of the current device's allocations, as CuPy's pool keeps them
    (sizes rounded up to 512 bytes; freed blocks stay in the pool until
    free_all_blocks)."""

    def used_bytes(self):
        return _standin.device_state().used

    def free_bytes(self):
        return sum(_standin.device_state().free_blocks)

    def total_bytes(self):
        return self.used_bytes() + self.free_bytes()

    def n_free_blocks(self):
        return len(_standin.device_state().free_blocks)

    def free_all_blocks(self, stream=None):
        _standin.device_state().free_blocks.clear()

    def set_limit(self, size=None, fraction=None):
        _standin.device_state().limit = int(size or 0)

    def get_limit(self):
        return _standin.device_state().limit


_POOL = MemoryPool()


def get_default_memory_pool():
    return _POOL
