"""benchmarks/bench_frameworks.py --compat: the two NumPy names DeZero and
Chainer need are put back (and CuPy hidden) in the worker process only, and
the benchmark's command-line and BLAS records say how to rerun it."""
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run_python(code, env=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=BENCH, env=env, timeout=120)


def test_restore_removed_numpy_names_in_a_fresh_process():
    code = (
        "import numpy as np, bench_frameworks as b\n"
        "had_int, had_sctypes = hasattr(np, 'int'), hasattr(np, 'sctypes')\n"
        "note = b.restore_removed_numpy_names()\n"
        "assert np.int is int or had_int\n"
        "assert np.float32 in np.sctypes['float'] and np.int64 in np.sctypes['int']\n"
        "try:\n"
        "    import cupy\n"
        "except ImportError:\n"
        "    print('cupy hidden;' + note)\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "cupy hidden; with np.int/np.sctypes restored" in r.stdout


def test_the_command_line_says_how_the_blas_was_set():
    code = ("import sys, common\n"
            "sys.argv = ['benchmarks/x.py', '--threads', '1']\n"
            "print(common.command_line())\n"
            "print(common.blas_line())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = run_python(code, env).stdout.splitlines()
    assert out[0] == ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                      "python benchmarks/x.py --threads 1")
    assert out[1].startswith("NumPy's BLAS: ") and "own choice" in out[1]
    env["OPENBLAS_CORETYPE"] = "Haswell"
    out = run_python(code, env).stdout.splitlines()
    assert out[0] == "python benchmarks/x.py --threads 1"
    assert "OPENBLAS_CORETYPE=Haswell set in the environment" in out[1]


def test_size_and_batch_are_checked_before_anything_runs():
    for args, message in ((["--size", "48"], "--size must be a multiple of 32"),
                          (["--size", "0"], "--size must be a multiple of 32"),
                          (["--batch", "0"], "--batch must be at least 1, got 0")):
        r = subprocess.run([sys.executable, str(BENCH / "bench_frameworks.py")] + args,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


def test_the_data_follow_size_and_batch():
    code = ("import numpy as np, bench_frameworks as b\n"
            "x, t = b.data(np, 224, 8)\n"
            "print(x.shape, x.dtype, t.tolist())\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(8, 3, 224, 224) float32 [0, 1, 2, 3, 4, 5, 6, 7]"


def test_a_worker_keeps_freed_memory_without_importing_minivgg():
    code = ("import sys, bench_frameworks as b\n"
            "print(b.keep_freed_memory_here(), 'minivgg' in sys.modules)\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    import ctypes
    glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert r.stdout.split() == [str(glibc), "False"]


def test_thread_counts_lead_with_the_machines_default():
    """--threads of the benchmarks: 0 is the machine's default (one per
    core), first by default, then one thread; repeats dropped; bad counts refused."""
    code = ("import common, argparse\n"
            "from minivgg.threads import cores\n"
            "assert common.thread_counts_arg('0,1') == [cores(), 1] or cores() == 1\n"
            "assert common.thread_counts_arg('1') == [1]\n"
            "assert common.thread_counts_arg('3,0,3') == [3] + ([cores()] if cores() != 3 else [])\n"
            "for bad in ('x', '-1', ''):\n"
            "    try:\n"
            "        common.thread_counts_arg(bad)\n"
            "        raise SystemExit('accepted ' + repr(bad))\n"
            "    except argparse.ArgumentTypeError as e:\n"
            "        assert '--threads' in str(e)\n"
            "print(common.threads_label(1), common.threads_label(2))\n")
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    r = run_python(code, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1 thread 2 threads"
