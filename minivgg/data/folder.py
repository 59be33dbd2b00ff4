"""ImageFolder: ImageNet-style directory of class folders (the §3.1 training data).

The paper trains on ILSVRC-2012 (1.3 M JPEGs of varying size, 1000 classes).
Once unpacked into ``root/<class>/<image>`` it is read by this class, which
decodes lazily (one file per ``ds[i]``) so the decoding cost lands in the
loader's worker processes, not at construction.
"""

import os
import warnings

from PIL import Image

import numpy as np

from .base import CorruptImageError, Dataset

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS", "ImageFile", "load_rgb", "folder_classes"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _corrupt(path, e):
    # OSError covers UnidentifiedImageError and "image file is truncated";
    # SyntaxError and ValueError are what some Pillow plugins raise on bad headers.
    return CorruptImageError(f"cannot decode image {path}: {type(e).__name__}: {e}")


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning)


def _rgb(im):
    """A loaded Pillow image as an RGB Pillow image (see load_rgb for the rules)."""
    if im.mode == "RGB":
        return im
    if im.mode == "P" and "transparency" in im.info:
        # Pillow warns when converting such palettes straight to RGB.
        im = im.convert("RGBA")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip at 255.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(a[:, :, None], 3, axis=2))
    return im.convert("RGB")


def _checked(path, arr):
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise CorruptImageError(f"cannot decode image {path}: decoded to shape {arr.shape}")
    return arr


def load_rgb(path):
    """Decode the image file at ``path`` to an (H, W, 3) uint8 RGB array.

    Grayscale, palette, CMYK, 16-bit and alpha images are converted to RGB
    (alpha dropped).  Raises CorruptImageError naming the file when it is not
    a decodable image, including a truncated one: decoding is forced inside
    the ``try`` because Pillow otherwise decodes lazily, later.
    """
    f = ImageFile(path)
    return _checked(path, np.asarray(f.decode()[0]))


class ImageFile:
    """An image file read in two steps, so a transform can choose how to
    decode it: ``size()`` reads the header only; ``decode(min_size)`` then
    decodes it, a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling,
    Pillow's ``draft``) when the result stays at least ``min_size``.

    ``ImageFolder.open_file(i)`` hands these out; ``f.array()`` is
    what ``load_rgb`` returns. Both steps raise CorruptImageError naming the
    file, like load_rgb.
    """

    def __init__(self, path):
        self.path = path
        self._im = None

    def __repr__(self):
        return f"ImageFile({self.path!r})"

    def _open(self):
        if self._im is None:
            try:
                with warnings.catch_warnings():
                    # A decompression-bomb-sized image is far beyond anything a
                    # VGG input needs; treat it as bad data, not a crash.
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    self._im = Image.open(self.path)
            except FileNotFoundError:
                raise
            except _DECODE_ERRORS as e:
                raise _corrupt(self.path, e) from e
        return self._im

    def size(self):
        """The stored (H, W), from the header."""
        w, h = self._open().size
        return h, w

    def decode(self, min_size=None):
        """(RGB Pillow image, r): the image decoded at 1/r scale, r in 1, 2,
        4, 8; r > 1 only for a baseline JPEG whose 1/r scale is still at
        least ``min_size`` = (H, W). The file is closed afterwards."""
        im = self._open()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                r = 1
                if min_size is not None and im.format == "JPEG":
                    w0 = im.size[0]
                    got = im.draft("RGB", (max(1, int(min_size[1])), max(1, int(min_size[0]))))
                    if got is not None:
                        r = int(round(w0 / got[1][2]))
                im.load()
                rgb = _rgb(im)
                if rgb is im:
                    if getattr(im, "fp", None) is None:
                        im = None    # decoded and its file already closed by Pillow: hand it over
                    else:
                        rgb = im.copy()   # multi-frame formats keep their file open
        except FileNotFoundError:
            raise
        except _DECODE_ERRORS as e:
            raise _corrupt(self.path, e) from e
        finally:
            if im is not None:
                im.close()
            self._im = None
        return rgb, r

    def array(self):
        """The whole image as load_rgb returns it: (H, W, 3) uint8."""
        return _checked(self.path, np.asarray(self.decode()[0]))

    def close(self):
        """Close the file if only its header was read (``size``)."""
        if self._im is not None:
            self._im.close()
            self._im = None


def folder_classes(root):
    """The class names of a data set folder: its sub-directory names, sorted,
    hidden ones skipped (label = position in the list)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


class ImageFolder(Dataset):
    """Images in ``root/<class_name>/**/<file>``; ``ds[i] -> (img, label)``.

    Class names are the sub-directory names, sorted (label = position in
    ``ds.classes``); files are found recursively, with an extension in
    IMAGE_EXTENSIONS (any case); other files and hidden entries are ignored.
    ``ds.samples`` is the list of ``(path, label)`` in label-then-path order.

    Per item: ``img`` (H, W, 3) uint8 RGB (any size), ``label`` int.
    Raises FileNotFoundError if ``root`` is missing, ValueError if it has no
    class folder or a class folder holds no image, CorruptImageError (from
    ``ds[i]``) if a file cannot be decoded.
    """

    def __init__(self, root, extensions=IMAGE_EXTENSIONS):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: directory {os.path.abspath(self.root)} does not exist")
        exts = tuple(e.lower() for e in extensions)
        self.classes = folder_classes(self.root)
        if not self.classes:
            raise ValueError(
                f"ImageFolder: {os.path.abspath(self.root)} has no class sub-directories; "
                f"expected the layout root/<class_name>/<image>.jpg (one folder per class)"
            )
        self.samples = []
        for label, name in enumerate(self.classes):
            files = self._scan(os.path.join(self.root, name), exts)
            if not files:
                raise ValueError(
                    f"ImageFolder: class folder {os.path.join(os.path.abspath(self.root), name)} "
                    f"holds no image (extensions {', '.join(exts)}); add images or remove the folder"
                )
            self.samples.extend((f, label) for f in files)
        self.labels = np.array([s[1] for s in self.samples], dtype=np.int64)

    @staticmethod
    def _scan(folder, exts):
        out = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(
                os.path.join(dirpath, f) for f in sorted(filenames)
                if not f.startswith(".") and f.lower().endswith(exts)
            )
        return out

    def __len__(self):
        return len(self.samples)

    def _get(self, i):
        path, label = self.samples[i]
        return load_rgb(path), label

    def open_file(self, i):
        """(ImageFile, label): sample ``i`` not decoded yet, for transforms
        that decode it themselves (``Compose.reads_files``)."""
        path, label = self.samples[self._index(i)]
        return ImageFile(path), label

    def describe(self, i):
        return self.samples[self._index(i)][0]

    def __repr__(self):
        return f"ImageFolder(root={self.root!r}, classes={len(self.classes)}, n={len(self)})"


#: The split folders of a data set root, as imagefolder:DIR means it.
SPLITS = ("train", "val", "test")


def split_folder(root, split=None, split_option=True):
    """The folder of one split of an image data set root (``imagefolder:DIR``).

    ``root`` holds ``train/``, ``val/`` and/or ``test/``, each with one folder
    per class. ``split`` names one of them; None means the evaluation split:
    ``val`` if there is one, else ``test``. Returns (path, split). The errors
    say what was found and what to type instead; ``split_option`` says whether
    the command has a ``--split`` option to suggest (evaluation does, training
    reads train/ and val/ itself).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data directory {root!r} does not exist")
    present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    if not present:
        subdirs = folder_classes(root)
        hint = ""
        if subdirs:
            parent = os.path.dirname(os.path.abspath(root)) or "/"
            name = os.path.basename(os.path.abspath(root))
            use = (f"imagefolder:{parent} --split {name}" if split_option else
                   f"imagefolder:{parent} (training reads its train/ and validates on its val/, "
                   f"or test/)")
            hint = (f"; its sub-folders ({', '.join(subdirs[:4])}{', ...' if len(subdirs) > 4 else ''})"
                    f" look like classes, i.e. {root} is itself one split: use {use}"
                    if name in SPLITS else
                    f"; its sub-folders ({', '.join(subdirs[:4])}) look like classes: put them in "
                    f"{root}/val/ (or train/, test/)")
        raise FileNotFoundError(f"imagefolder:{root} is the data set root and needs "
                                f"{root}/train/ and {root}/val/ (or test/), each with one folder "
                                f"per class{hint}")
    if split is None:
        split = "val" if "val" in present else "test" if "test" in present else None
        if split is None:
            raise FileNotFoundError(f"imagefolder:{root} has {', '.join(present)}/ but no val/ "
                                    f"or test/ split to evaluate on")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split not in present:
        raise FileNotFoundError(f"imagefolder:{root} has no {split}/ split (it has "
                                f"{', '.join(p + '/' for p in present)})")
    return os.path.join(root, split), split
