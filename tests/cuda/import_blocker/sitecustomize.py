"""Started with this folder on PYTHONPATH, Python behaves as if the modules
named in MINIVGG_BLOCK_IMPORTS (comma-separated top-level names) were not
installed, except where found in the folders of MINIVGG_BLOCK_ALLOW
(os.pathsep-separated): a bare GPU machine, and what an offline install
into such a folder gives it back (tests/cuda/test_gpu_scripts.py)."""
import importlib.machinery
import os
import sys

_BLOCKED = {n.strip() for n in os.environ.get("MINIVGG_BLOCK_IMPORTS", "").split(",") if n.strip()}
_ALLOW = [p for p in os.environ.get("MINIVGG_BLOCK_ALLOW", "").split(os.pathsep) if p]


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name not in _BLOCKED:
            return None  # submodules follow their package, wherever it came from
        spec = importlib.machinery.PathFinder.find_spec(name, _ALLOW) if _ALLOW else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named '{name}' (blocked for this test)",
                                      name=name)
        return spec


if _BLOCKED:
    sys.meta_path.insert(0, _Blocker())
