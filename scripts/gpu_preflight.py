"""Can this machine run minivgg's tests? The first stage of scripts/gpu_check.sh,
for a lent GPU machine that reaches no package registry.

    python scripts/gpu_preflight.py [--wheels wheels] [--target .gpu_site]
                                    [--collect] [--require-gpu]

1. Which of the modules the tests import are there (numpy, Pillow, tqdm,
   pytest are needed; threadpoolctl, matplotlib, PyTorch, mpi4py, ... are
   optional: the tests that need one skip without it).
2. Those missing that the wheel folder (made by scripts/gpu_wheels.sh
   elsewhere) provides are installed from it, offline, into ``--target``;
   put that folder on PYTHONPATH afterwards (gpu_check.sh does).
3. The GPU side: CuPy and its devices, NCCL, mpiexec, g++ and its
   AddressSanitizer runtime (the emulated device and the sanitizer test).
4. With ``--collect``: pytest collects tests/cuda and tests/distributed, then
   the whole suite, without a collection error (a module that fails to
   import would stop pytest before any test runs).

Exit status 0 when the tests can run: every needed module imports, (with
``--require-gpu``) CuPy sees a GPU, and nothing fails to collect. Each line
it prints starts with ok, missing, installed, note or FAIL.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: module -> the distribution providing it; needed by the GPU tests (the
#: trainer's synthetic data and progress bars) and by pytest itself.
NEEDED = {"numpy": "numpy", "PIL": "pillow", "tqdm": "tqdm", "pytest": "pytest"}
#: Optional: tests needing one of these skip without it.
OPTIONAL = {"threadpoolctl": "threadpoolctl", "matplotlib": "matplotlib", "torch": "torch",
            "mpi4py": "mpi4py", "safetensors": "safetensors", "onnx": "onnx",
            "onnxruntime": "onnxruntime"}

PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        m = importlib.import_module(name)
        out[name] = [True, str(getattr(m, "__version__", "")), str(getattr(m, "__file__", ""))]
    except Exception as e:  # noqa: BLE001
        out[name] = [False, f"{type(e).__name__}: {e}", ""]
print(json.dumps(out))
"""

GPU_PROBE = """
import json
out = {}
try:
    import cupy
    out["cupy"] = cupy.__version__ + (" (the CuPy stand-in)" if getattr(cupy, "STANDIN", 0) else "")
    try:
        out["devices"] = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001
        out["devices"] = 0
        out["device_error"] = f"{type(e).__name__}: {e}"
    try:
        from cupy.cuda import nccl
        out["nccl"] = nccl.get_version() if nccl.available else None
    except Exception as e:  # noqa: BLE001
        out["nccl"] = None
except Exception as e:  # noqa: BLE001
    out["cupy"] = None
    out["cupy_error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def env_with(target):
    env = dict(os.environ)
    env.pop("MINIVGG_CI", None)  # what would skip is listed, not an error here
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for p in (ROOT, target):
        if p and p not in parts:
            parts.insert(0, p)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def probe(modules, target):
    res = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True,
                         text=True, env=env_with(target), timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"the import probe failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def wheel_names(folder):
    """{distribution name (normalised): file} of the wheels in ``folder``."""
    if not folder or not os.path.isdir(folder):
        return {}
    return {f.split("-")[0].lower().replace("_", "-"): f
            for f in sorted(os.listdir(folder)) if f.endswith(".whl")}


def install(dists, folder, target):
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-index", "--find-links", folder, "--target", target, *dists]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return res.returncode == 0, (res.stdout + res.stderr)[-2000:]


def collect(paths, target, label):
    """Errors pytest meets collecting ``paths`` (an empty list: none)."""
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *paths],
                         cwd=ROOT, capture_output=True, text=True, env=env_with(target),
                         timeout=600)
    lines = res.stdout.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("ERROR ")]
    summary = lines[-1] if lines else res.stderr[-500:]
    if res.returncode not in (0, 5) and not errors:  # 5: nothing collected
        errors = [f"pytest exited {res.returncode}: {summary}"]
    print(f"{'ok' if not errors else 'FAIL':<9} collecting {label}: {summary}")
    for e in errors:
        print(f"          {e}")
    return errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheels", default=os.path.join(ROOT, "wheels"),
                   help="the folder scripts/gpu_wheels.sh filled (default: wheels/)")
    p.add_argument("--target", default=os.path.join(ROOT, ".gpu_site"),
                   help="where to install what the folder provides (default: .gpu_site/)")
    p.add_argument("--collect", action="store_true",
                   help="also check that pytest collects the suite without an error")
    p.add_argument("--require-gpu", action="store_true",
                   help="fail when CuPy sees no GPU")
    p.add_argument("--quick", action="store_true",
                   help="only the needed modules and their install (what gpu_check.sh does "
                        "before stages other than preflight)")
    a = p.parse_args(argv)
    failed = False
    print(f"ok        Python {sys.version.split()[0]} ({sys.executable})")
    if sys.version_info < (3, 10):
        print("FAIL      minivgg needs Python >= 3.10")
        failed = True

    optional = {} if a.quick else OPTIONAL
    found = probe(list(NEEDED) + list(optional), a.target)
    wheels = wheel_names(a.wheels)
    wanted = [m for m, (ok, _, _) in found.items() if not ok]
    from_folder = [m for m in wanted if {**NEEDED, **OPTIONAL}[m] in wheels]
    if from_folder:
        dists = [{**NEEDED, **OPTIONAL}[m] for m in from_folder]
        os.makedirs(a.target, exist_ok=True)
        ok, log = install(dists, a.wheels, a.target)
        print(f"{'installed' if ok else 'FAIL':<9} {', '.join(dists)} from {a.wheels} into "
              f"{a.target}" + ("" if ok else f":\n{log}"))
        failed |= not ok
        found.update(probe(from_folder, a.target))
    for table, needed in ((NEEDED, True), (optional, False)):
        for m, dist in table.items():
            ok, version, where = found[m]
            if ok:
                print(f"ok        {m} ({dist}) {version}")
            elif needed:
                why = ("its wheel there did not install (see above)" if dist in wheels else
                       f"and not in the wheel folder {a.wheels}: run scripts/gpu_wheels.sh "
                       f"where PyPI is reachable and carry wheels/ with the call")
                print(f"FAIL      {m} ({dist}) is missing, {why} ({version})")
                failed = True
            else:
                print(f"missing   {m} ({dist}): the tests that need it skip")

    if a.quick:
        print("preflight: " + ("FAILED" if failed else "ok"))
        return 1 if failed else 0
    gpu = json.loads(subprocess.run([sys.executable, "-c", GPU_PROBE], capture_output=True,
                                    text=True, env=env_with(a.target),
                                    timeout=300).stdout.strip().splitlines()[-1])
    if gpu.get("cupy") is None:
        print(f"missing   CuPy ({gpu.get('cupy_error')}): every GPU test skips")
    else:
        n = gpu.get("devices", 0)
        print(f"{'ok' if n else 'missing':<9} CuPy {gpu['cupy']}, {n} GPU(s)"
              + (f" ({gpu['device_error']})" if "device_error" in gpu else ""))
        print(f"{'ok' if gpu.get('nccl') else 'missing':<9} NCCL {gpu.get('nccl')}")
    if a.require_gpu and not gpu.get("devices"):
        print("FAIL      no GPU visible: the GPU tests would all skip")
        failed = True
    mpiexec = shutil.which("mpiexec") or (
        os.path.join(os.path.dirname(sys.executable), "mpiexec")
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), "mpiexec")) else None)
    print(f"{'ok' if mpiexec else 'missing':<9} mpiexec {mpiexec or '(the MPI tests skip)'}")
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    print(f"{'ok' if cxx else 'missing':<9} g++ {cxx or '(the emu device and its tests skip)'}")
    if cxx:
        asan = subprocess.run([cxx, "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
        print(f"{'ok' if os.path.isabs(asan) else 'missing':<9} libasan {asan}")

    if a.collect and not failed:
        failed |= bool(collect(["tests/cuda", "tests/distributed"], a.target,
                               "tests/cuda and tests/distributed"))
        failed |= bool(collect(["tests"], a.target, "the whole suite"))
    print("preflight: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
