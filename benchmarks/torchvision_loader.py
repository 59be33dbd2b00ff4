"""torchvision's ImageFolder and DataLoader with the transforms of §3.1, timed
on request: the other side of bench_loader.py's loader comparison.

It runs under whichever Python has torchvision (often another environment:
torchvision's PyPI wheels need the torch build they were made for), so it
imports nothing from minivgg, and bench_loader.py starts it as

    PYTHON benchmarks/torchvision_loader.py ROOT

ROOT is an ImageFolder tree of JPEGs. The transforms match the training
transform of minivgg.data.train_transform(224, (256, 512), mean):
shorter side rescaled to S ~ U[256, 512] (bilinear), random 224x224 crop,
random horizontal flip, to [0, 1] floats, the PCA colour shift of §3.1
(AlexNet's eigenvalues and eigenvectors), mean subtracted. torchvision has
no scale jittering or PCA shift of its own, so those two are small
transforms here, written with torchvision's functional API and torch.

Requests, one JSON object per line on stdin, answered by one JSON line:
  {"single": N}  -> {"seconds": s}: dataset[i] for i < N in this process
  {"loader": W, "batch": B, "images": I} -> {"seconds": s, "images": n}:
      DataLoader(shuffle, W workers) until I images, iterator creation
      (and so worker start-up) included, as bench_loader.measure times ours
The first line it prints is {"label": "torchvision X (torch Y)"}.
"""
import json
import random
import sys
import time

# AlexNet's RGB eigenvalues and eigenvectors (columns) of ImageNet pixels in
# [0, 1] units, as minivgg.data.transforms uses them.
EIGVAL = [0.2175, 0.0188, 0.0045]
EIGVEC = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
MEAN = [0.485, 0.456, 0.406]


def build(root):
    import torch
    import torchvision
    from torchvision import datasets, transforms as T
    from torchvision.transforms import functional as TF

    eigval, eigvec = torch.tensor(EIGVAL), torch.tensor(EIGVEC)

    class RandomShorterSide:
        """Resize the shorter side to S ~ U[lo, hi] (integers, both ends included)."""

        def __init__(self, lo, hi):
            self.lo, self.hi = lo, hi

        def __call__(self, img):
            return TF.resize(img, random.randint(self.lo, self.hi),
                             interpolation=T.InterpolationMode.BILINEAR)

    def pca_shift(t, alphastd=0.1):
        alpha = torch.randn(3) * alphastd
        return t + (eigvec @ (alpha * eigval)).view(3, 1, 1)

    tf = T.Compose([RandomShorterSide(256, 512), T.RandomCrop(224), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Lambda(pca_shift), T.Normalize(MEAN, [1.0, 1.0, 1.0])])
    label = f"torchvision {torchvision.__version__} (torch {torch.__version__})"
    return datasets.ImageFolder(root, transform=tf), label


def main(root):
    import torch
    torch.set_num_threads(1)          # one core per worker, as minivgg's loader
    ds, label = build(root)
    print(json.dumps({"label": label}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if "single" in req:
            t0 = time.perf_counter()
            for i in range(min(req["single"], len(ds))):
                ds[i]
            print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
        else:
            loader = torch.utils.data.DataLoader(ds, batch_size=req["batch"], shuffle=True,
                                                 num_workers=req["loader"])
            batches = max(1, min(len(loader), req["images"] // req["batch"]))
            seen = 0
            t0 = time.perf_counter()
            it = iter(loader)
            for _ in range(batches):
                x, _ = next(it)
                seen += len(x)
            seconds = time.perf_counter() - t0
            del it
            print(json.dumps({"seconds": seconds, "images": seen}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: torchvision_loader.py ROOT  (an ImageFolder tree of images)")
    main(sys.argv[1])
