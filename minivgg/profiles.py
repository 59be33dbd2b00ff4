"""Named sets of training defaults for ``examples/train_vgg.py --profile``.

``small`` is ``train.Recipe()`` itself: the CPU profile that trains a
quarter-width VGG on 32x32 images in minutes (docs/training.md explains
each departure from the paper). ``paper`` is §3.1 of the paper, value by
value; flags given on the command line still override a profile's value.

Everything the paper does not state keeps minivgg's choice and is listed in
docs/ambiguities.md (the plateau patience, for one).
"""
import dataclasses

from .train import Recipe

__all__ = ["PAPER", "PROFILES", "profile_recipe"]

#: §3.1 (and §2.1 for the input), in Recipe's field names.
PAPER = {
    "crop": 224,            # "fixed-size 224 x 224 RGB image"
    "scale": "256",         # S = 256 first; 384 and 256:512 are later stages (--scale)
    "batch_size": 256,      # "the batch size was set to 256"
    "micro_batch": 32,      # not in the paper: 8 x 32 images, the same gradient, less memory
    "lr": 1e-2,             # "initially set to 10^-2"
    "momentum": 0.9,        # "momentum to 0.9"
    "weight_decay": 5e-4,   # "L2 penalty multiplier set to 5 * 10^-4"
    "epochs": 74,           # "stopped after 370K iterations (74 epochs)"
    "init": "gauss",        # "normal distribution with the zero mean and 10^-2 variance"
    "init_std": 0.01,       # read as std 10^-2, like the released models (docs/ambiguities.md)
    "fc_width": 4096,       # "the first two have 4096 channels each"
    "width_mult": 1.0,      # Table 1's widths, 64 to 512
    "fc_bias": 0.0,         # "the biases were initialised with zero"
    "dropout": 0.5,         # "dropout ratio set to 0.5"
    "min_lr": 0.0,          # no floor: the three drops take 1e-2 (or 1e-3) down 1000x
    "max_lr_drops": 3,      # "the learning rate was decreased 3 times"
    "warmup_steps": 0,      # no warm-up in the paper
    "patience": 3,          # not in the paper: 4 flat epochs of 74 (docs/ambiguities.md)
    "pixel_scale": 255.0,   # Caffe input: 0-255 pixel values minus the mean RGB
}

PROFILES = {"small": {}, "paper": PAPER}


def profile_recipe(name="small"):
    """The Recipe holding profile ``name``'s defaults."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid ones are {', '.join(PROFILES)}")
    return dataclasses.replace(Recipe(), **PROFILES[name])
