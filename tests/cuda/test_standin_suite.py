"""The GPU tests of the suite (tests/cuda and tests/distributed: those that
take the ``gpu`` fixture or are marked ``needs_gpu``, which skip elsewhere),
run against the CuPy stand-in with two devices (tests/standin), and the
stand-in's runner starting a script: ``train_vgg.py --device cuda:1`` gives
the CPU run's weights. docs/gpu.md says what this proves and what only a
real GPU can."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "tests", "standin", "run.py")


def environ(devices):
    """tests/standin/run.py's environment (loaded from its file: putting
    tests/standin on this process's sys.path would make ``import cupy``
    here find the stand-in)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("minivgg_standin_run", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return run.environ(devices)


def needs_g_plus_plus_and_mpi():
    import shutil
    if shutil.which("g++") is None:
        pytest.skip("the stand-in runs kernels on the emulator, which needs g++")
    pytest.importorskip("mpi4py", reason="the stand-in's NCCL needs mpi4py; "
                                         "pip install -e \".[dist]\"")


def test_the_gpu_tests_pass_on_the_stand_in(tmp_path):
    needs_g_plus_plus_and_mpi()
    env = environ(2)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    res = subprocess.run([sys.executable, RUN, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--gpu-only", "-rfEs", f"--basetemp={tmp_path / 'inner'}",
                          "tests/cuda", "tests/distributed"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    last = res.stdout.strip().splitlines()[-1]
    passed = int(last.split(" passed")[0].split()[-1])
    # Every GPU test ran: none skipped, and there are as many as collected.
    assert "skipped" not in last, out[-4000:]
    assert passed >= 120, last


def test_the_runner_trains_on_cuda_1_like_the_cpu(tmp_path):
    needs_g_plus_plus_and_mpi()
    common = ["--cfg", "A", "--max-steps", "3", "--width-mult", "0.125", "--train-size", "96",
              "--val-size", "16", "--batch-size", "32", "--no-progress"]
    out = {}
    for dev in ("cpu", "cuda:1"):
        out[dev] = tmp_path / dev.replace(":", "-")
        res = subprocess.run([sys.executable, RUN, "--devices", "2", "examples/train_vgg.py",
                              *common, "--device", dev, "--out", str(out[dev])],
                             cwd=ROOT, env=environ(2), capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        if dev != "cpu":
            assert "| cuda:1," in res.stdout
    with np.load(out["cpu"] / "last.npz") as a, np.load(out["cuda:1"] / "last.npz") as b:
        keys = [k for k in a.files if k.startswith("model/")]
        assert len(keys) == 22
        for k in keys:
            assert np.abs(a[k] - b[k]).max() <= 1e-4 * max(np.abs(a[k]).max(), 1e-30), k


def test_the_runner_says_how_to_use_it():
    res = subprocess.run([sys.executable, RUN], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "tests/standin/run.py" in res.stderr
