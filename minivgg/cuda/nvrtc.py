"""Compile-only checks of ``kernels/*.cu`` with NVRTC, which needs no GPU and
no driver (``pip install "cuda-toolkit[nvrtc]"`` provides it; CuPy's wheel
loads it).

``compile_family(family, arch)`` compiles one ``.cu`` file to a cubin for a
real architecture (``sm_80`` for A100, ``sm_90`` for H100/H200) with the
options the CuPy loader uses plus ``--ptxas-options=-v``, and parses what
ptxas reports for each kernel: registers, stack frame and spills. A spill
means registers ran out and values go to slow local memory; the test suite
fails on any.

    python -m minivgg.cuda.nvrtc          # the table for every kernel
"""
import dataclasses
import re
import sys

from .cupy_kernels import NVRTC_OPTIONS
from .source import families, source

ARCHS = ("sm_80", "sm_90")


class NvrtcUnavailable(RuntimeError):
    """NVRTC (or CuPy's binding to it) cannot be loaded on this machine."""


class NvrtcCompileError(RuntimeError):
    """A .cu file failed to compile; the message holds NVRTC's log."""


@dataclasses.dataclass
class KernelResources:
    name: str
    arch: str
    registers: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as e:
        raise NvrtcUnavailable(f"NVRTC is not available ({e}); install it with "
                               f"pip install cupy-cuda13x \"cuda-toolkit[nvrtc]\"") from None
    return nvrtc


def version():
    return _nvrtc().getVersion()


_FUNC = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas_log(log):
    """[KernelResources] from ptxas' verbose output."""
    out, cur = [], None
    for line in log.splitlines():
        m = _FUNC.search(line)
        if m:
            cur = KernelResources(m.group(1), m.group(2), 0, 0, 0, 0)
            out.append(cur)
            continue
        if cur is None:
            continue
        m = _FRAME.search(line)
        if m:
            cur.stack_bytes, cur.spill_stores, cur.spill_loads = map(int, m.groups())
        m = _REGS.search(line)
        if m:
            cur.registers = int(m.group(1))
    return out


def compile_family(family, arch="sm_90"):
    """Compile kernels/<family>.cu to a cubin for ``arch``; [KernelResources]."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(source(family), f"{family}.cu", [], [])
    try:
        options = list(NVRTC_OPTIONS) + [f"-arch={arch}", "--ptxas-options=-v"]
        try:
            nvrtc.compileProgram(prog, options)
        except Exception as e:
            raise NvrtcCompileError(f"kernels/{family}.cu does not compile for {arch}: {e}\n"
                                    f"{nvrtc.getProgramLog(prog)}") from None
        log = nvrtc.getProgramLog(prog)
        if not nvrtc.getCUBIN(prog):
            raise NvrtcCompileError(f"kernels/{family}.cu: NVRTC produced no cubin for {arch}")
    finally:
        nvrtc.destroyProgram(prog)
    return parse_ptxas_log(log)


def report(archs=ARCHS):
    """[KernelResources] for every kernel of every family and arch."""
    return [r for fam in families() for arch in archs for r in compile_family(fam, arch)]


def format_table(rows):
    lines = [f"{'kernel':<24} {'arch':<6} {'registers':>9} {'stack':>6} {'spills':>7}"]
    for r in rows:
        lines.append(f"{r.name:<24} {r.arch:<6} {r.registers:>9} {r.stack_bytes:>6} "
                     f"{r.spill_stores + r.spill_loads:>7}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"NVRTC {'.'.join(map(str, version()))}")
    print(format_table(report()))
    sys.exit(0)
