"""The programs as commands: `python -m minivgg COMMAND` and the console
scripts setup.py installs (minivgg-train, minivgg-evaluate, ...) run the same
functions as the scripts in examples/."""
import os
import re
import subprocess
import sys
import time

from conftest import ROOT


def run(*args):
    return subprocess.run([sys.executable, "-m", "minivgg", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_python_m_minivgg_lists_and_runs_its_commands(tmp_path):
    res = run()
    assert res.returncode == 2 and "train" in res.stdout and "evaluate" in res.stdout
    assert run("--help").returncode == 0
    res = run("frobnicate")
    assert res.returncode == 2 and "unknown command 'frobnicate'" in res.stderr
    for cmd in ("train", "evaluate", "classify", "export"):
        res = run(cmd, "--help")
        assert res.returncode == 0 and "usage: python -m minivgg " + cmd in res.stdout, cmd
    res = run("summary", "--cfg", "A", "--format", "csv")
    assert res.returncode == 0 and "conv3_1" in res.stdout
    out = tmp_path / "r"
    res = run("train", "--width-mult", "0.125", "--fc-width", "16", "--train-size", "16",
              "--val-size", "8", "--batch-size", "8", "--epochs", "1", "--no-progress",
              "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    res = run("evaluate", "--checkpoint", str(out), "--no-progress", "--limit", "4")
    assert res.returncode == 0 and "top-1 err" in res.stdout


def test_setup_installs_the_console_commands():
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        text = f.read()
    scripts = dict(re.findall(r'"(minivgg-\w+) = ([\w.:]+)"', text))
    assert set(scripts) == {"minivgg-train", "minivgg-evaluate", "minivgg-classify",
                            "minivgg-summary", "minivgg-export"}
    import importlib
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_an_uninstalled_checkout_finds_its_cuda_sources():
    """examples/ put the repository first on sys.path; without an install,
    `minivgg.kernels` does not exist and the CUDA code must read kernels/."""
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if 'ditable' not in repr(f)]; sys.path.insert(0, sys.argv[1]); "
            "import minivgg.cuda.emulator as e, minivgg.cuda.source as s; "
            "import os; print(os.path.realpath(s.KERNEL_DIR))")
    res = subprocess.run([sys.executable, "-c", code, ROOT], cwd=os.path.dirname(ROOT),
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert res.returncode == 0, res.stderr[-2000:]
    kernels = res.stdout.strip()
    assert kernels == os.path.realpath(os.path.join(ROOT, "kernels"))
    assert os.path.isfile(os.path.join(kernels, "conv.cu"))


def test_evaluate_and_classify_take_threads(tmp_path):
    from minivgg import threads as th
    for cmd in ("evaluate", "classify"):
        res = run(cmd, "--help")
        assert "--threads" in res.stdout, cmd
    res = run("evaluate", "--checkpoint", str(tmp_path / "none.npz"), "--threads", "-1")
    assert res.returncode == 2 and "--threads must be >= 0" in res.stderr.strip().splitlines()[-1]
    res = run("classify", "--weights", str(tmp_path / "none.npz"), "x.jpg", "--threads", "-1")
    assert res.returncode == 2 and "--threads must be >= 0" in res.stderr.strip().splitlines()[-1]
    before = th.threads()
    try:
        assert th.apply_threads_flag(1, th.OtherWork()) == 1 and th.threads() == 1
        work = th.OtherWork()
        time.sleep(0.06)  # long enough for a measurement (OtherWork.busy_cpus)
        n = th.apply_threads_flag(0, work)  # what is free: 1..cores
        assert 1 <= n <= th.cores() and th.threads() == n
    finally:
        th.set_threads(None if before == th.cores() else before)
