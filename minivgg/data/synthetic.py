"""SyntheticShapes: the embedded, download-free training set (stand-in for §3.1 data).

The paper trains on ImageNet (ILSVRC-2012); a class room or a CI run cannot
download 140 GB, so the project ships a procedurally generated 10-class image
set that exercises the same pipeline (§3.1 augmentation, §3.2 evaluation).
It is built to need a conv net: each object has a random colour, position,
rotation and a widely varying scale (circumscribed diameter 25% to 90% of the
image side), on a cluttered background (colour gradient, low-frequency colour
blotches, pixel noise, distractor lines and blobs that belong to no class).
A linear classifier on raw pixels does poorly on it (docs/data.md gives the
measured figure) while a person still reads every shape.

Every image is a pure function of ``(seed, split, index)``: it is drawn from
its own generator, so ``ds[i]`` is identical in any process and any order and
the train/val/test splits never share an image.
"""

import math
import mmap

import numpy as np
from PIL import Image, ImageDraw

from .base import Dataset

__all__ = ["SyntheticShapes", "SHAPE_CLASSES"]

SHAPE_CLASSES = [
    "circle", "square", "triangle", "star", "cross",
    "ring", "hexagon", "stripes", "checker", "crescent",
]
_SPLITS = {"train": 0, "val": 1, "test": 2}

# SeedSequence pads short entropy with zeros, so [a, b] and [a, b, 0] give the
# same stream; a fixed stream tag in third place keeps the label stream and
# the per-image streams apart for every index.
_STREAM_LABELS = 1
_STREAM_IMAGE = 2

#: A data set that takes at most this many bytes keeps each image after its
#: first render (48,000 images of 32x32: 147 MB), so that epochs after the
#: first read instead of drawing; bigger ones are drawn on every access.
MEMO_BYTES = 1 << 29


def _shared_memo(n, size):
    """(images, done): an (n, size, size, 3) uint8 array and an (n,) uint8
    flag array in anonymous shared memory, so that the loader's workers,
    forked for each pass, render into the same pages as the parent and the
    workers of later passes (each index is read once per pass, by one
    process). Pages are only allocated when first written."""
    nbytes = n * size * size * 3
    images = np.frombuffer(mmap.mmap(-1, nbytes), np.uint8).reshape(n, size, size, 3)
    return images, np.frombuffer(mmap.mmap(-1, n), np.uint8)

# Object size = circumscribed diameter as a fraction of the image side.
_MIN_SIZE, _MAX_SIZE = 0.25, 0.9


def _labels(n, seed, split_id):
    """Balanced labels: each block of 10 consecutive indices is a permutation.

    Random keys are drawn row by row, so the first rows do not depend on
    ``n``: the label of index i is the same for every dataset length.
    """
    blocks = -(-n // 10)
    keys = np.random.default_rng([seed, split_id, _STREAM_LABELS]).random((blocks, 10))
    return np.argsort(keys, axis=1).reshape(-1)[:n].astype(np.int64)


_interp_cache = {}
_coord_cache = {}


def _centred_coords(size):
    """Pixel-centre coordinates in [-0.5, 0.5], float32, cached per size."""
    t = _coord_cache.get(size)
    if t is None:
        t = _coord_cache[size] = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    return t


def _interp_matrix(size, k):
    """(size, k) float32 matrix that linearly upsamples k samples to size pixels."""
    key = (size, k)
    m = _interp_cache.get(key)
    if m is None:
        pos = (np.arange(size) + 0.5) / size * (k - 1)
        lo = np.minimum(np.floor(pos).astype(int), k - 2)
        frac = pos - lo
        m = np.zeros((size, k), np.float32)
        m[np.arange(size), lo] = 1 - frac
        m[np.arange(size), lo + 1] = frac
        _interp_cache[key] = m
    return m


def _background(rng, size):
    """Cluttered background, (size, size, 3) float32 in 0..255 units."""
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    c1 = rng.uniform(0, 255, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    t = _centred_coords(size)
    ramp = (math.cos(theta) * t[None, :] + math.sin(theta) * t[:, None]) * math.sqrt(2) + 0.5
    bg = c0 + (c1 - c0) * ramp[:, :, None]
    # Low-frequency colour blotches: a coarse random grid, linearly upsampled.
    k = 4
    m = _interp_matrix(size, k)
    grid = rng.normal(0, 35, (k, k, 3)).astype(np.float32)
    rows = (m @ grid.reshape(k, k * 3)).reshape(size, k, 3)
    blotch = m @ rows  # (x, j) @ (y, j, c) -> (y, x, c); einsum is 5x slower here
    return (bg + blotch).astype(np.float32)


def _pick_colour(rng, avoid):
    """A random RGB colour at least ~110/255 away from ``avoid`` so the object stands out."""
    for _ in range(8):
        c = rng.uniform(0, 255, 3)
        if np.linalg.norm(c - avoid) > 110:
            return c
    # Rare with random colours; fall back to the complementary colour.
    return 255.0 - avoid


def _rotated(points, angle, centre, scale):
    """Rotate (N, 2) unit-coordinate points by angle, scale and move to centre."""
    c, s = math.cos(angle), math.sin(angle)
    pts = np.asarray(points, np.float64) @ np.array([[c, s], [-s, c]]) * scale + centre
    return [tuple(p) for p in pts]


def _regular(n, r=1.0, phase=0.0):
    k = np.arange(n) * 2 * math.pi / n + phase
    return np.stack([np.cos(k), np.sin(k)], 1) * r


def _rect(u0, v0, u1, v1):
    return [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]


def _draw_object(draw, label, centre, r, angle):
    """Draw class ``label`` into the L-mode mask: 255 = object, 0 = hole.

    Shapes are scaled so their apparent sizes are comparable for a given
    circumradius ``r`` (in supersampled pixels).
    """
    cx, cy = centre
    name = SHAPE_CLASSES[label]

    def disc(x, y, rad, fill):
        draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=fill)

    if name == "circle":
        disc(cx, cy, 0.85 * r, 255)
    elif name == "square":
        draw.polygon(_rotated(_regular(4, phase=math.pi / 4), angle, centre, r), fill=255)
    elif name == "triangle":
        draw.polygon(_rotated(_regular(3), angle, centre, r), fill=255)
    elif name == "hexagon":
        draw.polygon(_rotated(_regular(6), angle, centre, r), fill=255)
    elif name == "star":
        pts = _regular(10)
        pts[1::2] *= 0.42
        draw.polygon(_rotated(pts, angle, centre, r), fill=255)
    elif name == "cross":
        w = 0.3
        pts = [(w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1),
               (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1)]
        draw.polygon(_rotated(pts, angle, centre, r), fill=255)
    elif name == "ring":
        disc(cx, cy, 0.9 * r, 255)
        disc(cx, cy, 0.5 * r, 0)
    elif name == "crescent":
        disc(cx, cy, 0.9 * r, 255)
        off = 0.42 * r
        disc(cx + off * math.cos(angle), cy + off * math.sin(angle), 0.72 * r, 0)
    elif name == "stripes":
        h = 0.72  # half side of the square the three bars fill
        bw = 2 * h / 5
        for j in (0, 2, 4):
            v0 = -h + j * bw
            draw.polygon(_rotated(_rect(-h, v0, h, v0 + bw), angle, centre, r), fill=255)
    elif name == "checker":
        h = 0.72
        cw = 2 * h / 3
        for iu in range(3):
            for iv in range(3):
                if (iu + iv) % 2 == 0:
                    u0, v0 = -h + iu * cw, -h + iv * cw
                    draw.polygon(_rotated(_rect(u0, v0, u0 + cw, v0 + cw), angle, centre, r), fill=255)
    else:  # pragma: no cover - SHAPE_CLASSES and this table are edited together
        raise AssertionError(name)


def _blob(rng, centre, r):
    """Irregular polygon: a distractor that matches no class shape."""
    n = int(rng.integers(6, 10))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = r * rng.uniform(0.45, 1.0, n)
    return [(centre[0] + a * math.cos(t), centre[1] + a * math.sin(t)) for a, t in zip(rad, ang)]


def render_shape(rng, label, size):
    """Render one image of class ``label``: (size, size, 3) uint8 RGB.

    ``rng`` (a numpy Generator) supplies every random choice, so the same
    generator state always gives the same image.
    """
    # Supersampling then box-averaging gives antialiased edges cheaply.
    ss = 4 if size <= 64 else 2
    big = size * ss

    bg = _background(rng, size)
    bg_mean = bg.reshape(-1, 3).mean(0)
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).resize((big, big), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)

    def distractor_colour():
        # Halfway to the background keeps clutter visibly weaker than the object.
        return tuple(int(v) for v in 0.5 * rng.uniform(0, 255, 3) + 0.5 * bg_mean)

    def line(on, fill):
        p = rng.uniform(0, big, 4)
        # Width in units of a 32-pixel image, so clutter looks alike at any resolution.
        width = max(1, int(ss * rng.uniform(0.7, 1.6) * size / 32))
        ImageDraw.Draw(on).line(list(p), fill=fill, width=width)

    for _ in range(int(rng.integers(0, 4))):
        c = rng.uniform(0, big, 2)
        draw.polygon(_blob(rng, c, big * rng.uniform(0.04, 0.11)), fill=distractor_colour())
    for _ in range(int(rng.integers(1, 4))):
        line(canvas, distractor_colour())
    out = np.array(canvas.reduce(ss), dtype=np.float32)

    # The object: random scale, position (fully inside), rotation and colour.
    d = rng.uniform(_MIN_SIZE, _MAX_SIZE)
    r = 0.5 * d * big
    centre = rng.uniform(r, big - r, 2)
    angle = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (big, big), 0)
    _draw_object(ImageDraw.Draw(mask), label, centre, r, angle)
    # Compositing at the final resolution with the box-averaged mask equals
    # compositing the supersampled canvas (both are linear) and is ~10x
    # cheaper than Image.paste with a mask.
    alpha = np.asarray(mask.reduce(ss), dtype=np.float32)[:, :, None] * np.float32(1 / 255)

    # A gentle two-colour gradient inside the object, so it is not one flat colour.
    col = _pick_colour(rng, bg_mean)
    col2 = np.clip(col + rng.normal(0, 25, 3), 0, 255)
    t = _centred_coords(size) + np.float32(0.5)
    if rng.random() < 0.5:
        t = t[:, None, None]
    else:
        t = t[None, :, None]
    tex = (col + (col2 - col) * t).astype(np.float32)
    out += (tex - out) * alpha

    # A line occasionally crosses in front of the object (partial occlusion).
    if rng.random() < 0.3:
        front = Image.new("L", (big, big), 0)
        line(front, 255)
        a2 = np.asarray(front.reduce(ss), dtype=np.float32)[:, :, None] * np.float32(1 / 255)
        out += (np.asarray(distractor_colour(), np.float32) - out) * a2

    sigma = np.float32(rng.uniform(2, 12))
    out += rng.standard_normal(out.shape, dtype=np.float32) * sigma
    out += np.float32(0.5)  # round to nearest on the cast below
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


class SyntheticShapes(Dataset):
    """Procedural 10-class shapes data set; ``ds[i] -> (img, label)``.

    Args:
        n: number of images (>= 0).
        image_size: side of the square images, >= 8 (32 like CIFAR, 224...).
        seed: non-negative int; different seeds give different data sets.
        split: "train", "val" or "test"; splits never share an image.
        cache: if True, render every image now into ``ds.images``, one
            (n, size, size, 3) uint8 array (``n * size * size * 3`` bytes),
            instead of lazily in ``ds[i]`` (``ds.images`` is then None).
            Lazily rendered images are kept after their first render when
            the whole set fits MEMO_BYTES (in memory the loader's forked
            workers share), so each is drawn once, not once per epoch; they
            are handed out as read-only arrays.

    Returns per item: ``img`` (image_size, image_size, 3) uint8 RGB and
    ``label`` an int in 0..9, name in ``ds.classes``.  ``ds.labels`` is the
    (n,) int64 array of all labels (computed without rendering); each block
    of 10 consecutive indices holds each class once.
    """

    classes = list(SHAPE_CLASSES)

    def __init__(self, n, image_size=32, seed=0, split="train", cache=False):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"SyntheticShapes: n must be a non-negative int, got {n!r}")
        if not isinstance(image_size, (int, np.integer)) or image_size < 8:
            raise ValueError(f"SyntheticShapes: image_size must be an int >= 8, got {image_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SyntheticShapes: seed must be a non-negative int, got {seed!r}")
        if split not in _SPLITS:
            raise ValueError(f"SyntheticShapes: split must be one of {list(_SPLITS)}, got {split!r}")
        self.n = int(n)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.split = split
        self._split_id = _SPLITS[split]
        self.classes = list(SHAPE_CLASSES)
        self.labels = _labels(self.n, self.seed, self._split_id)
        self.images = None
        self._memo = self._done = None
        if cache:
            arr = np.empty((self.n, self.image_size, self.image_size, 3), np.uint8)
            for i in range(self.n):
                arr[i] = self._render(i)
            self.images = arr
        elif 0 < self.n * self.image_size ** 2 * 3 <= MEMO_BYTES:
            self._memo, self._done = _shared_memo(self.n, self.image_size)

    def __len__(self):
        return self.n

    def _render(self, i):
        rng = np.random.default_rng([self.seed, self._split_id, _STREAM_IMAGE, i])
        return render_shape(rng, int(self.labels[i]), self.image_size)

    def _get(self, i):
        if self.images is not None:
            img = self.images[i]
        elif self._memo is not None:
            img = self._memo[i]
            if not self._done[i]:
                img[...] = self._render(i)
                self._done[i] = 1
        else:
            return self._render(i), int(self.labels[i])
        img = img.view()
        img.flags.writeable = False     # a kept image is shared: read-only to its users
        return img, int(self.labels[i])

    def __getstate__(self):
        # A pickled copy (a spawned worker) draws its images again: shared
        # memory does not travel by pickle.
        state = dict(self.__dict__)
        state["_memo"] = state["_done"] = None
        return state

    def describe(self, i):
        i = self._index(i)
        return (f"SyntheticShapes(seed={self.seed}, split={self.split!r}, "
                f"size={self.image_size})[{i}] ({self.classes[self.labels[i]]})")

    def __repr__(self):
        return (f"SyntheticShapes(n={self.n}, image_size={self.image_size}, "
                f"seed={self.seed}, split={self.split!r}, cached={self.images is not None})")
