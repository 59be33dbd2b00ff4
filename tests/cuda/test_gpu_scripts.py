"""The GPU benchmark and check scripts run end to end here on the emulated
device (at a tiny size), so a lent GPU's few minutes are not lost to a bug
in them."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The tests that run gpu_check.sh cannot run inside its own suite stage (the
#: script refuses to start inside itself, so that it never recurses).
runs_gpu_check = pytest.mark.skipif(
    bool(os.environ.get("MINIVGG_IN_GPU_CHECK")),
    reason="runs scripts/gpu_check.sh, and this run is that script's own suite stage")


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


# ---------------------------------------------------------------------------
# scripts/gpu_check.sh on a machine that lacks Pillow, tqdm and matplotlib
# ---------------------------------------------------------------------------

BLOCKER = os.path.join(ROOT, "tests", "cuda", "import_blocker")
BLOCKED = "PIL,tqdm,matplotlib"


def repack(dist, folder):
    """A wheel of installed distribution ``dist``, made from its installed
    files (for this interpreter), as scripts/gpu_wheels.sh would download."""
    import base64
    import hashlib
    import zipfile
    from importlib import metadata
    d = metadata.distribution(dist)
    tags = [ln.split(":", 1)[1].strip() for ln in d.read_text("WHEEL").splitlines()
            if ln.startswith("Tag:")]
    name = d.metadata["Name"].replace("-", "_")
    path = os.path.join(folder, f"{name}-{d.version}-{tags[0]}.whl")
    os.makedirs(folder, exist_ok=True)
    record, rec_name = [], None
    with zipfile.ZipFile(path, "w") as z:
        for f in d.files:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel:
                continue
            if rel.endswith(".dist-info/RECORD"):
                rec_name = rel
                continue
            data = open(d.locate_file(f), "rb").read()
            z.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{rel},sha256={digest.decode()},{len(data)}")
        z.writestr(rec_name, "\n".join(record + [f"{rec_name},,"]) + "\n")
    return path


def bare_machine(tmp_path, wheels):
    """The environment of gpu_check.sh on a machine without Pillow, tqdm and
    matplotlib, whose wheel folder is ``wheels``."""
    site = tmp_path / "site"
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, OUT=str(tmp_path / "out"), GPU_CHECK_WHEELS=str(wheels),
                GPU_CHECK_SITE=str(site), GPU_CHECK_REQUIRE_GPU="0",
                MINIVGG_BLOCK_IMPORTS=BLOCKED, MINIVGG_BLOCK_ALLOW=str(site),
                MINIVGG_CACHE_DIR=os.environ.get("MINIVGG_CACHE_DIR", ""),
                PYTHONPATH=os.pathsep.join([BLOCKER, ROOT] + rest))


def gpu_check(env, *stages, timeout=600):
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), *stages],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_blocker_really_blocks(tmp_path):
    env = bare_machine(tmp_path, tmp_path / "none")
    for mod in BLOCKED.split(","):
        res = subprocess.run([sys.executable, "-c", f"import {mod}"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and "blocked for this test" in res.stderr, mod


@runs_gpu_check
def test_gpu_check_preflight_installs_what_a_bare_machine_lacks(tmp_path):
    wheels = tmp_path / "wheels"
    with open(os.path.join(ROOT, "scripts", "gpu_requirements.txt")) as f:
        wanted = [ln.split(">")[0].split("=")[0].strip() for ln in f
                  if ln.strip() and not ln.startswith("#")]
    assert {"pillow", "tqdm"} <= set(wanted)
    for dist in wanted:
        repack(dist, wheels)
    env = bare_machine(tmp_path, wheels)
    res = gpu_check(env, "preflight")
    text = (tmp_path / "out" / "preflight.txt").read_text()
    assert res.returncode == 0, res.stdout[-2000:] + text[-4000:]
    assert "installed pillow, tqdm from" in text
    assert "missing   matplotlib (matplotlib): the tests that need it skip" in text
    assert "ok        collecting tests/cuda and tests/distributed" in text
    assert "ok        collecting the whole suite" in text
    assert "preflight: exit 0" in (tmp_path / "out" / "summary.txt").read_text()
    # What it installed is what the later stages import.
    res = subprocess.run([sys.executable, "-c", "import PIL, tqdm, minivgg.train; "
                          "print(PIL.__file__)"], env=dict(env, PYTHONPATH=os.pathsep.join(
                              [str(tmp_path / "site"), env["PYTHONPATH"]])),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and str(tmp_path / "site") in res.stdout, res.stderr[-2000:]


@runs_gpu_check
def test_without_its_wheels_the_preflight_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    res = gpu_check(bare_machine(tmp_path, tmp_path / "empty"), "preflight")
    text = (tmp_path / "out" / "preflight.txt").read_text()
    assert res.returncode != 0
    assert "FAIL      PIL (pillow) is missing, and not in the wheel folder" in text
    assert "scripts/gpu_wheels.sh" in text and "preflight: FAILED" in text


@runs_gpu_check
def test_a_stage_cut_short_keeps_its_output_and_the_budget_names_what_is_left(tmp_path):
    env = dict(bare_machine(tmp_path, tmp_path / "none"), MINIVGG_BLOCK_IMPORTS="")
    res = gpu_check(dict(env, GPU_CHECK_BUDGET="45"), "suite")   # minutes of tests in < 35 s
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert res.returncode != 0
    assert "suite: started, limit " in summary and "-> suite.txt" in summary
    assert "suite: exit 124 after" in summary and "cut short by its limit" in summary
    suite = (tmp_path / "out" / "suite.txt").read_text()
    assert " PASSED" in suite   # what ran before the cut
    # Its own tests of gpu_check.sh skip there: the script does not start inside itself.
    assert ("test_a_stage_cut_short_keeps_its_output_and_the_budget_names_what_is_left SKIPPED"
            in suite)
    res = gpu_check(dict(env, GPU_CHECK_BUDGET="5"), "bench")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert res.returncode != 0
    assert "bench: left out" in summary and "bash scripts/gpu_check.sh bench" in summary
    assert gpu_check(env, "bogus").returncode == 2


@runs_gpu_check
def test_gpu_check_does_not_start_inside_itself(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), MINIVGG_IN_GPU_CHECK="1")
    res = gpu_check(env, "versions")
    assert res.returncode == 2
    assert "gpu_check.sh is running already" in res.stderr
    assert not (tmp_path / "out").exists()
