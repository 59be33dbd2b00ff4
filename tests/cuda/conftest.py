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


@pytest.fixture
def check_exact_resume(tmp_path):
    """check(device): 2 epochs straight == 1 epoch, resume, 1 more, bit for bit
    (weights and momentum), with dropout on, on ``device``."""
    import numpy as np

    from minivgg.train import Recipe, Trainer

    def recipe(out, dev, epochs):
        return Recipe(cfg="A", data="synthetic", image_size=32, train_size=24, val_size=8,
                      crop=32, scale="32:36", batch_size=8, epochs=epochs, width_mult=0.125,
                      fc_width=16, lr=0.02, dropout=0.5, init="glorot", out=str(out),
                      progress=False, seed=3, device=str(dev))

    def check(dev):
        quiet = dict(log=lambda *_: None)
        straight = Trainer(recipe(tmp_path / "s", dev, 2), **quiet)
        straight.run()
        Trainer(recipe(tmp_path / "r", dev, 1), **quiet).run()
        resumed = Trainer(recipe(tmp_path / "r", dev, 2), resume=str(tmp_path / "r"), **quiet)
        resumed.run()
        assert resumed.model.device == dev
        a, b = straight.model.state_dict(), resumed.model.state_dict()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        va = straight.optimizer.state_dict()["velocity"]
        vb = resumed.optimizer.state_dict()["velocity"]
        for x, y in zip(va, vb):
            np.testing.assert_array_equal(x, y)
        return straight

    return check


@pytest.fixture
def train_vgg_weights(tmp_path):
    """run(device): the weights after 3 steps of examples/train_vgg.py (a tiny
    VGG-A, batch 32) on ``device``, as {name: array}."""
    import os
    import subprocess
    import sys

    import numpy as np
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def run(dev):
        out = tmp_path / str(dev).replace(":", "-")
        res = subprocess.run(
            [sys.executable, os.path.join(root, "examples", "train_vgg.py"), "--cfg", "A",
             "--device", str(dev), "--max-steps", "3", "--width-mult", "0.125", "--train-size",
             "256", "--val-size", "32", "--batch-size", "32", "--no-progress", "--out", str(out)],
            cwd=root, capture_output=True, text=True, timeout=600,
            env=dict(os.environ, PYTHONPATH=root))
        assert res.returncode == 0, res.stderr[-3000:]
        with np.load(out / "last.npz") as z:
            return {k: z[k] for k in z.files if k.startswith("model/")}
    return run
