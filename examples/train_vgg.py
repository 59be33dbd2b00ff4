#!/usr/bin/env python
"""Train a VGG configuration with the paper's recipe (§3.1).

The default run trains configuration A at 32x32 on the embedded synthetic
shapes data and finishes in minutes on a laptop CPU:

    python examples/train_vgg.py --cfg A

The paper's ImageNet recipe is one switch away (--profile paper: crop 224,
batch 256, lr 1e-2, dropout 0.5, N(0, 0.01^2) init, full widths, FC-4096,
0-255 pixel units, 74 epochs); the first stage of its schedule, the other
stages in docs/training.md:

    python examples/train_vgg.py --profile paper --cfg A --data imagefolder:/data/imagenet \\
        --scale 256 --out runs/A-s256
"""
import argparse
import dataclasses
import sys

from minivgg.checkpoint import CheckpointError
from minivgg.models import CONFIGS
from minivgg.profiles import PROFILES, profile_recipe
from minivgg.train import Recipe, Trainer, TrainingDiverged

D = Recipe()


def parse_args(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", default="small", choices=list(PROFILES))
    D = profile_recipe(pre.parse_known_args(argv)[0].profile)  # this profile's defaults
    p = argparse.ArgumentParser(
        description="Train VGG (Simonyan & Zisserman 2015) with the paper's recipe.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--profile", default="small", choices=list(PROFILES),
                   help="defaults to start from: small (a quarter-width net on 32x32 crops, "
                        "minutes on a CPU) or paper (§3.1's values; see minivgg/profiles.py); "
                        "flags given here override them")
    p.add_argument("--cfg", default=D.cfg, choices=list(CONFIGS),
                   help="VGG configuration of Table 1")
    p.add_argument("--data", default=D.data,
                   help="synthetic (embedded, generated), cifar10:DIR (official binary archive "
                        "extracted in DIR) or imagefolder:DIR (DIR/train/<class>/*, DIR/val/...)")
    p.add_argument("--image-size", type=int, default=D.image_size,
                   help="side of the generated synthetic images")
    p.add_argument("--train-size", type=int, default=D.train_size,
                   help="synthetic images generated for training")
    p.add_argument("--val-size", type=int, default=D.val_size,
                   help="synthetic images generated for validation")
    p.add_argument("--crop", type=int, default=D.crop,
                   help="training crop side (the paper: 224); also the model's input size")
    p.add_argument("--scale", default=D.scale,
                   help="training scale S (shorter side after isotropic rescaling): S for a "
                        "fixed scale (paper: 256 or 384) or SMIN:SMAX for scale jittering "
                        "(paper: 256:512)")
    p.add_argument("--batch-size", type=int, default=D.batch_size,
                   help="images per SGD step (the paper: 256)")
    p.add_argument("--micro-batch", type=int, default=D.micro_batch,
                   help="split each batch into chunks of this many images and accumulate "
                        "gradients (same update, less memory); 0: no split")
    p.add_argument("--lr", type=float, default=D.lr, help="initial learning rate")
    p.add_argument("--warmup-steps", type=int, default=D.warmup_steps,
                   help="raise the lr linearly from lr/N to lr over the first N steps (not in "
                        "the paper; keeps the narrow FC layers of small nets alive)")
    p.add_argument("--momentum", type=float, default=D.momentum, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=D.weight_decay,
                   help="L2 weight decay")
    p.add_argument("--epochs", type=int, default=D.epochs, help="epochs to train (paper: 74)")
    p.add_argument("--max-steps", type=int, default=D.max_steps,
                   help="stop after this many SGD steps in total (0: no limit); the state is "
                        "saved so --resume continues exactly")
    p.add_argument("--init", default=D.init, choices=["gauss", "glorot", "kaiming"],
                   help="weight initialisation: gauss = N(0, init-std^2) (the paper), glorot "
                        "(the paper's post-submission note), kaiming")
    p.add_argument("--init-std", type=float, default=D.init_std,
                   help="std of the gauss init (the paper's text says variance 1e-2; see "
                        "docs/training.md)")
    p.add_argument("--init-from", default=D.init_from,
                   help="checkpoint to start from: same config -> all weights (S=384 from "
                        "S=256); deeper config from A -> A's first four conv layers and three "
                        "FC layers, the rest random")
    p.add_argument("--fc-width", type=int, default=D.fc_width,
                   help="width of FC1 and FC2 (0: 4096, the paper's, for crops >= 224, else 128)")
    p.add_argument("--width-mult", type=float, default=D.width_mult,
                   help="multiply every conv layer's channel count (1: the paper's widths; the small CPU profile uses a quarter)")
    p.add_argument("--fc-bias", type=float, default=D.fc_bias,
                   help="initial bias of FC1 and FC2 (the paper: 0; a small positive value keeps "
                        "their ReLUs alive early in training, as AlexNet's bias of 1 did)")
    p.add_argument("--dropout", type=float, default=D.dropout, help="dropout ratio on FC1, FC2")
    p.add_argument("--patience", type=int, default=D.patience,
                   help="epochs without a validation-accuracy gain that are tolerated: the lr "
                        "is divided by 10 after PATIENCE + 1 such epochs in a row")
    p.add_argument("--min-lr", type=float, default=D.min_lr,
                   help="the lr never drops below this (0: no floor, --max-lr-drops alone "
                        "ends the schedule)")
    p.add_argument("--max-lr-drops", type=int, default=D.max_lr_drops,
                   help="divide the lr at most this many times (the paper: 3)")
    p.add_argument("--resume", default="",
                   help="continue from a checkpoint file or a run directory (its last.npz)")
    p.add_argument("--workers", type=int, default=D.workers,
                   help="data-loading worker processes (0: load in the training process)")
    p.add_argument("--seed", type=int, default=D.seed,
                   help="seed for initialisation, data order, augmentation and dropout")
    p.add_argument("--out", default=D.out,
                   help="directory for the checkpoint (last.npz), metrics.jsonl, recipe.json")
    p.add_argument("--plot", action="store_true", help="write OUT/curves.png (needs matplotlib)")
    p.add_argument("--strict", action="store_true",
                   help="stop on an unreadable image instead of skipping it with a warning")
    p.add_argument("--mean-images", type=int, default=D.mean_images,
                   help="images read to compute the mean RGB (0: the whole training set)")
    p.add_argument("--pixel-scale", type=float, default=D.pixel_scale,
                   help="input units: the mean-subtracted [0, 1] image is multiplied by this "
                        "(1: [0, 1] units; 255: the 0-255 units of the paper's Caffe nets)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fields = {f.name for f in dataclasses.fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in vars(args).items() if k in fields})
    recipe.progress = not args.no_progress
    try:
        trainer = Trainer(recipe, resume=args.resume or None)
        history = trainer.run()
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, CheckpointError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if history:
        last = history[-1]
        print(f"final: val top-1 error {100 * last['val_top1_err']:.2f}%, top-5 error "
              f"{100 * last['val_top5_err']:.2f}% after {last['epoch']} epochs "
              f"({sum(h['time_s'] for h in history):.0f} s of training); checkpoint "
              f"{trainer.checkpoint_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
