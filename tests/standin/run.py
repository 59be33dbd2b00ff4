"""Run a Python program with the CuPy stand-in in place of CuPy:

    python tests/standin/run.py [--devices N] examples/train_vgg.py --device cuda:1 ...
    python tests/standin/run.py -m pytest tests/cuda --gpu-only

The stand-in (tests/standin/cupy) goes first on sys.path, here and in every
process the program starts (through PYTHONPATH), so ``import cupy`` finds it;
``CUPY_STANDIN_DEVICES`` (``--devices``, default 2) says how many devices it
has. See docs/gpu.md for what a program passing under it shows.
"""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def environ(devices=2, base=None):
    """An environment that puts the stand-in (and this checkout) first."""
    env = dict(os.environ if base is None else base)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in (HERE, ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([HERE, ROOT] + rest)
    env["CUPY_STANDIN_DEVICES"] = str(devices)
    return env


def main(argv):
    devices = int(os.environ.get("CUPY_STANDIN_DEVICES", "2"))
    if argv[:1] == ["--devices"]:
        devices, argv = int(argv[1]), argv[2:]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    os.environ.update(environ(devices))
    sys.path[:0] = [HERE, ROOT]
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
