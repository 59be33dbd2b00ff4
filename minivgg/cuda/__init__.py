"""Running ``kernels/*.cu``: on a GPU through CuPy, or on the CPU through the
emulator. ``minivgg.cuda.ops`` holds the op code that both share.

    source.py        the .cu files and their parsed kernel signatures
    launch.py        the one launch path: argument checks against the signature, grid size
    cupy_kernels.py  cuda devices: NVRTC via cupy.RawModule
    emulator.py      the emu device: g++ + a header emulating CUDA's built-ins, via ctypes
    nvrtc.py         compile-only checks (registers, spills) that need no GPU
    ops.py           what each op launches, with which grid, arguments and outputs
"""
from .launch import BLOCK, KernelArgumentError, KernelLibrary

__all__ = ["BLOCK", "KernelArgumentError", "KernelLibrary", "kernel_library"]


def kernel_library(device):
    """The KernelLibrary for a cuda or emu Device."""
    if device.kind == "cuda":
        from .cupy_kernels import CupyKernels
        return CupyKernels(device)
    if device.kind == "emu":
        from .emulator import EmulatedKernels
        return EmulatedKernels(device)
    raise ValueError(f"device {device} runs no kernels")
