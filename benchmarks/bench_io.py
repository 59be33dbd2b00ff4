"""Loading full-size VGG-16 weights: time and peak memory against reading the file.

Writes a VGG-16 (configuration D, 224x224 crops, 1000 classes, 138,357,544
parameters: 528 MiB of float32) with random weights as .safetensors and as a
torchvision .pth, then measures, each run in a fresh process:

  read file      open(path, "rb").read(): the time and memory floor
  minivgg.io     load_model(path): header, configuration from the shapes,
                 model built, every tensor read into its parameter
  huge pages     the same with NumPy's transparent-huge-page request left on
                 for the parameters (what load_model switches off)
  safetensors    the safetensors package's NumPy API (safe_open, get_tensor
    package      per tensor, copied into the same model), for comparison, with
                 its default memory-mapped backend and with backend="pread"
  torch .pth     load_model on the .pth (torch.load, weights_only=True)

"Peak" is the growth of the process's resident set (VmHWM minus the VmRSS
measured after the imports), which counts memory-mapped file pages too.
"cold" runs first drop the file from the page cache (posix_fadvise
DONTNEED), "warm" runs read it from the cache. Runs of the contestants are
interleaved; the table gives each one's best and median time and largest peak.

With --classify it also times examples/classify.py on the .pth (one 500x375
image, each of the four test protocols at their default scales) and writes
that table to its own section.

    python benchmarks/bench_io.py                       # print
    python benchmarks/bench_io.py --classify --write-md docs/benchmarks.md
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, load_average, machine, today, write_section  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

HEADING = "Loading weights"
CLASSIFY_HEADING = "classify.py on a torchvision VGG-16"
#: Network inputs per image at 3 scales: 2 dense passes (image and flip) per
#: scale, 50 crops per scale, or both.
VIEWS = {"single": 1, "dense": 6, "multicrop": 150, "dense+multicrop": 156}
MODES = ("read", "minivgg", "hugepages", "package", "pread", "pth")


def parse():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help="where to write the weights files (default: a "
                                               "temporary directory, removed at the end)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--classify", action="store_true", help="also time examples/classify.py")
    p.add_argument("--write-md", default=None)
    p.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "CACHE"), help=argparse.SUPPRESS)
    return p.parse_args()


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(mode, path, cache):
    """One measurement in this fresh process; prints JSON."""
    from minivgg.io import load_model
    from minivgg.models import vgg
    if mode in ("package", "pread"):
        from safetensors import safe_open
    if mode == "pth":
        import torch  # noqa: F401
    if cache == "cold":
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    base = status("VmRSS")
    t0 = time.perf_counter()
    if mode == "read":
        with open(path, "rb") as f:
            data = f.read()
        del data
    elif mode in ("package", "pread"):
        model = vgg("D", init=None)
        params = dict(model.named_parameters())
        backend = "pread" if mode == "pread" else "mmap"
        with safe_open(path, framework="np", backend=backend) as f:
            for k in f.keys():
                params[k].data[...] = f.get_tensor(k)
    else:
        if mode == "hugepages":
            import contextlib

            from minivgg.io import weights
            weights._small_pages = contextlib.nullcontext
        model = load_model(path).model
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak": status("VmHWM") - base}))


def measure(mode, path, cache):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, path, cache],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_files(directory):
    from minivgg.io import save_weights
    from minivgg.models import vgg
    model = vgg("D", init=None)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape, dtype=np.float32) * np.float32(0.01)
    st = save_weights(model, os.path.join(directory, "vgg16.safetensors"))
    pth = save_weights(model, os.path.join(directory, "vgg16.pth"))
    return st, pth, model.num_parameters()


def time_classify(pth, directory):
    from PIL import Image
    img = os.path.join(directory, "photo.jpg")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:375, 0:500]
    arr = np.stack([(xx / 2) % 256, (yy / 1.5) % 256, rng.integers(0, 256, (375, 500))], -1)
    Image.fromarray(arr.astype(np.uint8)).save(img, quality=90)
    rows = []
    for protocol in ("single", "dense", "multicrop", "dense+multicrop"):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "classify.py"), img,
                              "--weights", pth, "--cfg", "D", "--protocol", protocol],
                             capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t0
        scales = next(line for line in out.stdout.splitlines() if "test scales" in line)
        top1 = next(line for line in out.stdout.splitlines() if line.strip().startswith("1."))
        rows.append((protocol, scales.split("Q = ")[1], seconds, top1.split(None, 2)[2]))
        print(f"classify.py {protocol}: {seconds:.1f} s ({top1.strip()})", flush=True)
    return rows


def main():
    args = parse()
    if args.child:
        return child(*args.child)
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_io-")
        args.dir = tmp.name
    os.makedirs(args.dir, exist_ok=True)
    load_before = load_average()
    t0 = time.perf_counter()
    st, pth, n_params = make_files(args.dir)
    print(f"wrote {st} and {pth} in {time.perf_counter() - t0:.1f} s", flush=True)
    size = os.path.getsize(st)
    times = {(m, c): [] for m in MODES for c in ("cold", "warm")}
    peaks = {m: 0 for m in MODES}
    for r in range(args.repeats):
        for cache in ("cold", "warm"):
            for mode in MODES:
                res = measure(mode, pth if mode == "pth" else st, cache)
                times[mode, cache].append(res["seconds"])
                peaks[mode] = max(peaks[mode], res["peak"])
                print(f"run {r + 1} {cache} {mode}: {res['seconds']:.3f} s, peak "
                      f"{res['peak'] / 2 ** 20:.0f} MiB", flush=True)
    rows = []
    names = {"read": "read the .safetensors file", "minivgg": "minivgg.io.load_model(.safetensors)",
             "hugepages": "the same, NumPy's huge pages left on",
             "package": "safetensors package (get_tensor, copy), mmap backend",
             "pread": "safetensors package (get_tensor, copy), pread backend",
             "pth": "minivgg.io.load_model(.pth, torch)"}
    for mode in MODES:
        cells = []
        for cache in ("cold", "warm"):
            best, med = min(times[mode, cache]), float(np.median(times[mode, cache]))
            cells += [f"{best:.3f}", f"{best / min(times['read', cache]):.2f}", f"{med:.3f}",
                      f"{med / np.median(times['read', cache]):.2f}"]
        rows.append(f"| {names[mode]} | " + " | ".join(cells)
                    + f" | {peaks[mode] / 2 ** 20:.0f} | {peaks[mode] / size:.2f} |")
    classify_rows = time_classify(pth, args.dir) if args.classify else []
    load_after = load_average()
    text = (
        f"Measured by `benchmarks/bench_io.py` on {today()}; machine: {machine(load=False)}; "
        f"load average before the run {load_before}, after {load_after} (other work on the "
        f"machine slows the figures).\n\n"
        f"Command: `{command_line()}`\n\n"
        f"VGG-16 (configuration D, 224x224, 1000 classes, {n_params:,} parameters) with random "
        f"weights: a {size / 2 ** 20:.0f} MiB .safetensors file ({size:,} bytes) and the same "
        f"weights as a torchvision .pth. {args.repeats} runs of each, each in a fresh process, "
        f"the contestants interleaved; best and median seconds, and each over the same "
        f"statistic of reading the file in the same cache state ('x read'); peak is the largest "
        f"growth of the resident set (VmHWM) during the call over all runs, memory-mapped file "
        f"pages included, and its ratio to the file size.\n\n"
        f"| what | cold best s | x read | cold median s | x read | warm best s | x read "
        f"| warm median s | x read | peak MiB | peak / file |\n"
        f"| --- |" + " ---: |" * 10 + "\n" + "\n".join(rows) + "\n")
    sections = [(HEADING, text)]
    if classify_rows:
        sections.append((CLASSIFY_HEADING, (
            f"Measured by `benchmarks/bench_io.py --classify` on {today()}, in the run above "
            f"(same machine and load).\n\n"
            f"`python examples/classify.py photo.jpg --weights vgg16.pth --cfg D --protocol P` "
            f"on the torchvision-format VGG-16 file above (no code change, no option but the "
            f"protocol), one 500x375 JPEG, the default test scales for torchvision weights; "
            f"wall time of the whole command (start-up, loading, the protocol), NumPy's BLAS "
            f"threads on the shared 2 cores:\n\n"
            f"| protocol | test Q | views | seconds | top-1 (random weights) |\n"
            f"| --- | --- | ---: | ---: | --- |\n"
            + "\n".join(f"| {p} | {q} | {VIEWS[p]} | {s:.1f} | {t} |"
                         for p, q, s, t in classify_rows) + "\n")))
    for heading, body in sections:
        print(f"\n## {heading}\n\n{body}")
        if args.write_md:
            write_section(args.write_md, heading, body)
            print(f"wrote the '{heading}' section of {args.write_md}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
