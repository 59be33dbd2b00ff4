"""The paper's training procedure (§3.1): mini-batch SGD with momentum and
weight decay on the softmax cross-entropy, dropout on FC1/FC2, the learning
rate divided by 10 when validation accuracy stops improving, the
initialisation policies (random, or the deeper nets started from a trained
configuration A), and the training-scale schedule S = 256 -> 384 -> [256, 512].

    recipe.py      Recipe: every setting (the command line maps onto it), checked
    step.py        one SGD step: the plain step, and the pieces the Trainer adds
    trainer.py     Trainer: epochs, validation, the schedule, checkpoints, resume
    data.py        the data sets and the training set's mean RGB
    validation.py  single-crop validation after each epoch
    failures.py    what a failure during training saves, in one line

``Trainer(recipe).run()`` trains, validates, logs and checkpoints.
"""
from ..data.transforms import parse_scale
from ..finetune import init_from_checkpoint
from .data import SYNTHETIC_TRAIN_SIZE, make_datasets, mean_rgb_cached
from .recipe import Recipe, TrainingDiverged, scale_for_meta
from .step import plain_step
from .trainer import AUTO_ONE_THREAD_MACS, Trainer
from .validation import evaluate_loader

__all__ = ["Recipe", "Trainer", "TrainingDiverged", "plain_step", "make_datasets",
           "mean_rgb_cached", "evaluate_loader", "init_from_checkpoint", "scale_for_meta",
           "parse_scale", "SYNTHETIC_TRAIN_SIZE", "AUTO_ONE_THREAD_MACS"]
