"""The GPU benchmark and check scripts run end to end here on the emulated
device (at a tiny size), so a lent GPU's few minutes are not lost to a bug
in them."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_gpu_runs_on_the_emulator(emu, tmp_path):
    out = tmp_path / "bench.md"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"),
                          "--device", "emu", "--smoke", "--batches", "2", "--steps", "1",
                          "--warmup", "1", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    text = out.read_text()
    assert "| 2 | float32 |" in text
    for name in ("Conv2d.backward", "SGD.step", "im2col_f32", "max_pool_fwd_f32"):
        assert name in text


def test_gpu_check_script_is_valid_bash():
    res = subprocess.run(["bash", "-n", os.path.join(ROOT, "scripts", "gpu_check.sh")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
