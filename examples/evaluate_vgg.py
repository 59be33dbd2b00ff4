#!/usr/bin/env python
"""Evaluate trained VGG checkpoints with the paper's test protocols (§3.2, §4).

    python examples/evaluate_vgg.py --help

The program is minivgg/cli/evaluate.py (its docstring explains every option); it
is also installed as the `minivgg-evaluate` command and runs as
`python -m minivgg evaluate`. This file runs it from a checkout, installed or not.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivgg.cli.evaluate import *  # noqa: E402,F401,F403  (the program's functions, for tests)
from minivgg.cli.evaluate import console  # noqa: E402

if __name__ == "__main__":
    sys.exit(console())
