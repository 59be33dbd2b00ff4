"""Training-time augmentation and input normalisation of the VGG paper (§3.1, §3.2).

§3.1: "To obtain the fixed-size 224x224 ConvNet input images, they were
randomly cropped from rescaled training images (one crop per image per SGD
iteration). To further augment the training set, the crops underwent random
horizontal flipping and random RGB colour shift [Krizhevsky et al., 2012]."
The rescaling is isotropic, the smallest side becoming the training scale S,
either fixed (256 or 384) or jittered per image in [S_min, S_max] = [256, 512].
§2.1: "The only pre-processing we do is subtracting the mean RGB value,
computed on the training set, from each pixel."

Every transform is called as ``t(img, rng)``, ``rng`` a numpy Generator that
supplies all its randomness, so a sample's augmentation is a pure function of
the generator the loader derives from (seed, epoch, index).  The pipeline is:

    HWC uint8 --RescaleShorter--> RandomCrop --> RandomHorizontalFlip
      --ToFloat--> HWC float32 in [0, 1] --PCAColourShift--> SubtractMean
      [--ScalePixels(255)-->] --ToCHW--> CHW float32 (C=3)

Pixel units.  minivgg feeds the network [0, 1] units minus the mean by
default.  The paper's Caffe networks read 0-255 pixel values minus the mean
RGB; ``pixel_scale=255`` (``--pixel-scale 255``, part of ``--profile
paper``) multiplies the mean-subtracted image by 255 to give exactly that.
The unit matters for a fixed-std initialisation such as N(0, 0.01^2): the
first layer's outputs are 255 times larger in 0-255 units.
"""

import numbers

import numpy as np
from PIL import Image

from ..fast import select
from ..fast.transforms import fused_tail
from .base import CorruptImageError, check_image
from .folder import ImageFile

__all__ = [
    "Compose", "RescaleShorter", "RandomCrop", "CenterCrop", "RandomHorizontalFlip",
    "ToFloat", "PCAColourShift", "SubtractMean", "ScalePixels", "Normalise", "ToCHW",
    "compute_mean_rgb", "train_transform", "eval_transform",
    "PCA_EIGVAL", "PCA_EIGVEC",
]

# The eigen-decomposition of the RGB covariance of ImageNet training pixels used
# for AlexNet's colour augmentation (Krizhevsky et al. 2012 §4.1), as open
# reimplementations of that augmentation use it, in [0, 1] pixel units: the
# eigenvalues, and the eigenvectors as the *columns* of PCA_EIGVEC (column i
# belongs to PCA_EIGVAL[i]).
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = np.array([
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
])


def _need_rng(rng, who):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{who} is random and needs a numpy.random.Generator as second argument "
            f"(e.g. np.random.default_rng(0)), got {type(rng).__name__}"
        )


def _check_float_hwc(img, who):
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{who}: expected an (H, W, 3) array, got "
                         f"{getattr(img, 'shape', type(img).__name__)}")
    if img.dtype != np.float32:
        raise ValueError(f"{who}: expected float32 (put ToFloat() before it), got {img.dtype}")


def _positive_int(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return int(v)


def parse_scale(scale):
    """Return (S_min, S_max) for an int S, an (S_min, S_max) pair, or a string
    "S" / "S_MIN:S_MAX" (the command-line form)."""
    if isinstance(scale, str):
        parts = scale.split(":")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"scale must be S or S_MIN:S_MAX with positive integers, got "
                             f"{scale!r}")
        scale = int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    if isinstance(scale, (tuple, list)):
        if len(scale) != 2:
            raise ValueError(f"scale must be an int S or a pair (S_min, S_max), got {scale!r}")
        lo = _positive_int(scale[0], "S_min")
        hi = _positive_int(scale[1], "S_max")
        if lo > hi:
            raise ValueError(f"scale jitter range needs S_min <= S_max, got ({lo}, {hi}); "
                             f"write it as {hi}:{lo}")
        return lo, hi
    s = _positive_int(scale, "scale S")
    return s, s


class Compose:
    """Apply transforms in order, threading one rng: ``Compose([...])(img, rng)``.

    Shapes and dtypes are whatever the listed transforms produce.
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise ValueError(f"Compose: {t!r} is not callable")
        steps = self.transforms
        self._starts_with_crop = (len(steps) >= 2 and isinstance(steps[0], RescaleShorter)
                                  and isinstance(steps[1], (RandomCrop, CenterCrop)))
        self._tail = _fused_tail(steps)

    @property
    def reads_files(self):
        """True when, in the fast tier, the pipeline starts with a rescale and
        a crop: it then also takes an ImageFile (ImageFolder.open_file) and
        decodes only what the crop needs (RescaleShorter.rescale_crop); the
        loader uses that. The textbook tier decodes every image whole."""
        return self._starts_with_crop and select.fuses_transforms()

    def __call__(self, img, rng=None):
        steps, start = self.transforms, 0
        fast = select.fuses_transforms()
        if isinstance(img, ImageFile):
            if self._starts_with_crop and fast:
                img, start = steps[0].rescale_crop(img, steps[1], rng), 2
            else:
                img = img.array()
        tail = self._tail if fast else None
        end = len(steps) if tail is None else tail[0]
        for t in steps[start:end]:
            img = t(img, rng)
        if tail is not None and start <= end:
            _, flip, colour, mean = tail
            if flip is not None:
                img = flip(img, rng)
            check_image(img, "ToFloat input")
            shift = None if colour is None else colour.sample_shift(rng)
            img = fused_tail(img, shift, mean.mean_rgb)
        return img

    def __repr__(self):
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose([\n    {inner},\n])"


def _fused_tail(steps):
    """(index, flip, colour, mean) when the pipeline ends with
    [RandomHorizontalFlip], ToFloat, [PCAColourShift], SubtractMean, ToCHW
    (the §3.1 and evaluation pipelines), else None: the steps that the fast
    tier runs as one pass (minivgg/fast/transforms.py)."""
    i = len(steps)
    if i < 3 or type(steps[-1]) is not ToCHW or type(steps[-2]) is not SubtractMean:
        return None
    i, mean = i - 2, steps[-2]
    colour = None
    if i >= 1 and type(steps[i - 1]) is PCAColourShift:
        i, colour = i - 1, steps[i - 1]
    if i < 1 or type(steps[i - 1]) is not ToFloat:
        return None
    i -= 1
    flip = None
    if i >= 1 and type(steps[i - 1]) is RandomHorizontalFlip:
        i, flip = i - 1, steps[i - 1]
    return i, flip, colour, mean


class RescaleShorter:
    """Isotropic rescale so the shorter side becomes S (§3.1 "training scale").

    ``S`` is an int (single-scale training, S = 256 or 384 in the paper) or
    a pair ``(S_min, S_max)`` (multi-scale training: S drawn per image
    uniformly from the integers S_min..S_max inclusive; [256, 512] in the
    paper).  The longer side becomes ``round(L * S / shorter)`` so the
    aspect ratio is kept.  Bilinear resampling (Pillow, which also low-pass
    filters when shrinking).

    In: (H, W, 3) uint8.  Out: (S, round(W*S/H), 3) or (round(H*S/W), S, 3) uint8.
    """

    def __init__(self, S):
        self.S = S
        self.s_min, self.s_max = parse_scale(S)

    def sample_scale(self, rng):
        """Draw this image's S (consumes rng only when S is jittered)."""
        if self.s_min == self.s_max:
            return self.s_min
        _need_rng(rng, "RescaleShorter with a jittered scale")
        return int(rng.integers(self.s_min, self.s_max + 1))

    @staticmethod
    def target_size(h, w, s):
        """(H', W') of an H x W image whose shorter side becomes s."""
        if h <= w:
            return s, max(1, int(round(w * s / h)))
        return max(1, int(round(h * s / w))), s

    def __call__(self, img, rng=None):
        check_image(img, "RescaleShorter input")
        s = self.sample_scale(rng)
        h, w = img.shape[:2]
        nh, nw = self.target_size(h, w, s)
        if (nh, nw) == (h, w):
            return img
        return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))

    def rescale_crop(self, f, crop, rng, draft=True):
        """This rescale followed by ``crop`` (a RandomCrop or CenterCrop), on
        an ImageFile: the same random draws, in the same order, as the two
        transforms on the decoded array, and the same pixels up to rounding,
        for a fraction of the work.

        Only the crop's own size x size pixels are resampled (Pillow's
        ``resize(box=...)``: the bilinear filter of the whole rescale,
        evaluated inside the crop), instead of the whole rescaled image. And
        a JPEG stored at more than DRAFT_MARGIN times the rescaled size is
        decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``draft``; turned off
        by ``draft=False``): what the rescale then still has to shrink stays
        at least a DRAFT_MARGIN-fold reduction, whose filter averages away
        the difference between libjpeg's reduction and the full-size pixels
        (tests/data/test_fast_decode.py measures it against the rescale's
        own error).

        In: ImageFile. Out: (size, size, 3) uint8.
        """
        h, w = f.size()
        s = self.sample_scale(rng)
        nh, nw = self.target_size(h, w, s)
        y, x = crop.offsets(nh, nw, rng)
        c = crop.size
        if (nh, nw) == (h, w):                     # no rescale: crop the decoded image
            return np.asarray(f.decode()[0].crop((x, y, x + c, y + c)))
        want = (nh * DRAFT_MARGIN, nw * DRAFT_MARGIN) if draft else None
        im, r = f.decode(want)
        fy, fx = h / nh / r, w / nw / r           # decoded pixels per rescaled pixel
        box = (x * fx, y * fy, (x + c) * fx, (y + c) * fy)
        return np.asarray(im.resize((c, c), Image.BILINEAR, box=box))

    def __repr__(self):
        return f"RescaleShorter({self.S!r})"


#: A JPEG is decoded at a reduced scale only while it stays at least this
#: many times the size it is rescaled to (see RescaleShorter.rescale_crop).
DRAFT_MARGIN = 2


class RandomCrop:
    """Random size x size crop, position uniform over all valid offsets (§3.1).

    In: (H, W, C) array with H, W >= size.  Out: (size, size, C), same dtype
    (a view).  Raises ValueError naming both sizes if the image is smaller.
    """

    def __init__(self, size):
        self.size = _positive_int(size, "crop size")

    def offsets(self, h, w, rng):
        """(y, x) of the crop's top-left corner in an H x W image (draws from rng)."""
        _need_rng(rng, "RandomCrop")
        if h < self.size or w < self.size:
            raise ValueError(f"RandomCrop({self.size}): image is {h}x{w}, smaller than the crop; "
                             f"rescale it to at least {self.size} first")
        y = int(rng.integers(0, h - self.size + 1))
        x = int(rng.integers(0, w - self.size + 1))
        return y, x

    def __call__(self, img, rng):
        y, x = self.offsets(*img.shape[:2], rng)
        return img[y:y + self.size, x:x + self.size]

    def __repr__(self):
        return f"RandomCrop({self.size})"


class CenterCrop:
    """Central size x size crop (single-crop evaluation, §3.2 / §4.1).

    In: (H, W, C), H, W >= size.  Out: (size, size, C), same dtype (a view).
    """

    def __init__(self, size):
        self.size = _positive_int(size, "crop size")

    def offsets(self, h, w, rng=None):
        """(y, x) of the crop's top-left corner in an H x W image."""
        if h < self.size or w < self.size:
            raise ValueError(f"CenterCrop({self.size}): image is {h}x{w}, smaller than the crop; "
                             f"rescale it to at least {self.size} first")
        return (h - self.size) // 2, (w - self.size) // 2

    def __call__(self, img, rng=None):
        y, x = self.offsets(*img.shape[:2])
        return img[y:y + self.size, x:x + self.size]

    def __repr__(self):
        return f"CenterCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability p (§3.1 "random horizontal flipping").

    In: (H, W, C).  Out: same shape and dtype (a view when flipped).
    Always draws one number, so later transforms see the same rng stream
    whether or not this image was flipped.
    """

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, img, rng):
        _need_rng(rng, "RandomHorizontalFlip")
        return img[:, ::-1] if rng.random() < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class ToFloat:
    """uint8 [0, 255] to float32 [0, 1], the units of the PCA colour constants.

    In: (H, W, 3) uint8.  Out: (H, W, 3) float32, a new array.
    """

    def __call__(self, img, rng=None):
        check_image(img, "ToFloat input")
        return img.astype(np.float32) * np.float32(1.0 / 255.0)

    def __repr__(self):
        return "ToFloat()"


class PCAColourShift:
    """AlexNet "fancy PCA" RGB colour shift (§3.1, after Krizhevsky et al. 2012 §4.1).

    One shift per image is added to every pixel:
    ``shift = eigvec @ (alpha * eigval)``, ``alpha ~ N(0, alphastd^2)``, 3
    values, where eigval/eigvec are the eigen-decomposition of the RGB
    covariance of ImageNet pixels in [0, 1] units (PCA_EIGVAL, PCA_EIGVEC:
    eigenvectors are the columns of PCA_EIGVEC, so
    ``eigvec @ diag(eigval) @ eigvec.T`` is the covariance).  The result is
    not clipped, as in the reference Lua/Caffe code.

    In: (H, W, 3) float32 in [0, 1].  Out: same shape, float32, a new array.
    """

    def __init__(self, alphastd=0.1, eigval=PCA_EIGVAL, eigvec=PCA_EIGVEC):
        if not alphastd >= 0:
            raise ValueError(f"PCAColourShift: alphastd must be >= 0, got {alphastd!r}")
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(eigval, np.float64)
        self.eigvec = np.asarray(eigvec, np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"PCAColourShift: eigval must be (3,) and eigvec (3, 3), got "
                             f"{self.eigval.shape} and {self.eigvec.shape}")

    def sample_shift(self, rng):
        """Draw one image's RGB shift: (3,) float64."""
        _need_rng(rng, "PCAColourShift")
        alpha = rng.normal(0.0, self.alphastd, 3)
        return self.eigvec @ (alpha * self.eigval)

    def __call__(self, img, rng):
        _check_float_hwc(img, "PCAColourShift")
        return img + self.sample_shift(rng).astype(np.float32)

    def __repr__(self):
        return f"PCAColourShift(alphastd={self.alphastd})"


class SubtractMean:
    """Subtract the training set's mean RGB from every pixel (§2.1).

    ``mean_rgb``: (3,) in [0, 1] units (see compute_mean_rgb).
    In: (H, W, 3) float32.  Out: same shape, float32, a new array.
    """

    def __init__(self, mean_rgb):
        m = np.asarray(mean_rgb, dtype=np.float64)
        if m.shape != (3,) or not np.all(np.isfinite(m)):
            raise ValueError(f"SubtractMean: mean_rgb must be 3 finite numbers (R, G, B), got {mean_rgb!r}")
        if np.any(m < 0) or np.any(m > 1):
            raise ValueError(f"SubtractMean: mean_rgb must be in [0, 1] units, got {m.tolist()} "
                             f"(divide 0..255 values by 255)")
        self.mean_rgb = m
        self._mean32 = m.astype(np.float32)

    def __call__(self, img, rng=None):
        _check_float_hwc(img, "SubtractMean")
        return img - self._mean32

    def __repr__(self):
        return f"SubtractMean({np.round(self.mean_rgb, 4).tolist()})"


class ScalePixels:
    """Multiply a (mean-subtracted) float image by ``scale``: 255 turns [0, 1]
    units into the 0-255 units of the paper's Caffe models.

    In: (H, W, 3) float32.  Out: same shape, float32, a new array.
    """

    def __init__(self, scale):
        if not (isinstance(scale, numbers.Real) and scale > 0 and np.isfinite(scale)):
            raise ValueError(f"pixel scale must be a positive number (1: [0, 1] units, 255: "
                             f"0-255 units), got {scale!r}")
        self.scale = float(scale)
        self._scale32 = np.float32(scale)

    def __call__(self, img, rng=None):
        _check_float_hwc(img, "ScalePixels")
        return img * self._scale32

    def __repr__(self):
        return f"ScalePixels({self.scale:g})"


class Normalise:
    """Another set of weights' input convention (a ``data.preprocess.Preprocess``:
    channel order, pixel units, mean, std) applied to a float image in [0, 1]
    units, so that fine-tuning feeds pretrained weights the inputs they were
    trained on, after the §3.1 augmentation: x[c] = (img[src(c)] * 255 *
    scale - mean[c]) / std[c], src(c) = 2 - c for BGR.

    In: (H, W, 3) float32 RGB in [0, 1].  Out: (H, W, 3) float32 in the
    network's channel order, a new array.
    """

    def __init__(self, preprocess):
        from .preprocess import Preprocess
        if not isinstance(preprocess, Preprocess):
            raise ValueError(f"Normalise: expected a data.preprocess.Preprocess, got "
                             f"{type(preprocess).__name__}")
        self.preprocess = preprocess
        self._bgr = preprocess.channels == "BGR"
        self._gain = (255.0 * preprocess.scale / preprocess.std).astype(np.float32)
        self._offset = (preprocess.mean / preprocess.std).astype(np.float32)

    def __call__(self, img, rng=None):
        _check_float_hwc(img, "Normalise")
        x = img[..., ::-1] if self._bgr else img
        return x * self._gain - self._offset

    def __repr__(self):
        return f"Normalise({self.preprocess!r})"


class ToCHW:
    """HWC to the CHW layout of the network input (batch: NCHW).

    In: (H, W, C) float32.  Out: (C, H, W) float32, C-contiguous.
    """

    def __call__(self, img, rng=None):
        if not isinstance(img, np.ndarray) or img.ndim != 3:
            raise ValueError(f"ToCHW: expected an (H, W, C) array, got "
                             f"{getattr(img, 'shape', type(img).__name__)}")
        return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)

    def __repr__(self):
        return "ToCHW()"


def compute_mean_rgb(dataset, max_images=None, progress=True, on_skip=None):
    """Per-channel mean over all pixels of the (training) images (§2.1).

    Every pixel counts once, so a large image weighs more than a small one.
    With ``max_images`` only that many images are read, evenly spaced over
    the data set (not the first ones: an ImageFolder is sorted by class).
    Corrupt images are skipped with a warning (or ``on_skip(description,
    message)`` when given).

    Returns (3,) float64, R, G, B in [0, 1] units.
    """
    import warnings

    from tqdm import tqdm

    n = len(dataset)
    if n == 0:
        raise ValueError("compute_mean_rgb: the data set is empty")
    if max_images is None or max_images >= n:
        indices = np.arange(n)
    else:
        if max_images <= 0:
            raise ValueError(f"compute_mean_rgb: max_images must be positive, got {max_images!r}")
        indices = np.unique(np.linspace(0, n - 1, int(max_images)).round().astype(np.int64))
    total = np.zeros(3, np.float64)
    count = 0
    for i in tqdm(indices, desc="mean RGB", unit="img", disable=not progress):
        try:
            img, _ = dataset[int(i)]
        except CorruptImageError as e:
            if on_skip is not None:
                on_skip(dataset.describe(int(i)), str(e))
            else:
                warnings.warn(f"compute_mean_rgb: skipping {dataset.describe(int(i))}: {e}",
                              stacklevel=2)
            continue
        check_image(img, f"compute_mean_rgb: {dataset.describe(int(i))}")
        # uint8 sums stay exact in int64 for any image a computer can hold.
        total += img.reshape(-1, 3).sum(0, dtype=np.int64)
        count += img.shape[0] * img.shape[1]
    if count == 0:
        raise ValueError("compute_mean_rgb: no image could be read")
    return total / count / 255.0


def _check_recipe(crop, s_min, who):
    if crop > s_min:
        raise ValueError(
            f"{who}: crop {crop} is larger than the smallest training scale S={s_min}; "
            f"use a crop <= {s_min} or a scale >= {crop} (the paper: crop 224, S >= 256)"
        )


def _pixel_steps(pixel_scale):
    return [] if pixel_scale == 1 else [ScalePixels(pixel_scale)]


def _normalise_steps(mean_rgb, pixel_scale):
    """§2.1's mean subtraction (and pixel units), or a whole preset when
    ``mean_rgb`` is a data.preprocess.Preprocess (its own units: pixel_scale 1)."""
    from .preprocess import Preprocess
    if isinstance(mean_rgb, Preprocess):
        if pixel_scale != 1:
            raise ValueError(f"pixel_scale {pixel_scale:g} given with the preprocessing "
                             f"{mean_rgb.name!r}, which sets its own pixel units")
        return [Normalise(mean_rgb)]
    return [SubtractMean(mean_rgb)] + _pixel_steps(pixel_scale)


def train_transform(crop, scale, mean_rgb, colour=True, flip=True, pixel_scale=1.0):
    """The §3.1 training pipeline as a Compose.

    rescale (shorter side S, fixed int or jittered (S_min, S_max)) -> random
    crop x crop -> random horizontal flip (if ``flip``) -> [0, 1] float ->
    PCA colour shift (if ``colour``) -> subtract ``mean_rgb`` -> times
    ``pixel_scale`` (255: the paper's 0-255 units) -> CHW. ``mean_rgb`` may
    instead be a data.preprocess.Preprocess (torchvision's or Caffe's
    convention, for pretrained weights), applied by Normalise.

    In: (H, W, 3) uint8.  Out: (3, crop, crop) float32.
    """
    crop = _positive_int(crop, "crop")
    s_min, _ = parse_scale(scale)
    _check_recipe(crop, s_min, "train_transform")
    steps = [RescaleShorter(scale), RandomCrop(crop)]
    if flip:
        steps.append(RandomHorizontalFlip())
    steps.append(ToFloat())
    if colour:
        steps.append(PCAColourShift())
    steps += _normalise_steps(mean_rgb, pixel_scale) + [ToCHW()]
    return Compose(steps)


def eval_transform(crop, scale, mean_rgb, pixel_scale=1.0):
    """Single-crop evaluation pipeline: rescale to Q, centre crop, normalise.

    Q = S for a fixed training scale, the midpoint (S_min + S_max) // 2
    for a jittered one (§4.1 "Q = 0.5 (S_min + S_max)").  Takes the same
    arguments as train_transform and rejects the same recipes.
    In: (H, W, 3) uint8.  Out: (3, crop, crop) float32.  Deterministic.
    """
    crop = _positive_int(crop, "crop")
    s_min, s_max = parse_scale(scale)
    _check_recipe(crop, s_min, "eval_transform")
    q = (s_min + s_max) // 2
    return Compose([RescaleShorter(q), CenterCrop(crop), ToFloat()]
                   + _normalise_steps(mean_rgb, pixel_scale) + [ToCHW()])
