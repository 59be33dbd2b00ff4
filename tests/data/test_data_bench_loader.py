"""benchmarks/bench_loader.py runs end to end at toy size and edits only its own markdown section."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loader.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_loader_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_section_is_replaced_in_place(tmp_path):
    bench = load_bench()
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Conv\n\nconv figures\n\n## Data loader\n\nold\n\n## GEMM\n\ngemm\n")
    bench.write_section(str(md), "Data loader", "new figures\n")
    text = md.read_text()
    assert "old" not in text and "new figures" in text
    assert text.index("## Conv") < text.index("## Data loader") < text.index("## GEMM")
    assert "conv figures" in text and "gemm" in text
    fresh = tmp_path / "fresh.md"
    bench.write_section(str(fresh), "Data loader", "x\n")
    assert fresh.read_text().startswith("# Benchmarks\n\n## Data loader\n")


def test_runs_at_toy_size(tmp_path, capsys):
    bench = load_bench()
    md = tmp_path / "b.md"
    bench.main(["--workers", "0", "--synthetic-images", "16", "--synthetic-batch", "8",
                "--jpeg-count", "3", "--jpeg-images", "2", "--jpeg-batch", "2", "--write-md", str(md)])
    out = capsys.readouterr().out
    assert "SyntheticShapes" in out and "JPEG" in out
    text = md.read_text()
    assert "## Data loader" in text and "| SyntheticShapes" in text and "logical CPUs" in text


# A stand-in for torchvision with just what benchmarks/torchvision_loader.py
# uses, made of Pillow and torch: CI has torch but not torchvision (PyPI's
# torchvision does not import beside the CPU build of torch the tests use).
# It checks the comparison's plumbing, not torchvision's speed.
STUB = '''
__version__ = "0.0-stand-in"
'''
STUB_DATASETS = '''
import os
from PIL import Image


class ImageFolder:
    def __init__(self, root, transform):
        classes = sorted(os.listdir(root))
        self.samples = [(os.path.join(root, c, f), i) for i, c in enumerate(classes)
                        for f in sorted(os.listdir(os.path.join(root, c)))]
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:
            return self.transform(Image.open(f).convert("RGB")), label
'''
STUB_TRANSFORMS = '''
import enum
import random

import numpy as np
import torch


class InterpolationMode(enum.Enum):
    BILINEAR = "bilinear"


class Compose:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, x):
        for s in self.steps:
            x = s(x)
        return x


class RandomCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, im):
        x = random.randint(0, im.size[0] - self.size)
        y = random.randint(0, im.size[1] - self.size)
        return im.crop((x, y, x + self.size, y + self.size))


class RandomHorizontalFlip:
    def __call__(self, im):
        return im.transpose(0) if random.random() < 0.5 else im


class ToTensor:
    def __call__(self, im):
        return torch.from_numpy(np.array(im, np.float32) / 255).permute(2, 0, 1)


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, t):
        return (t - self.mean) / self.std
'''
STUB_FUNCTIONAL = '''
def resize(im, s, interpolation=None):
    w, h = im.size
    size = (s, round(s * h / w)) if w <= h else (round(s * w / h), s)
    return im.resize(size)
'''


def test_compares_with_torchvision_under_another_python(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="the stand-in torchvision is made of torch")
    stub = tmp_path / "stub" / "torchvision"
    (stub / "transforms").mkdir(parents=True)
    (stub / "__init__.py").write_text(STUB)
    (stub / "datasets.py").write_text(STUB_DATASETS)
    (stub / "transforms" / "__init__.py").write_text(STUB_TRANSFORMS)
    (stub / "transforms" / "functional.py").write_text(STUB_FUNCTIONAL)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
    bench = load_bench()
    md = tmp_path / "b.md"
    bench.main(["--workers", "0", "1", "--synthetic-images", "8", "--synthetic-batch", "8",
                "--jpeg-count", "4", "--jpeg-images", "4", "--jpeg-batch", "2",
                "--compare-images", "2", "--torchvision-python", sys.executable,
                "--write-md", str(md)])
    text = md.read_text()
    label = "torchvision 0.0-stand-in (torch "
    # Through the loaders at each worker count, with the ratio table ...
    assert text.count(f"crop 224, S~U[256,512], {label}") == 2
    assert "| minivgg / torchvision |" in text
    ratios = [line for line in text.splitlines() if line.startswith("| generated JPEGs")
              and line.count("|") == 6]
    assert [r.split("|")[2].strip() for r in ratios] == ["0", "1"]
    # ... and image by image in one process.
    assert f"| {label}" in text and "ImageFolder with the same transforms |" in text


def test_a_missing_torchvision_python_is_named(capsys):
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.main(["--torchvision-python", "/no/such/python"])
    assert "/no/such/python" in capsys.readouterr().err
