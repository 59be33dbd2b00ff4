"""Every kernels/*.cu compiles with NVRTC (no GPU needed) for sm_80 (A100) and
sm_90 (H100/H200), with exactly the options the installed CuPy passes to NVRTC
for minivgg's ``cupy.RawModule`` (found by running CuPy's own compile path up
to the NVRTC call); no kernel spills registers to local memory; no kernel
holds more than two 64-bit integer divisions, and none inside a loop nested
in its grid-stride loop. The register table is printed at the end of the test
run (see conftest.pytest_terminal_summary)."""
import os

import pytest

from minivgg.cuda import source
from minivgg.cuda.cupy_kernels import NVRTC_OPTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nvrtc_or_skip():
    from minivgg.cuda import nvrtc
    try:
        nvrtc.version()
    except nvrtc.NvrtcUnavailable as e:
        pytest.skip(str(e))
    return nvrtc


RESOURCES = []


class _Captured(Exception):
    pass


@pytest.fixture(scope="module")
def cupy_options(tmp_path_factory):
    """{arch: the option tuple CuPy hands NVRTC} for a RawModule built as
    minivgg builds them (cupy_kernels.CupyKernels): CuPy's compile path runs
    for real, with the GPU queries it makes answered and the final NVRTC
    call intercepted."""
    nvrtc_or_skip()
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed; pip install cupy-cuda13x")
    import cupy._core.core as core
    from cupy.cuda import compiler
    mp = pytest.MonkeyPatch()
    mp.setenv("CUPY_CACHE_DIR", str(tmp_path_factory.mktemp("cupy_cache")))
    seen = []
    real_compile = compiler._NVRTCProgram.compile

    def compile(self, options=(), log_stream=None):
        if not self.src.strip():  # CuPy's empty probe for its cache key
            return real_compile(self, options, log_stream)
        seen.append(tuple(options))
        raise _Captured
    mp.setattr(compiler._NVRTCProgram, "compile", compile)
    # The one GPU query on this path: which code to make for the architecture.
    mp.setattr(compiler, "_get_arch_for_options_for_nvrtc",
               lambda arch=None: (f"-arch=sm_{arch}", "cubin"))
    out = {}
    try:
        for arch in ("80", "90"):
            with pytest.raises(_Captured):
                core.compile_with_cache(source.source("activation"), NVRTC_OPTIONS, arch=arch,
                                        prepend_cupy_headers=False, backend="nvrtc")
            out[f"sm_{arch}"] = seen.pop()
    finally:
        mp.undo()
    assert cupy.__version__
    return out


def test_the_options_are_cupys(cupy_options):
    from minivgg.cuda import nvrtc
    for arch, options in cupy_options.items():
        assert f"-arch={arch}" in options
        assert "-ftz=true" in options and "--device-as-default-execution-space" in options
        own = [o for o in options if not o.startswith(("-I", "-arch=", "--pch"))]
        assert sorted(own) == sorted(nvrtc.OPTIONS), \
            f"CuPy compiles with {own}; minivgg's compile checks use {nvrtc.OPTIONS}"


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("family", source.families())
def test_kernels_compile_for_both_dtypes_without_spills(cupy_options, family, arch):
    nvrtc = nvrtc_or_skip()
    options = [o for o in cupy_options[arch] if not o.startswith("-arch=")]
    rows = nvrtc.compile_family(family, arch, options=options)
    RESOURCES.extend(rows)
    compiled = {r.name for r in rows}
    expected = {s.name for s in source.signatures().values() if s.family == family}
    assert expected and compiled == expected, f"missing entry points: {expected - compiled}"
    assert {n[-3:] for n in compiled} == {"f32", "f64"}
    spilled = [(r.name, r.spill_stores, r.spill_loads) for r in rows
               if r.spill_stores or r.spill_loads]
    assert not spilled, f"kernels spilling registers to local memory on {arch}: {spilled}"
    assert all(0 < r.registers <= 255 for r in rows)


@pytest.mark.parametrize("family", source.families())
def test_index_arithmetic_has_at_most_two_64_bit_divisions(family):
    nvrtc = nvrtc_or_skip()
    rows = nvrtc.divisions(family)
    expected = {s.name for s in source.signatures().values() if s.family == family}
    assert {r.name for r in rows} == expected
    heavy = [(r.name, r.count, r.max_depth) for r in rows if r.count > 2 or r.max_depth > 1]
    assert not heavy, ("kernels dividing 64-bit integers more than twice, or inside a loop "
                       "nested in the grid-stride loop (name, count, loop depth): "
                       f"{heavy}\n{nvrtc.format_divisions(rows)}")


def test_the_division_count_sees_loops_and_divisions():
    from minivgg.cuda.nvrtc import count_divisions
    # A grid-stride loop (BB0_1 .. branch back) holding an inner loop (BB0_2)
    # with a division, a division in the outer loop, and out-of-line code
    # placed before the loop (BB0_9, reached forward and jumping back to the
    # loop's join point without dominating it): that is not a loop.
    ptx = """
.visible .entry k_f32(
)
{
\tbra.uni \t$L__BB0_1;
$L__BB0_9:
\tdiv.rn.f32 \t%f1, %f2, %f3;
\tbra.uni \t$L__BB0_3;
$L__BB0_1:
\tdiv.s64 \t%rd1, %rd2, %rd3;
$L__BB0_2:
\trem.u64 \t%rd4, %rd5, %rd6;
\t@%p1 bra \t$L__BB0_2;
\t@%p2 bra \t$L__BB0_9;
$L__BB0_3:
\t@%p3 bra \t$L__BB0_1;
\tret;
}
"""
    (k,) = count_divisions(ptx)
    assert (k.name, k.count, k.max_depth) == ("k_f32", 2, 2)


def test_a_broken_kernel_is_reported_with_nvrtc_log(monkeypatch):
    nvrtc = nvrtc_or_skip()
    bad = source.source("activation").replace("y[e] = x[e] < T(0)", "y[e] = x[e] <<< T(0)")
    monkeypatch.setattr(nvrtc, "source", lambda family: bad)
    with pytest.raises(nvrtc.NvrtcCompileError, match="activation.cu does not compile"):
        nvrtc.compile_family("activation", "sm_90")


def test_ptxas_log_parser():
    from minivgg.cuda.nvrtc import parse_ptxas_log
    log = ("ptxas info    : Compiling entry function 'k_f32' for 'sm_90'\n"
           "ptxas         .     8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Used 40 registers, used 0 barriers\n")
    (r,) = parse_ptxas_log(log)
    assert (r.name, r.arch, r.registers, r.stack_bytes, r.spill_stores, r.spill_loads) == \
        ("k_f32", "sm_90", 40, 8, 4, 4)


def test_a_checkout_compiles_its_own_kernels():
    # An editable install elsewhere must not make this checkout's code read
    # that checkout's kernels/.
    assert os.path.realpath(source.KERNEL_DIR) == os.path.realpath(os.path.join(ROOT, "kernels"))
