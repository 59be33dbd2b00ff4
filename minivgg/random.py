"""Random numbers for dropout (§3.1: "dropout regularisation for the first two
fully-connected layers"), identical on every device.

Dropout does not draw from a stateful generator. Each call of a dropout
layer takes the next *stream* number from the library's counter, and the
keep/drop decision for element ``i`` is a pure function of
(seed, stream, i): a counter-based hash. The same function is written once
in NumPy (``uniform24`` below) and once in CUDA (``kernels/activation.cu``),
so masks are bit-identical on the CPU, on a GPU and on the emulated
device; backward recomputes the mask instead of storing it; and the whole
random state is two integers, which a checkpoint stores for an exact resume.

The hash is SplitMix64's output function: stream key
``k = mix(mix(seed + G) + stream * G)`` and element value
``mix(k + (i + 1) * G)`` with ``G = 0x9E3779B97F4A7C15``; the top 24 bits
make a uniform integer in [0, 2^24), compared with ``round(p * 2^24)``.
"""
import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
UNIFORM_BITS = 24

_seed = 0
_counter = 0


def _mix_int(z):
    """SplitMix64's finaliser on a Python int (wrapping at 64 bits)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _mix_array(z):
    """The same finaliser on a uint64 array (NumPy wraps array arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def stream_key(seed, stream):
    """The 64-bit key of dropout call number ``stream`` under ``seed``."""
    return _mix_int(_mix_int(seed + GOLDEN) + stream * GOLDEN)


def uniform24(key, n, start=0):
    """Integers in [0, 2^24) for elements start..start+n-1 of a stream with
    ``key`` (any slice of the stream is computed on its own: threads may
    share one)."""
    i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    z = i * np.uint64(GOLDEN)
    z += np.uint64(key)
    return _mix_array(z) >> np.uint64(64 - UNIFORM_BITS)


def drop_threshold(p):
    """round(p * 2^24): an element is kept when its uniform24 value is >= this."""
    return int(round(p * (1 << UNIFORM_BITS)))


def manual_seed(seed, counter=0):
    """Reseed dropout: streams restart from ``counter`` (0) under ``seed``."""
    global _seed, _counter
    _seed, _counter = int(seed) & MASK64, int(counter)


def rank_seed(seed, rank):
    """The dropout seed of ``rank`` in a data-parallel run: ``seed`` itself for
    rank 0 (so one rank repeats the single-process run), a hash of (seed,
    rank) for the others, so that their masks are independent."""
    return int(seed) & MASK64 if rank == 0 else _mix_int(_mix_int(seed) + rank * GOLDEN)


def next_stream():
    """(seed, stream) for the next dropout call; advances the counter."""
    global _counter
    s = (_seed, _counter)
    _counter += 1
    return s


def get_state():
    """JSON-serialisable state: the seed and the number of streams used."""
    return {"kind": "dropout-hash", "seed": _seed, "counter": _counter}


def set_state(state):
    """Restore a state from ``get_state`` (for an exact resume)."""
    global _seed, _counter
    if state.get("kind") != "dropout-hash":
        raise ValueError("this random state was written by an older minivgg (a NumPy generator "
                         "state); it cannot be resumed exactly. Start the run again or use "
                         "--init-from to keep its weights")
    _seed, _counter = int(state["seed"]) & MASK64, int(state["counter"])


manual_seed(np.random.SeedSequence().entropy)
