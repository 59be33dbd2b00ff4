"""The trainer over NCCL on GPUs (skipped without them, and without NCCL; run
against the CuPy stand-in's two devices in CI, tests/cuda/test_standin_suite.py):
one NCCL rank equals the single-process run; two ranks, on two GPUs or on
one GPU where NCCL allows it (NCCL >= 2.30 with NCCL_MULTI_RANK_GPU_ENABLE=1),
equal one process with the global batch; the exposed communication time is
the time the GPU waited for the exchange; a rank that cannot start makes
every rank stop with one message."""
import textwrap

import pytest

from test_data_parallel import assert_close, run, tiny, weights


def nccl_or_skip(devices=1):
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < devices:
            raise RuntimeError(f"fewer than {devices} GPU(s)")
        from cupy.cuda import nccl
        if not nccl.available:
            raise RuntimeError("cupy.cuda.nccl is not available")
        return nccl
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"needs a GPU with NCCL: {str(e)[:100]}")


def two_ranks_or_skip(monkeypatch):
    """Two NCCL ranks: on two GPUs, or on one where NCCL allows it (>= 2.30)."""
    nccl = nccl_or_skip()
    import cupy
    if cupy.cuda.runtime.getDeviceCount() >= 2:
        return
    if nccl.get_version() < 23000:
        pytest.skip("needs a GPU (two of them, or one whose NCCL >= 2.30 takes two ranks)")
    monkeypatch.setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1")


def standin_or_skip():
    import cupy
    if not getattr(cupy, "STANDIN", False):
        pytest.skip("plants a fault with the CuPy stand-in (tests/standin/run.py)")


@pytest.mark.needs_gpu
def test_one_nccl_rank_equals_the_single_process_run(tmp_path):
    nccl_or_skip()
    one = run(tiny(tmp_path / "one", "--max-steps", "3", "--device", "cuda"))
    assert one.returncode == 0, one.stderr[-3000:]
    nc = run(tiny(tmp_path / "nccl", "--max-steps", "3", "--device", "cuda",
                  "--distributed", "nccl"), ranks=1)
    assert nc.returncode == 0, nc.stderr[-3000:]
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "nccl"))


def two_ranks_equal_one_process(tmp_path):
    one = run(tiny(tmp_path / "one", "--max-steps", "3", "--device", "cuda"))
    assert one.returncode == 0, one.stderr[-3000:]
    for name, extra in (("overlap", ["--bucket-mb", "0.001"]), ("plain", ["--no-overlap"])):
        two = run(tiny(tmp_path / name, "--max-steps", "3", "--device", "cuda",
                       "--distributed", "nccl", *extra), ranks=2)
        assert two.returncode == 0, two.stderr[-3000:]
        assert_close(weights(tmp_path / "one"), weights(tmp_path / name))


@pytest.mark.needs_gpu
def test_two_nccl_ranks_on_two_gpus_equal_one_process(tmp_path):
    nccl_or_skip(devices=2)
    two_ranks_equal_one_process(tmp_path)


@pytest.mark.needs_gpu
def test_two_nccl_ranks_on_one_gpu_equal_one_process(tmp_path, monkeypatch):
    nccl = nccl_or_skip()
    version = nccl.get_version()
    if version < 23000:
        pytest.skip(f"needs a GPU whose NCCL puts two ranks on one GPU (>= 2.30); this one "
                    f"is {version}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1")
    monkeypatch.setenv("NCCL_MAX_CTAS", "2")
    two_ranks_equal_one_process(tmp_path)


SLOW_RANK = textwrap.dedent("""
    # Two NCCL ranks; in the second step rank 1 starts its backward pass
    # 1.5 s late, so rank 0's GPU waits that long for the exchange.
    import sys, time
    import numpy as np
    from minivgg import Tensor, functional as F
    from minivgg.backend import device
    from minivgg.distributed import GradientSync, NCCLCommunicator
    from minivgg.models import vgg
    from minivgg.optim import SGD
    comm = NCCLCommunicator()
    dev = device(f"cuda:{comm.device_index}")
    m = vgg("A", num_classes=4, input_size=32, fc_width=8, width_mult=1/8, init="kaiming",
            seed=0).to(dev)
    opt = SGD(m.parameters(), 0.01)
    sync = GradientSync(comm, opt.buffers(), bucket_mb=float(sys.argv[1]),
                        overlap=sys.argv[2] == "overlap")
    x = Tensor(np.ones((2, 3, 32, 32), np.float32)).to(dev)
    for step in range(2):
        opt.zero_grad()
        with sync.during_backward():
            loss = F.softmax_cross_entropy(m(x), np.array([1, 2]))
            if comm.rank == 1 and step == 1:
                time.sleep(1.5)
            loss.backward()
        sync.finish()
        opt.step()
        comm.sum_host([loss.item()])
        if step == 0:
            sync.finish_seconds = 0.0
    print(f"rank {comm.rank} waited {sync.finish_seconds:.3f} s", flush=True)
    comm.close()
""")


@pytest.mark.needs_gpu
@pytest.mark.parametrize("how", ["overlap", "plain"])
def test_exposed_communication_is_the_time_the_gpu_waited(tmp_path, monkeypatch, how):
    # NCCL only queues the exchange; the host returns at once. The time that
    # counts is how long the GPU's compute stream waits for it.
    two_ranks_or_skip(monkeypatch)
    script = tmp_path / "slow_rank.py"
    script.write_text(SLOW_RANK)
    res = run(["0.001", how], ranks=2, script=str(script), timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    waited = {int(line.split()[1]): float(line.split()[3])
              for line in res.stdout.splitlines() if line.startswith("rank ")}
    assert waited[0] >= 0.5, f"rank 0 waited {waited[0]} s for a rank 1.5 s late"


@pytest.mark.needs_gpu
def test_a_rank_that_cannot_use_its_gpu_stops_every_rank_with_one_message(tmp_path,
                                                                           monkeypatch):
    nccl_or_skip(devices=2)
    standin_or_skip()
    monkeypatch.setenv("CUPY_STANDIN_UNAVAILABLE", "1")   # rank 1's GPU is taken
    res = run(tiny(tmp_path / "a", "--device", "cuda", "--distributed", "nccl"), ranks=2,
              timeout=90)
    assert res.returncode == 2, res.stderr[-3000:]
    assert res.stderr.count("error: ") == 1, res.stderr[-3000:]
    assert "error: rank 1: --distributed nccl:" in res.stderr
    assert "cudaErrorDevicesUnavailable" in res.stderr


@pytest.mark.needs_gpu
def test_a_failed_nccl_init_is_one_message(tmp_path, monkeypatch):
    # Two ranks on one GPU with NCCL's opt-in set, but an NCCL that predates
    # it: the communicator's initialisation fails on every rank.
    nccl_or_skip()
    standin_or_skip()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1")
    monkeypatch.setenv("CUPY_STANDIN_NCCL_VERSION", "22807")
    res = run(tiny(tmp_path / "a", "--device", "cuda", "--distributed", "nccl"), ranks=2,
              timeout=90)
    assert res.returncode == 2, res.stderr[-3000:]
    assert res.stderr.count("error: ") == 1, res.stderr[-3000:]
    assert ("error: rank 0: --distributed nccl: creating the NCCL communicator: "
            "NCCL_ERROR_INVALID_USAGE") in res.stderr
    assert "Duplicate GPU detected" in res.stderr


@pytest.mark.needs_gpu
def test_the_stand_in_catches_an_exchange_read_without_waiting(tmp_path):
    # The check that makes the tests above mean something: drop the compute
    # stream's wait for the exchange, and the next read of the gradients races.
    nccl_or_skip(devices=2)
    standin_or_skip()
    script = tmp_path / "no_wait.py"
    script.write_text("import minivgg.distributed.comm as c\n"
                      "c._NCCLRequest.wait = lambda self: None\n" + SLOW_RANK)
    res = run(["0.001", "overlap"], ranks=2, script=str(script), timeout=180)
    assert res.returncode != 0
    assert "RaceError" in res.stderr and "ncclAllReduce" in res.stderr, res.stderr[-3000:]
