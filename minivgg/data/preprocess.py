"""Input normalisation presets: the pixel convention a set of weights was trained with.

§2.1: "The only pre-processing we do is subtracting the mean RGB value,
computed on the training set, from each pixel." Every set of weights was
trained on inputs in one convention (channel order, pixel units, mean, and
sometimes a per-channel standard deviation); feeding it another one does not
fail, it silently costs accuracy. So the convention travels with the weights
(in a checkpoint's or weights file's metadata) and the test protocols apply
it. Three presets:

    preset       channels  pixel units  minus                       divided by
    -----------  --------  -----------  --------------------------  ---------------------
    minivgg      RGB       [0, 1]       the training set's mean RGB  1
    torchvision  RGB       [0, 1]       (0.485, 0.456, 0.406)        (0.229, 0.224, 0.225)
    caffe        BGR       [0, 255]     (103.939, 116.779, 123.68)   1

"minivgg" is §2.1 as trained here (the mean is the checkpoint's ``mean_rgb``);
"torchvision" is the ImageNet normalisation of torchvision's and timm's VGG
weights; "caffe" is §2.1 as the paper's released Caffe models expect it: the
ImageNet mean pixel in Caffe's BGR order and 0-255 units, no scaling.

A ``Preprocess`` maps an (H, W, 3) uint8 RGB image to the network input
(3, H, W) float32:  x[c] = (img[..., src(c)] * scale - mean[c]) / std[c],
src(c) = c for RGB and 2 - c for BGR; mean and std are in the network's
channel order.
"""
import numpy as np

from .base import check_image

__all__ = ["Preprocess", "PRESETS", "preset", "from_meta"]

#: The preset names, in the order the docs list them.
PRESETS = ("minivgg", "torchvision", "caffe")

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
#: The ILSVRC-2012 mean pixel (B, G, R) in 0-255 units, the paper's released models'.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _three(values, what, name):
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"preprocess {name!r}: {what} must be 3 finite numbers, got {values!r}")
    return a


class Preprocess:
    """Normalise an image for a network: (H, W, 3) uint8 RGB -> (3, H, W) float32.

    name: a label ("minivgg", "torchvision", "caffe" or your own).
    channels: "RGB" or "BGR" (the network's input channel order).
    scale: pixel units, 1/255 for [0, 1] inputs, 1 for 0-255 inputs.
    mean, std: 3 numbers each, in the network's channel order and units.
    Called as a transform, ``p(img)`` or ``p(img, rng)`` (rng unused).
    """

    def __init__(self, name, mean, std=(1.0, 1.0, 1.0), scale=1.0 / 255.0, channels="RGB"):
        if channels not in ("RGB", "BGR"):
            raise ValueError(f"preprocess {name!r}: channels must be 'RGB' or 'BGR', "
                             f"got {channels!r}")
        self.name, self.channels = str(name), channels
        self.mean = _three(mean, "mean", name)
        self.std = _three(std, "std", name)
        if np.any(self.std <= 0):
            raise ValueError(f"preprocess {name!r}: std must be positive, got {list(std)}")
        self.scale = float(scale)
        if not self.scale > 0:
            raise ValueError(f"preprocess {name!r}: scale must be positive, got {scale!r}")
        self._mean32 = self.mean.astype(np.float32)
        self._std32 = None if np.all(self.std == 1) else self.std.astype(np.float32)

    def __call__(self, img, rng=None):
        check_image(img, f"preprocess {self.name!r} input")
        x = img[..., ::-1] if self.channels == "BGR" else img
        x = x.astype(np.float32)
        if self.scale != 1.0:
            x *= np.float32(self.scale)
        x -= self._mean32
        if self._std32 is not None:
            x /= self._std32
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    @property
    def mean_rgb(self):
        """The mean as R, G, B in [0, 1] units: (3,) float64."""
        m = self.mean[::-1] if self.channels == "BGR" else self.mean
        return m / (255.0 * self.scale)

    def to_meta(self):
        """A JSON-able dict; ``from_meta`` reads it back."""
        return {"preset": self.name, "channels": self.channels, "scale": self.scale,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    def __eq__(self, other):
        return isinstance(other, Preprocess) and self.to_meta() == other.to_meta()

    def __repr__(self):
        return (f"Preprocess({self.name!r}, channels={self.channels}, scale={self.scale:.6g}, "
                f"mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})")


def preset(name, mean_rgb=None, pixel_scale=1.0):
    """The Preprocess called ``name`` (one of PRESETS).

    "minivgg" needs ``mean_rgb``, the training set's mean (R, G, B) in [0, 1],
    and takes the ``pixel_scale`` the model was trained with (the mean-free
    [0, 1] image times it: 255 for the paper's 0-255 units, ``--pixel-scale``);
    the other two have fixed constants and refuse both.
    """
    if name == "minivgg":
        if mean_rgb is None:
            raise ValueError("preset 'minivgg' subtracts the training set's mean RGB; pass "
                             "mean_rgb (3 numbers in [0, 1], stored in minivgg checkpoints)")
        m = _three(mean_rgb, "mean_rgb", name)
        if np.any(m < 0) or np.any(m > 1):
            raise ValueError(f"preset 'minivgg': mean_rgb must be in [0, 1] units, got "
                             f"{m.tolist()} (divide 0-255 values by 255)")
        if not (np.isfinite(pixel_scale) and pixel_scale > 0):
            raise ValueError(f"preset 'minivgg': pixel_scale must be positive, got {pixel_scale}")
        # (img / 255 - mean) * s = img * (s / 255) - mean * s
        return Preprocess("minivgg", m * pixel_scale, scale=pixel_scale / 255.0)
    if name not in PRESETS:
        raise ValueError(f"unknown preprocessing preset {name!r}; expected one of "
                         f"{', '.join(PRESETS)}")
    if mean_rgb is not None or pixel_scale != 1.0:
        raise ValueError(f"preset {name!r} has fixed constants; mean_rgb and pixel_scale are "
                         f"only for 'minivgg'")
    if name == "torchvision":
        return Preprocess("torchvision", TORCHVISION_MEAN, TORCHVISION_STD)
    return Preprocess("caffe", CAFFE_MEAN_BGR, scale=1.0, channels="BGR")


def from_meta(meta, where="metadata"):
    """A Preprocess from ``Preprocess.to_meta()``'s dict; ValueError naming ``where``."""
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: preprocess must be a dict, got {type(meta).__name__}")
    try:
        return Preprocess(meta["preset"], meta["mean"], meta["std"], meta["scale"],
                          meta["channels"])
    except KeyError as e:
        raise ValueError(f"{where}: preprocess lacks {e.args[0]!r} (has {sorted(meta)})") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad preprocess {meta!r}: {e}") from None
