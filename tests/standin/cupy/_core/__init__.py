"""cupy._core of the stand-in: only what minivgg reaches into."""
from . import _routines_linalg  # noqa: F401
