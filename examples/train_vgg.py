#!/usr/bin/env python
"""Train a VGG configuration with the paper's recipe (§3.1).

    python examples/train_vgg.py --help

The program is minivgg/cli/train.py (its docstring explains every option); it
is also installed as the `minivgg-train` command and runs as
`python -m minivgg train`. This file runs it from a checkout, installed or not.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivgg.cli.train import *  # noqa: E402,F401,F403  (the program's functions, for tests)
from minivgg.cli.train import console  # noqa: E402

if __name__ == "__main__":
    sys.exit(console())
