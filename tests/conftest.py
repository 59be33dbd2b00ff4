"""Shared test helpers and the suite's skip policy.

Tests generate their own data; none reads files outside the repository.

Skip policy (docs/testing.md): every skip is printed with its reason
(``-rfEs`` in pytest.ini). Under ``MINIVGG_CI=1`` (set by ``.ci/run``) a skip
fails the run unless its reason starts with ``needs a GPU``: CI installs
every optional dependency (PyTorch, matplotlib, and whatever later tests
need: MPI, NVRTC, CuPy, a C++ compiler), so a test that skips there is a
test that silently stopped checking anything. Only a real GPU cannot be
installed. Mark such tests ``@pytest.mark.needs_gpu`` (they are skipped with
that reason when no GPU is visible) or skip them with a reason that starts
with ``needs a GPU``.
"""
import os

import numpy as np
import pytest

#: The environment variable that turns skips into failures (.ci/run sets it).
CI_ENV = "MINIVGG_CI"
#: The only skip reason allowed under MINIVGG_CI=1.
GPU_SKIP_PREFIX = "needs a GPU"

_disallowed_skips = []  # (test id, reason) of skips that CI does not allow


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def torch_or_skip():
    """Import torch, or skip the test with the reason."""
    return pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                                               "pip install torch==2.13.0")


def gpu_available():
    """True when CuPy imports and sees a CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def in_ci():
    return os.environ.get(CI_ENV, "") not in ("", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"needs_gpu: the test needs a CUDA GPU; skipped with the reason "
                   f"'{GPU_SKIP_PREFIX} ...' when none is visible (the one skip CI allows)")


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("needs_gpu")]
    if marked and not gpu_available():
        skip = pytest.mark.skip(reason=f"{GPU_SKIP_PREFIX}: CuPy sees no CUDA device")
        for item in marked:
            item.add_marker(skip)


def _skip_reason(report):
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr
    reason = str(reason)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _note_skip(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not reason.startswith(GPU_SKIP_PREFIX):
            _disallowed_skips.append((report.nodeid, reason))


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_collectreport(report):
    _note_skip(report)  # a module-level importorskip skips the whole file here


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and _disallowed_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if in_ci() and _disallowed_skips:
        terminalreporter.section(f"skips not allowed under {CI_ENV}=1", sep="=", red=True)
        for nodeid, reason in _disallowed_skips:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.line(f"only reasons starting with '{GPU_SKIP_PREFIX}' may skip in CI; "
                              f"install the missing dependency instead")
