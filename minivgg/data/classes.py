"""Class names: the ILSVRC-2012 list for 1000-output weights, or a data set's own.

The paper's networks are trained on ILSVRC-2012 (§4: "1000 classes"). Their
output k is the k-th WordNet synset in the sorted order of the synset ids
(n01440764 "tench" ... n15075141 "toilet tissue"), the order every public
set of ImageNet weights uses. ``imagenet_classes.txt`` beside this file holds
one readable name per line in that order (two names appear twice, "crane" the
bird and the machine, "maillot" twice, as in WordNet).

A minivgg checkpoint stores its data set's class names (an ImageFolder's
sub-folder names); ``read_class_names`` reads such a list from a text file or
from a data set folder, for weights that carry none.
"""
import os

__all__ = ["imagenet_classes", "read_class_names", "IMAGENET_CLASSES_FILE"]

IMAGENET_CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "imagenet_classes.txt")


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def imagenet_classes():
    """The 1000 ILSVRC-2012 class names, index = output of ImageNet weights."""
    names = _read_lines(IMAGENET_CLASSES_FILE)
    if len(names) != 1000:  # a damaged installation, not a user error
        raise RuntimeError(f"{IMAGENET_CLASSES_FILE} lists {len(names)} names, expected 1000")
    return names


def read_class_names(path):
    """Class names from a text file (one per line, blank lines ignored) or from
    a data set directory (its sub-folder names, sorted, as ImageFolder labels
    them). Raises FileNotFoundError or ValueError naming ``path``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from .folder import folder_classes
        names = folder_classes(path)
        if not names:
            raise ValueError(f"data set folder {path!r} has no class sub-folder (expected "
                             f"{path}/<class name>/<images>)")
        return names
    if not os.path.exists(path):
        raise FileNotFoundError(f"class names file {path!r} does not exist")
    try:
        names = _read_lines(path)
    except UnicodeDecodeError as e:
        raise ValueError(f"class names file {path!r} is not UTF-8 text ({e})") from None
    if not names:
        raise ValueError(f"class names file {path!r} lists no class (expected one name a line)")
    return names
