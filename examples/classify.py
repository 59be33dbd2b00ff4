#!/usr/bin/env python
"""Classify images with a VGG and print the top-5 classes with their probabilities.

    python examples/classify.py --help

The program is minivgg/cli/classify.py (its docstring explains every option); it
is also installed as the `minivgg-classify` command and runs as
`python -m minivgg classify`. This file runs it from a checkout, installed or not.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minivgg.cli.classify import *  # noqa: E402,F401,F403  (the program's functions, for tests)
from minivgg.cli.classify import console  # noqa: E402

if __name__ == "__main__":
    sys.exit(console())
