"""The CUDA sources in ``kernels/*.cu`` and the signatures of their kernels.

Each ``.cu`` file is one op family (conv, pool, lrn, activation, loss, sgd).
Its entry points are written out as

    extern "C" __global__ void relu_fwd_f32(float* y, const float* x, long long n)

one per dtype (``_f32``, ``_f64``), each calling a template that holds the
code once. Plain C names work the same under NVRTC, in a cubin and in the
CPU emulator. This module parses those lines into ``KernelSignature``s:
the launcher checks every argument against them before any launch (CuPy
itself would pass a wrong type through silently), and the emulator builds
its ctypes argument types from them.
"""
import dataclasses
import functools
import os
import re

import numpy as np

def _kernel_dir():
    """kernels/ beside the package in a checkout (editable installs included:
    their ``minivgg.kernels`` may point at another checkout), else the
    installed ``minivgg.kernels``."""
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "kernels")
    if os.path.exists(os.path.join(beside, "common.cuh")):
        return beside
    from ..kernels import KERNEL_DIR as installed
    return installed


KERNEL_DIR = _kernel_dir()

#: dtype -> the suffix of the entry point compiled for it.
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

#: C type (without const, *, __restrict__) -> NumPy dtype.
C_TYPES = {
    "float": np.dtype(np.float32), "double": np.dtype(np.float64),
    "long long": np.dtype(np.int64), "int": np.dtype(np.int32),
    "unsigned long long": np.dtype(np.uint64), "unsigned char": np.dtype(np.uint8),
}

_ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')


@dataclasses.dataclass(frozen=True)
class Param:
    """One kernel parameter: ``const float* x`` -> pointer to float32, const."""
    name: str
    dtype: np.dtype
    pointer: bool
    const: bool
    text: str          # as written in the source, for generated code

    def describe(self):
        if self.pointer:
            return f"{'read-only ' if self.const else ''}{self.dtype} array"
        return f"np.{self.dtype}"


@dataclasses.dataclass(frozen=True)
class KernelSignature:
    name: str          # e.g. relu_fwd_f32
    family: str        # the .cu file it lives in, e.g. activation
    params: tuple

    def describe(self):
        return f"{self.name}({', '.join(p.text for p in self.params)})"


def _parse_param(text, where):
    t = " ".join(text.replace("__restrict__", " ").replace("*", " * ").split())
    words = t.split()
    if len(words) < 2:
        raise ValueError(f"{where}: cannot parse kernel parameter {text!r}")
    name, words = words[-1], words[:-1]
    pointer = words.count("*")
    const = "const" in words
    ctype = " ".join(w for w in words if w not in ("*", "const"))
    if ctype not in C_TYPES or pointer > 1:
        raise ValueError(f"{where}: unsupported kernel parameter type in {text!r}; minivgg's "
                         f"launcher knows {', '.join(C_TYPES)} and pointers to them")
    return Param(name, C_TYPES[ctype], bool(pointer), const, " ".join(text.split()))


def families():
    """Names of the op families: the ``.cu`` files of KERNEL_DIR."""
    return sorted(f[:-3] for f in os.listdir(KERNEL_DIR) if f.endswith(".cu"))


def source_path(family):
    return os.path.join(KERNEL_DIR, family + ".cu")


_INCLUDE = re.compile(r'^#include "(\w+\.cuh)"[ \t]*$', re.M)


def _read(name):
    with open(os.path.join(KERNEL_DIR, name), encoding="utf-8") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def source(family):
    """The CUDA C text of one family, as NVRTC compiles it: the .cu file with
    its ``#include "x.cuh"`` lines replaced by those files (so the text, which
    CuPy's compile cache is keyed on, changes whenever one of them does)."""
    return _INCLUDE.sub(lambda m: _read(m.group(1)), _read(family + ".cu"))


def parse_signatures(text, family):
    """{entry point name: KernelSignature} of the ``extern "C" __global__``
    functions in CUDA C ``text`` (the source of ``family``)."""
    out = {}
    for m in _ENTRY.finditer(text):
        name = m.group(1)
        where = f"kernels/{family}.cu: {name}"
        params = tuple(_parse_param(p, where) for p in m.group(2).split(",") if p.strip())
        out[name] = KernelSignature(name, family, params)
    return out


@functools.lru_cache(maxsize=None)
def signatures():
    """{entry point name: KernelSignature} over every kernels/*.cu file."""
    out = {}
    for fam in families():
        for name, sig in parse_signatures(source(fam), fam).items():
            if name in out:
                raise ValueError(f"kernels/{fam}.cu: {name}: kernel name also defined in "
                                 f"kernels/{out[name].family}.cu")
            out[name] = sig
    return out


def entry_name(base, dtype):
    """``relu_fwd`` + float32 -> ``relu_fwd_f32``."""
    dtype = np.dtype(dtype)
    if dtype not in SUFFIX:
        raise TypeError(f"kernel {base}: no entry point for dtype {dtype}; the kernels are "
                        f"compiled for float32 and float64")
    return f"{base}_{SUFFIX[dtype]}"
