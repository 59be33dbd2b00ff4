"""The kernel tests again, with the emulator built under AddressSanitizer and
UBSan: an out-of-range index or an integer overflow in any kernel stops the
run with a report. Runs in a subprocess because the ASan runtime must be
loaded before the Python interpreter starts; that process sees no GPU
(CUDA_VISIBLE_DEVICES empty): CUDA's first device allocation fails under
ASan, and the kernels under test here are the emulator's anyway. Its time
limit leaves room in scripts/gpu_check.sh's sanitizer stage (240 s)."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def sanitized_env():
    if shutil.which("g++") is None:
        pytest.skip("the emu device needs g++ (apt install g++)")
    asan = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    if not os.path.isabs(asan) or not os.path.exists(asan):
        pytest.skip("g++ has no AddressSanitizer runtime (libasan.so); install libasan")
    env = dict(os.environ, LD_PRELOAD=asan, MINIVGG_EMU_SANITIZE="1", CUDA_VISIBLE_DEVICES="",
               # protect_shadow_gap=0: should CUDA load anyway, its first allocation works.
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:protect_shadow_gap=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def test_every_kernel_passes_its_tests_under_asan_and_ubsan():
    res = subprocess.run([sys.executable, "-m", "pytest", "-v", "-x", "-p", "no:cacheprovider",
                          os.path.join(HERE, "test_kernels.py")],
                         cwd=ROOT, env=sanitized_env(), capture_output=True, text=True,
                         timeout=200)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert " passed" in res.stdout
    # The GPU stays hidden from the sanitized process: its tests skip there.
    assert not re.search(r"\[.*cuda.*\] PASSED", res.stdout)


def test_the_sanitized_build_really_catches_an_out_of_range_index():
    # Launch relu_fwd over one element more than the arrays hold: the
    # argument checks cannot see sizes, the sanitizer must.
    code = textwrap.dedent("""
        import numpy as np
        from minivgg.backend import device
        emu = device("emu")
        x = np.ones(1000, np.float32)
        y = np.empty(1000, np.float32)
        emu.kernels.launch("relu_fwd", np.float32, 1001, y, x, np.int64(1001))
        print("not caught")
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=sanitized_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in res.stderr
    assert "activation.cu" in res.stderr  # the report points into the kernel source
