"""The suite's skip policy (tests/conftest.py): under MINIVGG_CI=1 a skip
fails the run unless it needs a GPU; every skip is listed with its reason."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SAMPLE = '''
import pytest

def test_passes():
    pass

@pytest.mark.needs_gpu
def test_marked_for_gpu():
    pass

def test_gpu_reason():
    pytest.skip("needs a GPU: none in this sample")
'''

OTHER_SKIP = '''
import pytest

def test_needs_mpi():
    pytest.skip("mpi4py is not installed")
'''

MODULE_SKIP = '''
import pytest

pytest.importorskip("a_module_that_does_not_exist_anywhere", reason="the frobnicator is absent")

def test_never_collected():
    pass
'''


def run_sample(tmp_path, files, ci):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    shutil.copy(os.path.join(HERE, "conftest.py"), tmp_path / "conftest.py")
    env = dict(os.environ)
    env.pop("MINIVGG_CI", None)
    if ci:
        env["MINIVGG_CI"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_gpu_skips_are_allowed_in_ci(tmp_path):
    rc, out = run_sample(tmp_path, {"test_sample.py": SAMPLE}, ci=True)
    assert rc == 0, out
    assert "needs a GPU: none in this sample" in out  # -rs lists the reason


def test_other_skips_fail_in_ci_only(tmp_path):
    files = {"test_sample.py": SAMPLE, "test_other.py": OTHER_SKIP, "test_mod.py": MODULE_SKIP}
    reasons = ["mpi4py is not installed", "the frobnicator is absent"]
    rc, out = run_sample(tmp_path, files, ci=False)
    assert rc == 0, out
    assert all(r in out for r in reasons)  # visible even outside CI
    rc, out = run_sample(tmp_path, files, ci=True)
    assert rc == 1, out
    assert "skips not allowed under MINIVGG_CI=1" in out
    flagged = [line for line in out.splitlines() if line.startswith("SKIPPED test_")]
    assert len(flagged) == 2, out  # the two GPU skips are not flagged
    for r in reasons:
        assert any(r in line for line in flagged), out
