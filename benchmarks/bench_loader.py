"""Data-loader throughput: images/s decoded + augmented (§3.1 pipeline) per worker count.

Three workloads:
  (a) SyntheticShapes 32x32 (rendered lazily) with the training transform
      scaled down from the paper's (crop 28, S ~ U[32, 64], i.e. the same
      224 : 256 : 512 ratios), flip, PCA colour shift, mean subtraction;
  (b) an ImageFolder of JPEGs with the paper's transform: S ~ U[256, 512],
      random 224x224 crop, flip, colour shift, mean.  ``--imagefolder DIR``
      uses your own (e.g. an ImageNet subset); otherwise ~500 smooth random
      500x375 JPEGs (about the size of an ImageNet photo) are made in a
      temporary folder;
  (c) an ImageNet-like mix of stored sizes, from 75x56 to 2400x1600 (MIX),
      generated the same way.

For (b) and (c) the loader's path for image files (ImageFolder.open_file:
only the crop is resampled, large JPEGs decoded at a reduced scale, the
float steps fused) is compared with the path before it (decoded arrays,
every step on its own), and with torchvision:

* ``--torchvision-python PY``: torchvision's own ImageFolder and DataLoader
  with the same transforms, run by benchmarks/torchvision_loader.py under the
  Python PY (an environment where torchvision imports; PyPI's torchvision
  does not beside torch 2.13.0+cpu, see docs/benchmarks.md), in the same run:
  per worker count through the loaders, and image by image in one process
  with the contestants interleaved;
* without it, image by image only, the steps torchvision's ImageFolder
  would run (Pillow decode, Resize, RandomCrop, flip, ToTensor, Normalize)
  re-enacted with Pillow and PyTorch in this process.

The consumer does nothing but receive batches, so the figures are the
loader's ceiling.  No timing is asserted anywhere; see docs/benchmarks.md.

    python benchmarks/bench_loader.py [--workers 0 1 2] [--torchvision-python PY]
        [--write-md docs/benchmarks.md]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import command_line, load_average, machine, today, write_section  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minivgg.data import DataLoader, ImageFolder, SyntheticShapes, train_transform  # noqa: E402

# A commonly used ImageNet mean in [0, 1]; the benchmark does not need the exact one.
IMAGENET_MEAN = [0.485, 0.456, 0.406]


# Stored sizes (width, height) of the generated ImageNet-like mix and their
# shares: most photos near 500x375, a tail of small and of large ones.
MIX = [((500, 375), 0.45), ((375, 500), 0.15), ((500, 333), 0.10), ((640, 480), 0.08),
       ((1024, 768), 0.06), ((300, 225), 0.05), ((1600, 1200), 0.04), ((150, 112), 0.03),
       ((2400, 1600), 0.02), ((75, 56), 0.02)]


def make_jpeg_folder(root, count, seed=0, sizes=None):
    """Write ``count`` smooth random JPEGs in 10 class folders, 500x375 or
    drawn from ``sizes`` [((w, h), share)]; returns mean file size (bytes)."""
    rng = np.random.default_rng(seed)
    nbytes = []
    for i in range(count):
        d = os.path.join(root, f"class{i % 10}")
        os.makedirs(d, exist_ok=True)
        w, h = (500, 375) if sizes is None else \
            sizes[rng.choice(len(sizes), p=[p for _, p in sizes])][0]
        # Low-frequency colour field plus mild noise: compresses like a photo,
        # unlike white noise, which would make decoding unrealistically slow.
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        img = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 6, img.shape)
        path = os.path.join(d, f"{i:05d}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        nbytes.append(os.path.getsize(path))
    return float(np.mean(nbytes))


class StepByStep:
    """A Compose run as before the loader's file path: on decoded arrays
    (``ds[i]``), every step on its own (no ``reads_files``)."""

    def __init__(self, compose):
        self.steps = compose.transforms

    def __call__(self, img, rng):
        for t in self.steps:
            img = t(img, rng)
        return img


def torchvision_steps(path, rng, s_range, crop, mean, std, torch):
    """What torchvision's ImageFolder + Resize(S) + RandomCrop + RandomHorizontalFlip
    + ToTensor + Normalize do to one file, re-enacted with Pillow and PyTorch."""
    with open(path, "rb") as f:
        im = Image.open(f).convert("RGB")              # torchvision's default_loader
    s = int(rng.integers(s_range[0], s_range[1] + 1))
    w, h = im.size
    size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
    im = im.resize((size[1], size[0]), Image.BILINEAR)  # Resize on a PIL image
    y, x = int(rng.integers(0, size[0] - crop + 1)), int(rng.integers(0, size[1] - crop + 1))
    im = im.crop((x, y, x + crop, y + crop))
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    t = torch.from_numpy(np.array(im, np.uint8, copy=True)).permute(2, 0, 1).float().div(255)
    return (t - mean) / std


class TorchvisionLoader:
    """benchmarks/torchvision_loader.py on ``root`` under the Python ``python``:
    ``single(n)`` and ``loader(workers, batch, images)`` return (images, seconds)."""

    def __init__(self, python, root):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchvision_loader.py")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([python, script, root], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"torchvision did not start under {python} (see its error above)")
        self.label = json.loads(line)["label"]

    def _ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the torchvision worker stopped on {req} (see its error above)")
        return json.loads(line)

    def single(self, n):
        return n, self._ask(single=n)["seconds"]

    def loader(self, workers, batch, images):
        r = self._ask(loader=workers, batch=batch, images=images)
        return r["images"], r["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def compare_pipelines(ds, images, rounds, tv=None):
    """Images/s of three or four ways to make one training crop, one process,
    interleaved (``tv``: a TorchvisionLoader on the same folder)."""
    tf = train_transform(224, (256, 512), IMAGENET_MEAN)
    old = StepByStep(tf)
    try:
        import torch
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    except ImportError:
        torch = None
    n = min(images, len(ds))
    runs = {"file path (open_file, crop-only resample, reduced-scale decode, fused floats)":
            lambda i, r: tf(ds.open_file(i)[0], r),
            "decoded arrays, step by step (before)": lambda i, r: old(ds[i][0], r)}
    if torch is not None:
        runs["torchvision's steps re-enacted (Pillow + PyTorch)"] = \
            lambda i, r: torchvision_steps(ds.samples[i][0], r, (256, 512), 224, mean, std, torch)
    best = {k: float("inf") for k in runs}
    if tv is not None:
        best[f"{tv.label}: ImageFolder with the same transforms"] = float("inf")
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for i in range(n):
                fn(i, np.random.default_rng(i))
            best[name] = min(best[name], time.perf_counter() - t0)
        if tv is not None:
            name = f"{tv.label}: ImageFolder with the same transforms"
            best[name] = min(best[name], tv.single(n)[1])
    return [(name, n / sec) for name, sec in best.items()]


def measure(dataset, transform, batch_size, workers, max_images):
    """Images/s through DataLoader over the first ``max_images`` images of epoch 0."""
    loader = DataLoader(dataset, batch_size, transform, seed=0, workers=workers)
    n_batches = max(1, min(len(loader), max_images // batch_size))
    seen = 0
    t0 = time.perf_counter()
    it = iter(loader)
    for _ in range(n_batches):
        x, _ = next(it)
        seen += len(x)
    elapsed = time.perf_counter() - t0
    it.close()
    return seen, elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--synthetic-images", type=int, default=2048, help="images timed per run (a)")
    p.add_argument("--synthetic-batch", type=int, default=128)
    p.add_argument("--imagefolder", metavar="DIR", help="JPEG folder for (b); default: generated")
    p.add_argument("--jpeg-count", type=int, default=500, help="JPEGs to generate for (b)")
    p.add_argument("--jpeg-images", type=int, default=256, help="images timed per run (b)")
    p.add_argument("--jpeg-batch", type=int, default=32)
    p.add_argument("--skip-jpeg", action="store_true")
    p.add_argument("--mix-count", type=int, default=0,
                   help="JPEGs of the ImageNet-like mix (c) to generate (0: skip (c))")
    p.add_argument("--mix-images", type=int, default=128, help="images timed per run (c)")
    p.add_argument("--compare-images", type=int, default=64,
                   help="images per round of the one-process pipeline comparison")
    p.add_argument("--torchvision-python", metavar="PY",
                   help="a Python under which torchvision imports: time torchvision's "
                        "ImageFolder and DataLoader too, on (b) and (c)")
    p.add_argument("--write-md", metavar="PATH", help="write the results into PATH's '## Data loader' section")
    a = p.parse_args(argv)
    if a.torchvision_python and not os.path.exists(a.torchvision_python):
        p.error(f"--torchvision-python: no such file: {a.torchvision_python}")

    rows = []
    versus = []     # (workload, workers, our images/s, torchvision's)
    load_before = load_average()

    def record(name, w, batch, seen, dt):
        """Add a row to the table; return its images/s."""
        ips = seen / dt
        rows.append((name, w, batch, seen, ips, ips / max(w, 1)))
        print(f"{name:<40} workers={w}  {ips:8.1f} images/s  ({ips / max(w, 1):7.1f} per worker)",
              flush=True)
        return ips

    def run(name, ds, transform, batch, images, tv=None):
        """Our loader at each worker count; with ``tv``, torchvision's right after it."""
        # One untimed warm-up batch keeps first-call costs (imports, caches) out of the figures.
        measure(ds, transform, batch, 0, batch)
        if tv is not None:
            tv.loader(0, batch, batch)
        for w in a.workers:
            ours = record(name, w, batch, *measure(ds, transform, batch, w, images))
            if tv is not None:
                theirs = record(f"{name}, {tv.label}", w, batch, *tv.loader(w, batch, images))
                versus.append((name, w, ours, theirs))

    syn = SyntheticShapes(max(a.synthetic_images, a.synthetic_batch), image_size=32)
    run("SyntheticShapes 32x32, crop 28, S~U[32,64]", syn,
        train_transform(28, (32, 64), [0.5, 0.5, 0.5]), a.synthetic_batch, a.synthetic_images)

    jpeg_note = mix_note = ""
    compared = []

    def run_folder(root, name, images):
        """(b) and (c): the ImageNet pipeline on a JPEG folder, today's and the old one."""
        ds = ImageFolder(root)
        tf = train_transform(224, (256, 512), IMAGENET_MEAN)
        tv = TorchvisionLoader(a.torchvision_python, root) if a.torchvision_python else None
        try:
            run(name, ds, tf, a.jpeg_batch, min(images, len(ds)), tv)
            run(name + ", before (arrays, step by step)", ds, StepByStep(tf), a.jpeg_batch,
                min(images, len(ds)))
            if a.compare_images:
                compared.append((name, compare_pipelines(ds, a.compare_images, 3, tv)))
        finally:
            if tv is not None:
                tv.close()

    if not a.skip_jpeg:
        with tempfile.TemporaryDirectory() as tmp:
            root = a.imagefolder
            if root is None:
                root = tmp
                t0 = time.perf_counter()
                avg = make_jpeg_folder(root, a.jpeg_count)
                jpeg_note = (f"(b) uses {a.jpeg_count} generated 500x375 JPEGs (quality 90, "
                             f"{avg / 1024:.0f} KiB on average, made in {time.perf_counter() - t0:.1f} s).")
                name = "generated JPEGs 500x375, crop 224, S~U[256,512]"
            else:
                jpeg_note = f"(b) uses the folder {root}."
                name = f"{os.path.basename(os.path.normpath(root))}, crop 224, S~U[256,512]"
            run_folder(root, name, a.jpeg_images)
    if a.mix_count:
        with tempfile.TemporaryDirectory() as root:
            t0 = time.perf_counter()
            avg = make_jpeg_folder(root, a.mix_count, seed=1, sizes=MIX)
            mix_note = (f"(c) uses {a.mix_count} generated JPEGs of the sizes and shares in "
                        f"MIX ({', '.join(f'{w}x{h} {p:.0%}' for (w, h), p in MIX)}; quality 90, "
                        f"{avg / 1024:.0f} KiB on average, made in "
                        f"{time.perf_counter() - t0:.1f} s).")
            run_folder(root, "ImageNet-like mix 75x56..2400x1600, crop 224, S~U[256,512]",
                       a.mix_images)

    if a.write_md:
        cmd = command_line([os.path.relpath(__file__)]
                           + list(sys.argv[1:] if argv is None else argv))
        lines = [
            f"Measured by `benchmarks/bench_loader.py` on {today()}; "
            f"machine: {machine(load=False)}; Pillow {Image.__version__}; "
            f"load average before the run {load_before}, after {load_average()} "
            f"(other work on the machine lowers the figures).",
            "",
            f"Command: `{cmd}`",
            "",
            "Images/s decoded (or rendered) and augmented with the §3.1 training transform, "
            "consumer idle; 'per worker' divides by max(workers, 1) (workers=0 loads in the main process). "
            + jpeg_note,
            "",
            "| workload | workers | batch | images | images/s | images/s per worker |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [f"| {n} | {w} | {b} | {s} | {ips:.1f} | {ipw:.1f} |" for n, w, b, s, ips, ipw in rows]
        if mix_note:
            lines += ["", mix_note]
        if versus:
            lines += ["", "Against torchvision, from the table above (same folder, transforms, batch "
                          "and worker count; each torchvision run right after ours):", "",
                      "| workload | workers | minivgg images/s | torchvision images/s | "
                      "minivgg / torchvision |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {n} | {w} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |"
                      for n, w, ours, theirs in versus]
        for name, res in compared:
            first = res[0][1]
            lines += ["", f"One process, no loader, best of 3 interleaved rounds of "
                          f"{a.compare_images} images: {name}.", "",
                      "| pipeline | images/s | file path's speed-up |", "| --- | ---: | ---: |"]
            lines += [f"| {p} | {ips:.1f} | {first / ips:.2f} |" for p, ips in res]
        write_section(a.write_md, "Data loader", "\n".join(lines))
        print(f"wrote the 'Data loader' section of {a.write_md}")


if __name__ == "__main__":
    main()
