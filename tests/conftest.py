"""Shared test helpers. Tests generate their own data; none reads ../shared."""
import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def torch_or_skip():
    """Import torch, or skip the test with the reason."""
    return pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                                               "pip install torch==2.13.0")


def load_example(name):
    """Import examples/<name>.py as a module (its main(argv) runs the command)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples",
                                                                     f"{name}.py"))
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
