"""CUDA C sources of the GPU backend, installed as ``minivgg.kernels``.

``KERNEL_DIR`` is the folder holding the ``*.cu`` files; ``minivgg/cuda``
compiles them with ``cupy.RawModule``.
"""
import os

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
