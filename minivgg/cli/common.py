"""What the command-line programs share, so that they agree with each other.

- ``parser``: an ArgumentParser that refuses abbreviated options (``--epoch``
  is not taken for ``--epochs``, nor ``--scale`` for evaluation's
  ``--scales``) and whose help shows defaults only for options that take a
  value (an on/off switch such as ``--no-overlap`` is off by default, which
  "(default: True)" would misstate);
- ``add_device_flags``: ``--device`` and ``--tf32``, with the same words in
  every program;
- ``weights_line``, ``scales_origin``: the lines that say which model,
  preprocessing and test scales evaluation and classification use;
- ``warn_unreadable``: one line on stderr per unreadable image.
"""
import argparse
import sys

__all__ = ["HelpFormatter", "RawHelpFormatter", "parser", "add_device_flags", "DEVICE_HELP",
           "weights_line", "scales_origin", "warn_unreadable"]

DEVICE_HELP = ("cpu (NumPy), cuda or cuda:N (CuPy and minivgg's CUDA kernels; pip install -e "
               "'.[gpu]'), or emu (the same CUDA kernels compiled with g++ and run on the CPU: "
               "slow, for checking and reading the kernels)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" for options that take a value, not for switches."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default in (None, ""):
            return action.help  # a switch is off unless given; "" and None say nothing
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (the programs' docstrings)."""


def parser(**kwargs):
    """An ArgumentParser that refuses abbreviations of long options."""
    kwargs.setdefault("allow_abbrev", False)
    return argparse.ArgumentParser(**kwargs)


def add_device_flags(p, default="cpu"):
    """--device and --tf32, as every program spells them."""
    p.add_argument("--device", default=default, help=DEVICE_HELP)
    p.add_argument("--tf32", action="store_true",
                   help="on a cuda device, let float32 matrix products use TF32 tensor cores "
                        "(faster, 10-bit mantissa inputs); off by default")


_ORIGIN = {"asked": "--preset", "file": "from the file",
           "default": "default for weights without metadata"}


def weights_line(net):
    """'weights: FILE (format, layout names): VGG-D, 224x224 crops, 1000
    classes; preprocess torchvision (default for weights without metadata)'."""
    w = net.weights
    return (f"weights: {w.path} ({w.format}, {w.layout} names): VGG-{net.cfg}, "
            f"{net.crop}x{net.crop} crops, {net.model.num_classes} classes; "
            f"preprocess {w.preprocess.name} ({_ORIGIN[w.preprocess_origin]})")


def scales_origin(net, given):
    """Where the test scales of ``net`` come from, for the protocol line."""
    if given:
        return "--scales"
    if net.scales_default == "foreign":
        return ("the file records no training scale: torchvision's resize to 256 for single, "
                "the paper's 256,384,512 otherwise, times crop/224")
    return f"§4.1, §4.2: from the training scale S = {net.train_scale_label}"


def warn_unreadable(desc, message):
    """One line on stderr: an image that is skipped, and why."""
    why = message.replace(f"cannot decode image {desc}: ", "").replace(f" '{desc}'", "")
    print(f"warning: skipping unreadable image {desc} ({why})", file=sys.stderr, flush=True)
