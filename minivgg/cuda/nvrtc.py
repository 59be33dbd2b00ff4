"""Compile-only checks of ``kernels/*.cu`` with NVRTC, which needs no GPU and
no driver (``pip install "cuda-toolkit[nvrtc]"`` provides it; CuPy's wheel
loads it).

``compile_family(family, arch)`` compiles one ``.cu`` file to a cubin for a
real architecture (``sm_80`` for A100, ``sm_90`` for H100/H200) with the
options a ``cupy.RawModule`` compiles it with (minivgg's and CuPy's own,
``-ftz=true`` among them) plus ``--ptxas-options=-v``, and parses what
ptxas reports for each kernel: registers, stack frame and spills. A spill
means registers ran out and values go to slow local memory; the test suite
fails on any.

``divisions(family)`` compiles it to PTX and counts, per kernel, the 64-bit
integer divisions and remainders (``div.s64``, ``rem.u64``, ...). A GPU has
no instruction for them: each is a subroutine of several dozen instructions,
so index arithmetic that divides per element can cost more than the memory
traffic the kernel exists for. The test suite allows at most two per kernel
and none inside a loop nested in the grid-stride loop.

    python -m minivgg.cuda.nvrtc          # the table for every kernel
"""
import dataclasses
import re
import sys

from .cupy_kernels import CUPY_ADDED_OPTIONS, NVRTC_OPTIONS
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


#: The options of every compile here: what a cupy.RawModule compiles with.
OPTIONS = NVRTC_OPTIONS + CUPY_ADDED_OPTIONS


def compile_family(family, arch="sm_90", options=OPTIONS):
    """Compile kernels/<family>.cu to a cubin for ``arch``; [KernelResources]."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(source(family), f"{family}.cu", [], [])
    try:
        options = list(options) + [f"-arch={arch}", "--ptxas-options=-v"]
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


def ptx(family, arch="compute_90", options=OPTIONS):
    """The PTX text NVRTC makes of kernels/<family>.cu for a virtual ``arch``."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(source(family), f"{family}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(options) + [f"--gpu-architecture={arch}"])
        except Exception as e:
            raise NvrtcCompileError(f"kernels/{family}.cu does not compile for {arch}: {e}\n"
                                    f"{nvrtc.getProgramLog(prog)}") from None
        text = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return text.decode() if isinstance(text, bytes) else text


@dataclasses.dataclass
class KernelDivisions:
    name: str
    count: int       # 64-bit div/rem instructions in the kernel's PTX
    max_depth: int   # the deepest loop nest holding one (1: the grid-stride loop itself)


_ENTRY_PTX = re.compile(r"^\.visible \.entry (\w+)\(", re.M)
_DIV64 = re.compile(r"^(?:@!?%p\d+\s+)?(?:div|rem)\.[su]64\b")
_LABEL = re.compile(r"^(\$L\w+):")
_BRANCH = re.compile(r"^(@!?%p\d+\s+)?bra(?:\.uni)?\s+(\$L\w+);")
_END = re.compile(r"^(?:@!?%p\d+\s+)?(?:ret|exit|trap);")


def _blocks(lines):
    """The basic blocks of one kernel's PTX: ([instructions] per block, [successors])."""
    blocks = []  # [label, instructions, branch targets, falls through]

    def new(label=None):
        blocks.append([label, [], [], True])
        return blocks[-1]

    cur = new()
    for raw in lines:
        line = raw.split("//")[0].strip()
        if not line:
            continue
        lab = _LABEL.match(line)
        if lab:
            cur = cur if cur[0] is None and not cur[1] else new()
            cur[0] = lab.group(1)
            continue
        cur[1].append(line)
        br, end = _BRANCH.match(line), _END.match(line)
        if br or end:
            if br:
                cur[2].append(br.group(2))
            cur[3] = line.startswith("@")  # a predicated branch or return may not be taken
            cur = new()
    index = {b[0]: i for i, b in enumerate(blocks) if b[0]}
    succ = []
    for i, (_, _, targets, falls) in enumerate(blocks):
        out = {index[t] for t in targets}
        if falls and i + 1 < len(blocks):
            out.add(i + 1)
        succ.append(out)
    return [b[1] for b in blocks], succ


def _loop_depths(succ):
    """How many natural loops (one per loop header) contain each block."""
    n = len(succ)
    pred = [set() for _ in range(n)]
    for u, vs in enumerate(succ):
        for v in vs:
            pred[v].add(u)
    dom = [set(range(n)) for _ in range(n)]
    dom[0] = {0}
    changed = True
    while changed:
        changed = False
        for v in range(1, n):
            new = {v} | (set.intersection(*(dom[u] for u in pred[v])) if pred[v] else set())
            if new != dom[v]:
                dom[v], changed = new, True
    loops = {}
    for u, vs in enumerate(succ):
        for h in vs:
            if h in dom[u]:  # a back edge u -> h: h heads a loop
                body, stack = loops.setdefault(h, {h}), [u]
                while stack:
                    x = stack.pop()
                    if x not in body:
                        body.add(x)
                        stack.extend(pred[x])
    return [sum(v in body for body in loops.values()) for v in range(n)]


def count_divisions(ptx_text):
    """[KernelDivisions] for every entry point of a PTX text.

    The depth of a division is the number of loops around it, found as
    natural loops of the kernel's control-flow graph (a branch back to a
    block that dominates it), so that out-of-line code placed before the
    loop does not count as one."""
    out = []
    starts = [m.start() for m in _ENTRY_PTX.finditer(ptx_text)] + [len(ptx_text)]
    for m, end in zip(_ENTRY_PTX.finditer(ptx_text), starts[1:]):
        text = ptx_text[m.start():end]
        body = text[text.index("{") + 1:text.rindex("}")]
        code, succ = _blocks(body.splitlines())
        depths = _loop_depths(succ)
        divs = [depths[i] for i, ins in enumerate(code) for line in ins if _DIV64.match(line)]
        out.append(KernelDivisions(m.group(1), len(divs), max(divs, default=0)))
    return out


def divisions(family, arch="compute_90"):
    """[KernelDivisions] of kernels/<family>.cu."""
    return count_divisions(ptx(family, arch))


def report(archs=ARCHS):
    """[KernelResources] for every kernel of every family and arch."""
    return [r for fam in families() for arch in archs for r in compile_family(fam, arch)]


def format_table(rows):
    lines = [f"{'kernel':<24} {'arch':<6} {'registers':>9} {'stack':>6} {'spills':>7}"]
    for r in rows:
        lines.append(f"{r.name:<24} {r.arch:<6} {r.registers:>9} {r.stack_bytes:>6} "
                     f"{r.spill_stores + r.spill_loads:>7}")
    return "\n".join(lines)


def format_divisions(rows):
    lines = [f"{'kernel':<24} {'64-bit div/rem':>14} {'deepest loop':>12}"]
    lines += [f"{r.name:<24} {r.count:>14} {r.max_depth:>12}" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"NVRTC {'.'.join(map(str, version()))}")
    print(format_table(report()))
    print()
    print(format_divisions([r for fam in families() for r in divisions(fam)]))
    sys.exit(0)
