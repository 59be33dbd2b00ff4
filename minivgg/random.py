"""The library's random number generators (dropout masks, §2.1/§3.1).

One NumPy ``Generator`` for the CPU and, when CuPy is present, one CuPy
generator per process. ``manual_seed`` reseeds both; ``get_state`` and
``set_state`` give a JSON-serialisable snapshot for exact resume.
"""
import numpy as np

from .backend import _cupy

_np_rng = np.random.default_rng()
_cp_rng = None


def manual_seed(seed):
    """Reseed the library's generators (NumPy, and CuPy when available)."""
    global _np_rng, _cp_rng
    _np_rng = np.random.default_rng(seed)
    _cp_rng = None
    if _cupy is not None:  # pragma: no cover - GPU
        try:
            _cp_rng = _cupy.random.default_rng(seed)
        except Exception:
            _cp_rng = None


def get_rng(xp=np):
    """The generator for backend ``xp`` (numpy or cupy)."""
    global _cp_rng
    if xp is np:
        return _np_rng
    if _cp_rng is None:  # pragma: no cover - GPU
        _cp_rng = xp.random.default_rng(int(_np_rng.integers(2**63)))
    return _cp_rng  # pragma: no cover - GPU


def get_state():
    """JSON-serialisable state of the NumPy generator."""
    return _np_rng.bit_generator.state


def set_state(state):
    global _np_rng
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    _np_rng = np.random.Generator(bitgen)
