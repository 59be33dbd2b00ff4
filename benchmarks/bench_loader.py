"""Data-loader throughput: images/s decoded + augmented (§3.1 pipeline) per worker count.

Two workloads:
  (a) SyntheticShapes 32x32 (rendered lazily) with the training transform
      scaled down from the paper's (crop 28, S ~ U[32, 64], i.e. the same
      224 : 256 : 512 ratios), flip, PCA colour shift, mean subtraction;
  (b) an ImageFolder of JPEGs with the paper's transform: S ~ U[256, 512],
      random 224x224 crop, flip, colour shift, mean.  ``--imagefolder DIR``
      uses your own (e.g. an ImageNet subset); otherwise ~500 smooth random
      500x375 JPEGs (about the size of an ImageNet photo) are made in a
      temporary folder.

The consumer does nothing but receive batches, so the figures are the
loader's ceiling.  No timing is asserted anywhere; see docs/benchmarks.md.

    python benchmarks/bench_loader.py [--workers 0 1 2] [--write-md docs/benchmarks.md]
"""

import argparse
import os
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


def make_jpeg_folder(root, count, seed=0):
    """Write ``count`` smooth random 500x375 JPEGs in 10 class folders; returns mean file size (bytes)."""
    rng = np.random.default_rng(seed)
    sizes = []
    for i in range(count):
        d = os.path.join(root, f"class{i % 10}")
        os.makedirs(d, exist_ok=True)
        # Low-frequency colour field plus mild noise: compresses like a photo,
        # unlike white noise, which would make decoding unrealistically slow.
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        img = np.asarray(coarse.resize((500, 375), Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 6, img.shape)
        path = os.path.join(d, f"{i:05d}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        sizes.append(os.path.getsize(path))
    return float(np.mean(sizes))


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
    p.add_argument("--write-md", metavar="PATH", help="write the results into PATH's '## Data loader' section")
    a = p.parse_args(argv)

    rows = []
    load_before = load_average()

    def run(name, ds, transform, batch, images):
        # One untimed warm-up batch keeps first-call costs (imports, caches) out of the figures.
        measure(ds, transform, batch, 0, batch)
        for w in a.workers:
            seen, dt = measure(ds, transform, batch, w, images)
            ips = seen / dt
            rows.append((name, w, batch, seen, ips, ips / max(w, 1)))
            print(f"{name:<40} workers={w}  {ips:8.1f} images/s  ({ips / max(w, 1):7.1f} per worker)",
                  flush=True)

    syn = SyntheticShapes(max(a.synthetic_images, a.synthetic_batch), image_size=32)
    run("SyntheticShapes 32x32, crop 28, S~U[32,64]", syn,
        train_transform(28, (32, 64), [0.5, 0.5, 0.5]), a.synthetic_batch, a.synthetic_images)

    jpeg_note = ""
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
            ds = ImageFolder(root)
            run(name, ds, train_transform(224, (256, 512), IMAGENET_MEAN), a.jpeg_batch,
                min(a.jpeg_images, len(ds)))

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
        write_section(a.write_md, "Data loader", "\n".join(lines))
        print(f"wrote the 'Data loader' section of {a.write_md}")


if __name__ == "__main__":
    main()
