"""Data-parallel training (§3.3) with MPI on the CPU: 2 ranks x shard b give
the weights of 1 process x batch 2b, with and without overlapping the
gradient exchange with backward; uneven data; broadcast; resume; failures.

These start ``mpiexec`` (from the mpich wheel that ``.ci/run`` installs);
each run is a few seconds of a tiny VGG-A in float64 with dropout off, so
weights can be compared to 1e-10.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "examples", "train_vgg.py")
WORKER = os.path.join(ROOT, "tests", "distributed", "worker.py")


def mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed; pip install -e \".[dist]\"")
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    path = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if path is None:
        pytest.skip("mpiexec not found; pip install mpich (the 'dist' extra)")
    return path


def tiny(out, *extra):
    return ["--cfg", "A", "--width-mult", "0.125", "--fc-width", "16", "--train-size", "48",
            "--val-size", "13", "--batch-size", "16", "--dropout", "0", "--dtype", "float64",
            "--no-progress", "--seed", "3", "--out", str(out), *extra]


def run(args, ranks=None, script=TRAIN, timeout=300):
    cmd = [sys.executable, script, *args]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    t0 = time.perf_counter()
    path = [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)))
    res.seconds = time.perf_counter() - t0
    return res


def weights(out):
    with np.load(os.path.join(out, "last.npz")) as z:
        return {k: z[k] for k in z.files if k.startswith(("model/", "optim/"))}


def assert_close(a, b, rtol=1e-10):
    assert a.keys() == b.keys() and len(a) >= 22
    for k in a:
        err = np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-300)
        assert err <= rtol, f"{k}: relative error {err:.3g}"


def test_two_ranks_equal_one_process_with_and_without_overlap(tmp_path):
    one = run(tiny(tmp_path / "one", "--max-steps", "3"))
    assert one.returncode == 0, one.stderr[-3000:]
    for name, extra in (("overlap", ["--bucket-mb", "0.001"]), ("plain", ["--no-overlap"])):
        two = run(tiny(tmp_path / name, "--max-steps", "3", "--distributed", "mpi", *extra),
                  ranks=2)
        assert two.returncode == 0, two.stderr[-3000:]
        assert_close(weights(tmp_path / "one"), weights(tmp_path / name))
        assert len(re.findall(r"^epoch 1/\d+:", two.stdout, re.M)) == 1  # only rank 0 speaks


def test_an_uneven_epoch_finishes_on_every_rank_and_matches_one_process(tmp_path):
    # 41 images in batches of 16: the last batch has 9, so rank 1 of 2 gets 1 and
    # rank 2 of 3 (batch 18: 5 left) gets none; validation (13 images) is uneven too.
    one = run(tiny(tmp_path / "one", "--epochs", "1", "--train-size", "41"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run(tiny(tmp_path / "two", "--epochs", "1", "--train-size", "41",
                   "--distributed", "mpi", "--bucket-mb", "0.001"), ranks=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
    m1 = (tmp_path / "one" / "metrics.jsonl").read_text()
    m2 = (tmp_path / "two" / "metrics.jsonl").read_text()
    import json
    r1, r2 = json.loads(m1), json.loads(m2)
    for key in ("val_top1_err", "val_top5_err", "train_top1_err"):
        assert r1[key] == r2[key], key
    assert abs(r1["val_loss"] - r2["val_loss"]) < 1e-9
    # The rank left empty by the last batch takes part in the average with
    # zeros (its gradient buffer still holds the step before's), and applies it.
    one18 = run(tiny(tmp_path / "one18", "--epochs", "1", "--train-size", "41",
                     "--batch-size", "18"))
    assert one18.returncode == 0, one18.stderr[-3000:]
    three = run(tiny(tmp_path / "three", "--epochs", "1", "--train-size", "41",
                     "--batch-size", "18", "--distributed", "mpi"), ranks=3)
    assert three.returncode == 0, three.stderr[-3000:]
    assert_close(weights(tmp_path / "one18"), weights(tmp_path / "three"))


def test_ranks_started_from_different_seeds_agree_after_the_broadcast(tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from minivgg.distributed import MPICommunicator
        from minivgg.models import vgg
        from minivgg.optim import SGD
        comm = MPICommunicator()
        m = vgg("A", num_classes=4, input_size=32, fc_width=8, width_mult=1/16,
                init="kaiming", seed=comm.rank)          # different weights on each rank
        flat = SGD(m.parameters(), 0.1).buffers()
        before = comm.world.allgather(float(flat.data.sum()))
        comm.broadcast(flat.data)
        after = comm.world.allgather(float(flat.data.sum()))
        w0 = vgg("A", num_classes=4, input_size=32, fc_width=8, width_mult=1/16,
                 init="kaiming", seed=0).state_dict()
        same = comm.world.gather(all(np.array_equal(w0[k], v)
                                     for k, v in m.state_dict().items()))
        if comm.rank == 0:
            print("before", len(set(before)), "after", len(set(after)), "equal to rank 0's", same)
    """)
    script = tmp_path / "bcast.py"
    script.write_text(code)
    res = run([], ranks=2, script=str(script))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "before 2 after 1 equal to rank 0's [True, True]" in res.stdout


def test_resume_with_the_same_ranks_is_exact_and_with_fewer_continues(tmp_path):
    drop = ["--dropout", "0.5"]  # dropout on: the per-rank streams must resume too
    straight = run(tiny(tmp_path / "s", "--epochs", "2", "--distributed", "mpi", *drop), ranks=2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = run(tiny(tmp_path / "r", "--epochs", "1", "--distributed", "mpi", *drop), ranks=2)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(tmp_path / "r", tmp_path / "r1")
    again = run(tiny(tmp_path / "r", "--epochs", "2", "--distributed", "mpi", "--resume",
                     str(tmp_path / "r"), *drop), ranks=2)
    assert again.returncode == 0, again.stderr[-3000:]
    np.testing.assert_equal(weights(tmp_path / "s"), weights(tmp_path / "r"))
    # With one rank instead of two, the run continues where it stopped (weights,
    # momentum, schedule, data position); only the dropout masks of rank 1 are gone.
    solo = run(tiny(tmp_path / "r1", "--epochs", "2", "--resume", str(tmp_path / "r1"), *drop))
    assert solo.returncode == 0, solo.stderr[-3000:]
    assert "written by a run on 2 rank(s), this one has 1" in solo.stdout
    from minivgg.checkpoint import load_checkpoint
    a, b = load_checkpoint(tmp_path / "r1"), load_checkpoint(tmp_path / "s")
    assert (a.meta["epoch"], a.meta["global_step"]) == (b.meta["epoch"], b.meta["global_step"])
    timing = ("time_s", "images_per_s")
    assert ({k: v for k, v in a.meta["history"][0].items() if k not in timing} ==
            {k: v for k, v in b.meta["history"][0].items() if k not in timing})
    assert a.meta["world_size"] == 1 and b.meta["world_size"] == 2


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_stops_the_job_quickly_and_keeps_the_checkpoint(tmp_path, how):
    out = tmp_path / how
    # Epoch 1 is 3 steps and ends with a checkpoint; rank 1 fails in step 5.
    res = run(["--fail-rank", "1", "--fail-step", "5", "--fail-how", how, "--"] +
              tiny(out, "--epochs", "3", "--distributed", "mpi"), ranks=2, script=WORKER,
              timeout=120)
    assert res.returncode != 0
    assert res.seconds < 60, f"the job took {res.seconds:.0f} s to stop"
    text = res.stdout + res.stderr
    if how == "raise":
        assert "rank 1 of 2 failed" in text and "planted failure at step 5" in text
    else:
        assert "Killed" in text or "signal 9" in text or "EXIT CODE: 9" in text
    from minivgg.checkpoint import load_checkpoint
    ck = load_checkpoint(out)  # intact, and the last one written
    assert (ck.meta["epoch"], ck.meta["global_step"]) == (1, 3)


def test_bad_launches_fail_before_training_with_one_message(tmp_path):
    res = run(tiny(tmp_path / "a", "--distributed", "mpi"))  # not under mpiexec
    assert res.returncode == 2 and "not started by mpiexec" in res.stderr
    res = run(tiny(tmp_path / "b", "--distributed", "mpi", "--batch-size", "15"), ranks=2)
    assert res.returncode != 0
    assert res.stderr.count("cannot be split evenly over 2 ranks") == 1
    assert not (tmp_path / "b" / "last.npz").exists()
    res = run(tiny(tmp_path / "c", "--distributed", "nccl"), ranks=2)
    assert res.returncode != 0
    assert res.stderr.count("--distributed nccl") == 1 and "--device cuda" in res.stderr
    res = run(tiny(tmp_path / "d", "--distributed", "mpi", "--device", "cuda"), ranks=2)
    assert res.returncode != 0 and res.stderr.count("use --distributed nccl") == 1
