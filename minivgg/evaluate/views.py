"""How a test image becomes the network's input (§3.2): isotropically
rescaled so that its shorter side is Q, then the whole image (dense
evaluation) or crops of the training size on a regular grid (multi-crop),
with the training set's mean subtracted (§2.1).

Shape letters: H x W an image, Q the test scale, crop the training crop side.
"""
import numpy as np

from .scales import _is_int


#: §4.3 / Table 5: "5 x 5 regular grid with 2 flips" per scale.
GRID = 5

#: The dense network's output stride: VGG's five 2x2 max-pools (Table 1).
STRIDE = 32


def rescale(img, Q):
    """Isotropic rescale so the shorter side is Q (§3.2), bilinear.

    img (H, W, 3) uint8 -> (Q, round(W*Q/H), 3) or (round(H*Q/W), Q, 3) uint8.
    The same resampling as training's RescaleShorter.
    """
    from ..data.transforms import RescaleShorter
    return RescaleShorter(int(Q))(img)


def normalise(img, mean_rgb, pixel_scale=1.0):
    """uint8 RGB -> the network's input, channels first.

    img (H, W, 3) uint8 -> (3, H, W) float32. mean_rgb: (3,) in [0, 1] (the
    training mean RGB, subtracted from [0, 1] pixels: the "minivgg" preset of
    data.preprocess), or a data.preprocess.Preprocess (e.g. "torchvision").
    """
    return as_preprocess(mean_rgb, pixel_scale)(img)


def as_preprocess(mean_rgb, pixel_scale=1.0):
    """A Preprocess as is; 3 numbers -> the "minivgg" preset with that mean
    (times ``pixel_scale``: 255 for a model trained in the paper's 0-255 units)."""
    from ..data.preprocess import Preprocess, preset
    if isinstance(mean_rgb, Preprocess):
        return mean_rgb
    return preset("minivgg", mean_rgb, pixel_scale=pixel_scale)


def dense_window(x, crop, stride=STRIDE):
    """The centred part of an image the dense network's score map covers.

    x (C, H, W) -> (C, H', W'), a view: H' = crop + stride * k, the largest
    such size <= H (the same for W'). The score map of an H x W input has
    (H - crop) // stride + 1 rows, laid out from the top-left corner: each
    2x2 pooling of a map with an odd side drops its last row or column, so
    the rows left over (H - H') fall off the bottom and right, and the map
    sees the image off-centre. Dense evaluation cuts them equally from both
    sides instead (the odd one from the bottom or right), so the map is
    centred on the image as the training crops were. Where (H - crop) is a
    multiple of ``stride`` nothing is cut: every Q of the paper with its
    224 crops (256, 384, 512). It matters where Q is not: at Q = 54 with
    32x32 crops (docs/reproduction.md) the map is a single cell, whose
    window would otherwise start at the top-left corner, 11 pixels away
    from the centre along each axis.
    """
    _, height, width = x.shape
    if height < crop or width < crop:
        raise ValueError(f"a {crop}x{crop} network does not fit a {height}x{width} image")
    cut_h = (height - crop) % stride
    cut_w = (width - crop) % stride
    top, left = cut_h // 2, cut_w // 2
    return x[:, top:height - (cut_h - top), left:width - (cut_w - left)]


def crop_positions(height, width, crop, grid=GRID):
    """Top-left corners of the regular grid x grid crops (§4.3 multi-crop).

    Along each axis the ``grid`` offsets are evenly spaced from 0 to
    dim - crop inclusive (so the four corner crops are always included),
    rounded to pixels; grid=1 gives the centre crop ((dim - crop) // 2, as
    CenterCrop). When dim - crop < grid - 1 some positions repeat; they are
    kept so every scale contributes grid^2 crops to the average.
    Returns a list of grid*grid (y, x) int pairs, row-major.
    """
    if not _is_int(grid) or grid < 1:
        raise ValueError(f"crop grid must be a positive int, got {grid!r}")
    if height < crop or width < crop:
        raise ValueError(f"a {crop}x{crop} crop does not fit in a {height}x{width} image")

    def offsets(dim):
        if grid == 1:
            return [(dim - crop) // 2]
        return [int(v) for v in np.round(np.linspace(0, dim - crop, grid))]

    return [(y, x) for y in offsets(height) for x in offsets(width)]
