"""The data pipeline's tail in one pass per channel (the fast tier's twin
of ToFloat, PCAColourShift, SubtractMean and ToCHW in minivgg/data/transforms.py).

Separately, those four steps each read and write the whole image: the
float image, the shifted one, the centred one, and a transposed copy. Here
each channel goes once from the uint8 (H, W, 3) image to its row of the
float32 (3, H, W) result, with the same float32 operations in the same
order as the separate steps, so the same numbers
(tests/data/test_fast_decode.py)."""
import numpy as np


def fused_tail(img, shift, mean_rgb):
    """img (H, W, 3) uint8 -> (3, H, W) float32: img / 255 (+ shift) - mean,
    channel by channel. ``shift``: the image's colour shift (3,) or None;
    ``mean_rgb``: the training set's mean RGB (3,), [0, 1] units."""
    shift = None if shift is None else np.asarray(shift).astype(np.float32)
    mean = np.asarray(mean_rgb, dtype=np.float64).astype(np.float32)
    h, w, _ = img.shape
    out = np.empty((3, h, w), dtype=np.float32)
    scale = np.float32(1.0 / 255.0)
    for c in range(3):
        np.multiply(img[:, :, c], scale, out=out[c], dtype=np.float32)
        if shift is not None:
            out[c] += shift[c]
        out[c] -= mean[c]
    return out
