"""Every kernels/*.cu compiles with NVRTC (no GPU needed) for sm_80 (A100) and
sm_90 (H100/H200), with the options the CuPy loader uses; no kernel spills
registers to local memory. The register table is printed at the end of the
test run (see conftest.pytest_terminal_summary)."""
import pytest

from minivgg.cuda import source


def nvrtc_or_skip():
    from minivgg.cuda import nvrtc
    try:
        nvrtc.version()
    except nvrtc.NvrtcUnavailable as e:
        pytest.skip(str(e))
    return nvrtc


RESOURCES = []


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("family", source.families())
def test_kernels_compile_for_both_dtypes_without_spills(family, arch):
    nvrtc = nvrtc_or_skip()
    rows = nvrtc.compile_family(family, arch)
    RESOURCES.extend(rows)
    compiled = {r.name for r in rows}
    expected = {s.name for s in source.signatures().values() if s.family == family}
    assert expected and compiled == expected, f"missing entry points: {expected - compiled}"
    assert {n[-3:] for n in compiled} == {"f32", "f64"}
    spilled = [(r.name, r.spill_stores, r.spill_loads) for r in rows
               if r.spill_stores or r.spill_loads]
    assert not spilled, f"kernels spilling registers to local memory on {arch}: {spilled}"
    assert all(0 < r.registers <= 255 for r in rows)


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
