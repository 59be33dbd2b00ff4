"""The same trainer over NCCL on GPUs (skipped without one, and without NCCL):
one NCCL rank equals the single-process run; two ranks on the machine's one
GPU, where NCCL allows it (NCCL >= 2.30 with NCCL_MULTI_RANK_GPU_ENABLE=1),
equal one process with the global batch."""
import os

import pytest

from test_data_parallel import assert_close, run, tiny, weights


def nccl_or_skip():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no GPU")
        from cupy.cuda import nccl
        if not nccl.available:
            raise RuntimeError("cupy.cuda.nccl is not available")
        return nccl
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"needs a GPU with NCCL: {str(e)[:100]}")


def test_one_nccl_rank_equals_the_single_process_run(tmp_path):
    nccl_or_skip()
    one = run(tiny(tmp_path / "one", "--max-steps", "3", "--device", "cuda"))
    assert one.returncode == 0, one.stderr[-3000:]
    nc = run(tiny(tmp_path / "nccl", "--max-steps", "3", "--device", "cuda",
                  "--distributed", "nccl"), ranks=1)
    assert nc.returncode == 0, nc.stderr[-3000:]
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "nccl"))


def test_two_nccl_ranks_on_one_gpu_equal_one_process(tmp_path, monkeypatch):
    nccl = nccl_or_skip()
    version = nccl.get_version()
    if version < 23000:
        pytest.skip(f"needs a GPU whose NCCL puts two ranks on one GPU (>= 2.30); this one "
                    f"is {version}")
    monkeypatch.setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1")
    monkeypatch.setenv("NCCL_MAX_CTAS", "2")
    one = run(tiny(tmp_path / "one", "--max-steps", "3", "--device", "cuda"))
    assert one.returncode == 0, one.stderr[-3000:]
    for name, extra in (("overlap", ["--bucket-mb", "0.001"]), ("plain", ["--no-overlap"])):
        two = run(tiny(tmp_path / name, "--max-steps", "3", "--device", "cuda",
                       "--distributed", "nccl", *extra), ranks=2)
        assert two.returncode == 0, two.stderr[-3000:]
        assert_close(weights(tmp_path / "one"), weights(tmp_path / name))
