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
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

#: The environment variable that turns skips into failures (.ci/run sets it).
CI_ENV = "MINIVGG_CI"
#: The only skip reason allowed under MINIVGG_CI=1.
GPU_SKIP_PREFIX = "needs a GPU"

_disallowed_skips = []  # (test id, reason) of skips that CI does not allow

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# The shared check modules (kinks.py, conv_checks.py, ...) live beside this
# file; tests in subfolders import them too, whatever order pytest collects in.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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


def pytest_addoption(parser):
    parser.addoption("--gpu-only", action="store_true",
                     help="run only the tests of the cuda device (those taking the gpu "
                          "fixture or marked needs_gpu): on a GPU machine, or under the CuPy "
                          "stand-in (tests/standin/run.py -m pytest --gpu-only)")
    parser.addoption("--no-gpu", action="store_true",
                     help="run every test but those of the cuda device (scripts/gpu_check.sh "
                          "runs them first, with --gpu-only)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"needs_gpu: the test needs a CUDA GPU; skipped with the reason "
                   f"'{GPU_SKIP_PREFIX} ...' when none is visible (the one skip CI allows)")


def is_gpu_test(item):
    return item.get_closest_marker("needs_gpu") is not None or "gpu" in item.fixturenames


def pytest_collection_modifyitems(config, items):
    for option, wanted in (("--gpu-only", True), ("--no-gpu", False)):
        if config.getoption(option):
            keep = [item for item in items if is_gpu_test(item) == wanted]
            config.hook.pytest_deselected(items=[item for item in items
                                                 if is_gpu_test(item) != wanted])
            items[:] = keep
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
    nvrtc_test = sys.modules.get("test_nvrtc")  # tests/cuda/test_nvrtc.py, if it ran
    if nvrtc_test is not None and nvrtc_test.RESOURCES:
        from minivgg.cuda.nvrtc import format_table
        terminalreporter.section("CUDA kernel resources (NVRTC, ptxas -v)")
        rows = sorted(nvrtc_test.RESOURCES, key=lambda r: (r.name, r.arch))
        terminalreporter.write_line(format_table(rows))
    if in_ci() and _disallowed_skips:
        terminalreporter.section(f"skips not allowed under {CI_ENV}=1", sep="=", red=True)
        for nodeid, reason in _disallowed_skips:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.line(f"only reasons starting with '{GPU_SKIP_PREFIX}' may skip in CI; "
                              f"install the missing dependency instead")


def load_example(name, folder="examples"):
    """Import <folder>/<name>.py as a module (an example's main(argv) runs
    the command; benchmarks/ and scripts/ load the same way)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, folder, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def safetensors_or_skip():
    """Import safetensors.numpy, or skip the test with the reason."""
    return pytest.importorskip("safetensors.numpy", reason="the safetensors package is not "
                                                           "installed; pip install safetensors")


def onnx_or_skip():
    """Import onnx and onnxruntime, or skip the test with the reason."""
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed; "
                                              "pip install onnx onnxruntime")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the ONNX oracle) is not "
                                                    "installed; pip install onnxruntime")
    return onnx, ort


def photo(h, w, seed=0):
    """A real-looking (H, W, 3) uint8 image: a smooth two-colour gradient, a few
    blurred ellipses and rectangles, sensor noise, and a JPEG round trip."""
    import io

    from PIL import Image, ImageDraw, ImageFilter
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy)[..., None]
    img = Image.fromarray(np.clip(a + (b - a) * t, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.uniform(-0.2, 0.9) * w, rng.uniform(-0.2, 0.9) * h
        box = [x0, y0, x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 4, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# -- devices (tests/cuda) ------------------------------------------------------
# ``emu``: the emulated CUDA device (needs g++; CI installs it). ``gpu``: a real
# cuda device; tests that take it are the only ones allowed to skip in CI, and
# their skip reason starts with "needs a GPU".

@pytest.fixture(scope="session")
def emu():
    from minivgg.backend import device
    if shutil.which("g++") is None:
        pytest.skip("the emu device needs g++ (apt install g++)")
    return device("emu")


@pytest.fixture(scope="session")
def gpu():
    from minivgg.backend import DeviceError, device
    try:
        return device("cuda")
    except DeviceError as e:
        pytest.skip(f"needs a GPU: {str(e)[:120]}")


@pytest.fixture(scope="session")
def gpu1(gpu):
    """A second cuda device, cuda:1."""
    from minivgg.backend import DeviceError, device
    try:
        return device("cuda:1")
    except DeviceError as e:
        pytest.skip(f"needs a GPU (two of them): {str(e)[:120]}")


@pytest.fixture
def standin(gpu):
    """The CuPy stand-in's state module (tests/standin/cupy/_standin.py), for
    tests of what only it can observe (host synchronisations, planted
    faults, races); skipped on a real GPU."""
    import cupy
    if not getattr(cupy, "STANDIN", False):
        pytest.skip("runs under the CuPy stand-in only (tests/standin/run.py): it observes "
                    "what a real GPU does not report")
    return cupy._standin


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
                      progress=False, seed=3, device=str(dev),
                      threads=1)  # BLAS sums in an order that depends on its threads

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
    root = os.path.abspath(ROOT)

    def run(dev):
        out = tmp_path / str(dev).replace(":", "-")
        res = subprocess.run(
            [sys.executable, os.path.join(root, "examples", "train_vgg.py"), "--cfg", "A",
             "--device", str(dev), "--max-steps", "3", "--width-mult", "0.125", "--train-size",
             "256", "--val-size", "32", "--batch-size", "32", "--no-progress", "--out", str(out)],
            cwd=root, capture_output=True, text=True, timeout=600,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(  # keeps a CuPy stand-in in place
                [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])))
        assert res.returncode == 0, res.stderr[-3000:]
        with np.load(out / "last.npz") as z:
            return {k: z[k] for k in z.files if k.startswith("model/")}
    return run
