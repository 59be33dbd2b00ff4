"""The emulator's GPU arithmetic (MINIVGG_EMU_GPU_MATH=1, and every kernel
the CuPy stand-in runs): a*b+c contracted into one fused multiply-add as
NVRTC does by default, and float32 denormals flushed to zero as CuPy's
-ftz=true makes them. Each is shown on values where it changes the result,
against the plain build that computes as NumPy does."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minivgg.cuda.emulator import EmulatedKernels


@pytest.fixture(scope="module")
def builds(emu):
    return {"plain": EmulatedKernels(emu, gpu_math=False),
            "gpu": EmulatedKernels(emu, gpu_math=True)}


def sgd(kernels, p, v, g, lr, dtype):
    p, v, g = (np.array(a, dtype) for a in (p, v, g))
    t = np.dtype(dtype).type
    kernels.launch("sgd_step", dtype, p.size, p, v, g, np.int64(p.size), t(lr), t(0), t(0),
                   t(1))
    return p


def test_gpu_math_fuses_the_update_into_one_rounding(builds):
    # p - lr * g with lr = g = 1 + 2^-12: the product needs 25 bits, so
    # rounding it first (NumPy, the plain build) loses the 2^-24 that a fused
    # multiply-add keeps.
    x = 1 + 2.0 ** -12
    p = np.float32(1 + 2.0 ** -11)
    two_roundings = np.float32(p - np.float32(np.float32(x) * np.float32(x)))
    fused = np.float32(np.float64(p) - np.float64(x) * np.float64(x))
    assert two_roundings == 0 and fused == np.float32(-2.0 ** -24)
    assert sgd(builds["plain"], [p], [0], [x], x, np.float32)[0] == two_roundings
    assert sgd(builds["gpu"], [p], [0], [x], x, np.float32)[0] == fused


def test_gpu_math_flushes_float32_denormals_only(builds):
    tiny32 = np.float32(1e-39)           # below float32's smallest normal, 1.18e-38
    assert sgd(builds["plain"], [tiny32], [0], [1], 0.0, np.float32)[0] == tiny32
    assert sgd(builds["gpu"], [tiny32], [0], [1], 0.0, np.float32)[0] == 0
    tiny64 = 1e-310                      # float64 denormals are kept on the GPU too
    assert sgd(builds["gpu"], [tiny64], [0], [1], 0.0, np.float64)[0] == tiny64


def test_the_flush_does_not_leak_out_of_the_launch(builds):
    sgd(builds["gpu"], [1.0], [0], [1], 0.0, np.float32)
    # NumPy in this thread still sees float32 denormals.
    assert np.float32(1e-39) * np.float32(1) != 0


def test_the_kernel_tests_hold_with_gpu_arithmetic(emu):
    # The emu tolerances of test_kernels.py (float32: 2e-6, a tenth of the
    # GPU's) met with the GPU's arithmetic, not only with NumPy's.
    here = os.path.dirname(os.path.abspath(__file__))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-k", "emu", os.path.join(here, "test_kernels.py")],
                         cwd=os.path.dirname(os.path.dirname(here)), capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, MINIVGG_EMU_GPU_MATH="1"))
    assert res.returncode == 0, res.stdout[-4000:]
    assert " passed" in res.stdout and "failed" not in res.stdout
