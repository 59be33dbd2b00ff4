"""The kernels of a ``cuda`` device: ``kernels/*.cu`` compiled by NVRTC through
``cupy.RawModule`` and launched on CuPy arrays.

One RawModule per op family (``.cu`` file) and GPU, compiled the first time
one of its kernels is needed; CuPy caches the compiled code per device in
memory and on disk (keyed by the source text and options, so an edited
``.cu`` file recompiles by itself). Each entry point (one per dtype) is
looked up once and kept: kernels are cached per device and dtype.
"""
from .launch import KernelLibrary
from .source import source

#: Options minivgg gives cupy.RawModule for every .cu file.
NVRTC_OPTIONS = ("--std=c++17",)
#: What CuPy adds to every RawModule compile besides the architecture and
#: include paths: single-precision denormals flushed to zero, and functions
#: without an execution-space qualifier compiled for the device. NVRTC also
#: contracts a*b+c into fused multiply-adds by default. The compile-only
#: checks (minivgg/cuda/nvrtc.py) use both tuples, and tests/cuda/test_nvrtc.py
#: checks them against the options the installed CuPy really passes.
CUPY_ADDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


class CupyKernels(KernelLibrary):

    def __init__(self, device):
        super().__init__(device)
        self.cp = device.xp
        self._modules, self._functions = {}, {}

    def function(self, sig):
        fn = self._functions.get(sig.name)
        if fn is None:
            with self.cp.cuda.Device(self.device.index):
                mod = self._modules.get(sig.family)
                if mod is None:
                    mod = self._modules[sig.family] = self.cp.RawModule(
                        code=source(sig.family), options=NVRTC_OPTIONS)
                fn = self._functions[sig.name] = mod.get_function(sig.name)
        return fn

    def _launch(self, sig, grid, block, args):
        fn = self.function(sig)
        self.device.note_launch(sig.name)
        with self.cp.cuda.Device(self.device.index):
            fn((grid,), (block,), args)
