#!/usr/bin/env python
"""Write a model to .safetensors, .pth, .npz or ONNX.

    python examples/export.py --help

The program is minivgg/cli/export.py (its docstring explains every option); it
is also installed as the `minivgg-export` command and runs as
`python -m minivgg export`. This file runs it from a checkout, installed or not.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivgg.cli.export import *  # noqa: E402,F401,F403  (the program's functions, for tests)
from minivgg.cli.export import console  # noqa: E402

if __name__ == "__main__":
    sys.exit(console())
