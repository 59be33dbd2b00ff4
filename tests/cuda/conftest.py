"""Fixtures for the GPU-backend tests.

``emu``: the emulated CUDA device (needs g++; CI installs it). ``gpu``: a
real cuda device; tests that take it are the only ones allowed to skip in CI,
and their skip reason starts with "needs a GPU".
"""
import shutil

import pytest

from minivgg.backend import DeviceError, device


@pytest.fixture(scope="session")
def emu():
    if shutil.which("g++") is None:
        pytest.skip("the emu device needs g++ (apt install g++)")
    return device("emu")


@pytest.fixture(scope="session")
def gpu():
    try:
        return device("cuda")
    except DeviceError as e:
        pytest.skip(f"needs a GPU: {str(e)[:120]}")


def pytest_terminal_summary(terminalreporter):
    """Print the register use of every kernel when the NVRTC test ran."""
    try:
        from test_nvrtc import RESOURCES
    except ImportError:
        return
    if RESOURCES:
        from minivgg.cuda.nvrtc import format_table
        terminalreporter.section("CUDA kernel resources (NVRTC, ptxas -v)")
        terminalreporter.write_line(format_table(sorted(RESOURCES, key=lambda r: (r.name, r.arch))))
