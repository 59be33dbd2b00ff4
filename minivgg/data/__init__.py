"""Data pipeline of the VGG paper's training procedure (§3.1) and evaluation inputs (§3.2).

Datasets hand out ``(img, label)`` with ``img`` an (H, W, 3) uint8 RGB array;
transforms (``t(img, rng)``) implement the paper's rescale / crop / flip /
colour-shift / mean-subtraction recipe; the DataLoader batches the result as
(N, 3, H, W) float32 and (N,) int64, deterministically from (seed, epoch).
At test time ``preprocess`` holds the input conventions of minivgg's, torchvision's
and the paper's Caffe weights, and ``classes`` the ImageNet-1k class names.
"""

from .base import CorruptImageError, Dataset, Subset, stratified_subset
from .cifar import CIFAR10, CIFAR10_MD5, CIFAR10_URL, download_cifar10
from .classes import IMAGENET_CLASSES_FILE, imagenet_classes, read_class_names
from .folder import IMAGE_EXTENSIONS, SPLITS, ImageFolder, folder_classes, load_rgb, split_folder
from .loader import DataLoader
from .preprocess import PRESETS, Preprocess, preset
from .synthetic import SHAPE_CLASSES, SyntheticShapes
from .transforms import (
    PCA_EIGVAL,
    PCA_EIGVEC,
    CenterCrop,
    Compose,
    PCAColourShift,
    RandomCrop,
    RandomHorizontalFlip,
    RescaleShorter,
    parse_scale,
    Normalise,
    ScalePixels,
    SubtractMean,
    ToCHW,
    ToFloat,
    compute_mean_rgb,
    eval_transform,
    train_transform,
)

__all__ = [
    "Subset", "stratified_subset", "split_folder", "SPLITS",
    "CorruptImageError", "Dataset",
    "SyntheticShapes", "SHAPE_CLASSES",
    "CIFAR10", "download_cifar10", "CIFAR10_URL", "CIFAR10_MD5",
    "ImageFolder", "IMAGE_EXTENSIONS", "load_rgb", "folder_classes",
    "imagenet_classes", "read_class_names", "IMAGENET_CLASSES_FILE",
    "Preprocess", "PRESETS", "preset",
    "Compose", "RescaleShorter", "RandomCrop", "CenterCrop", "RandomHorizontalFlip",
    "ToFloat", "PCAColourShift", "SubtractMean", "ScalePixels", "Normalise", "ToCHW",
    "PCA_EIGVAL", "PCA_EIGVEC",
    "compute_mean_rgb", "train_transform", "eval_transform", "parse_scale",
    "DataLoader",
]
