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

Fine-tuning pretrained weights (torchvision, timm, a minivgg run) on a folder
of your images: the model settings and the preprocessing come from the file,
fc8 is re-initialised for your classes (docs/training.md):

    python examples/train_vgg.py --init-from vgg16.pth --data imagefolder:photos --lr 0.001

Data parallelism (§3.3, docs/distributed.md): N processes, each with 1/N of
every batch, gradients averaged before each update:

    mpiexec -n 2 python examples/train_vgg.py --cfg A --distributed mpi
    mpiexec -n 4 python examples/train_vgg.py --profile paper --cfg D --device cuda \\
        --distributed nccl --data imagefolder:/data/imagenet --init-from runs/A-s256/best.npz
"""
import argparse
import dataclasses
import sys
import traceback

from minivgg import failures, runfolder
from minivgg.backend import DeviceError, parse_device
from minivgg.checkpoint import CheckpointError
from minivgg.cli.common import HelpFormatter, add_device_flags, parser
from minivgg.data.preprocess import PRESETS
from minivgg.finetune import FREEZE, preset_flags, weights_defaults
from minivgg.distributed import DistributedError, env_rank, init as init_distributed
from minivgg.fast.select import OPS_HELP, TIERS
from minivgg.models import CONFIGS
from minivgg.profiles import PROFILES, profile_recipe
from minivgg.train import Recipe, Trainer, TrainingDiverged

D = Recipe()


def make_parser(argv=None):
    pre = parser(add_help=False)
    pre.add_argument("--profile", default="small", choices=list(PROFILES))
    D = profile_recipe(pre.parse_known_args(argv)[0].profile)  # this profile's defaults
    p = parser(
        description="Train VGG (Simonyan & Zisserman 2015) with the paper's recipe.",
        formatter_class=HelpFormatter)
    p.add_argument("--profile", default="small", choices=list(PROFILES),
                   help="defaults to start from: small (a quarter-width net on 32x32 crops, "
                        "minutes on a CPU) or paper (§3.1's values; see minivgg/profiles.py); "
                        "flags given here override them")
    p.add_argument("--cfg", default=D.cfg, choices=list(CONFIGS),
                   help="VGG configuration of Table 1")
    p.add_argument("--data", default=D.data,
                   help="synthetic (embedded, generated), cifar10:DIR (official binary archive "
                        "extracted in DIR) or imagefolder:DIR, DIR being the data set root: "
                        "DIR/train/<class>/* for training, DIR/val/<class>/* (or test/) for "
                        "validation")
    p.add_argument("--image-size", type=int, default=D.image_size,
                   help="side of the generated synthetic images")
    p.add_argument("--train-size", type=int, default=D.train_size,
                   help="synthetic data: training images generated (0: 48,000); a real data set "
                        "(cifar10, imagefolder): a class-stratified sample of this many training "
                        "images, chosen with --seed (0: all of them)")
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
                   help="weights to start from: a minivgg checkpoint or run folder, or any file "
                        "minivgg.io reads (torchvision/timm .pth, .safetensors). Same config -> "
                        "all weights (S=384 from S=256, fine-tuning); deeper config from A -> "
                        "A's first four conv layers and three FC layers, the rest random; "
                        "another number of classes -> fc8 re-initialised. --cfg, --width-mult, "
                        "--fc-width, --crop, --scale and the preprocessing default to the "
                        "file's")
    p.add_argument("--freeze", default=D.freeze, choices=list(FREEZE),
                   help="keep these layers fixed: features = every conv layer (only fc6-fc8 "
                        "train, and backward stops at fc6)")
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
    p.add_argument("--best-with-optimizer", action="store_true",
                   help="keep the momentum buffers in best.npz too (as large as the model; "
                        "last.npz always has them and is the file to resume from)")
    p.add_argument("--strict", action="store_true",
                   help="stop on an unreadable image instead of skipping it with a warning")
    p.add_argument("--mean-images", type=int, default=D.mean_images,
                   help="images read to compute the mean RGB (0: the whole training set)")
    p.add_argument("--pixel-scale", type=float, default=D.pixel_scale,
                   help="input units of the minivgg preset: the mean-subtracted [0, 1] image is "
                        "multiplied by this (1: [0, 1] units; 255: the 0-255 units of the "
                        "paper's Caffe nets); giving it selects --preset minivgg")
    p.add_argument("--preset", default=D.preset, choices=["auto"] + list(PRESETS),
                   help="input preprocessing: auto = the --init-from file's (torchvision's for "
                        "torchvision and timm weights), else minivgg = minus this training set's "
                        "mean RGB (§2.1); torchvision and caffe are those weights' conventions "
                        "(docs/interop.md)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_device_flags(p, D.device)
    p.add_argument("--threads", type=int, default=D.threads,
                   help="CPU threads for BLAS and minivgg's copies; 0: chosen before each "
                        "epoch from the cores other programs leave free (and divided among "
                        "the ranks sharing the machine), which keeps a shared machine fast")
    p.add_argument("--ops", default=D.ops, choices=TIERS, help=OPS_HELP)
    p.add_argument("--release-freed-memory", dest="keep_freed_memory", action="store_false",
                   help="let the C library hand freed memory back to the system after every "
                        "step (by default the process keeps it, so that each step's big arrays "
                        "cost no page faults; docs/architecture.md)")
    p.add_argument("--dtype", default=D.dtype, choices=["float32", "float64"],
                   help="parameter and activation type (float64: slow, for exact comparisons)")
    p.add_argument("--distributed", default=D.distributed, choices=["none", "mpi", "nccl"],
                   help="data-parallel training over the processes started by mpiexec: mpi "
                        "(CPU processes, --device cpu or emu) or nccl (one GPU per process, "
                        "--device cuda); --batch-size is then the global batch, split evenly")
    p.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="average the gradients after backward instead of bucket by bucket "
                        "during it")
    p.add_argument("--bucket-mb", type=float, default=D.bucket_mb,
                   help="size of the gradient buckets averaged during backward (MiB)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out folder that holds another run (its files are "
                        "replaced); without it such a folder is refused")
    failures.add_debug_flag(p)
    return p


def parse_args(argv=None):
    return make_parser(argv).parse_args(argv)


def given_flags(argv):
    """The destinations of the options that ``argv`` sets explicitly."""
    p = make_parser(argv)
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def recipe_from_args(args, argv, notes=None):
    """The Recipe of this command. With --resume it is the checkpoint's recipe,
    with the options given on this command line applied on top (the trainer
    then refuses those that may not change); --lr becomes the rate to continue
    with. Without it, the model settings not given default to the --init-from
    file's (finetune.weights_defaults); ``notes`` receives the lines that say
    so."""
    fields = {f.name for f in dataclasses.fields(Recipe)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["progress"] = not args.no_progress
    if not args.resume:
        given = given_flags(argv)
        preset_flags(values, given)
        if values.get("init_from"):
            lines = weights_defaults(values, given, values["init_from"])
            if notes is not None:
                notes.extend(lines)
    if args.resume:
        saved = (runfolder.load_for_resume(args.resume).meta.get("train") or {}).get("recipe") or {}
        given = given_flags(argv)
        merged = {k: v for k, v in saved.items() if k in fields}
        for k in given & fields:
            merged[k] = values[k]
        if "no_progress" in given:
            merged["progress"] = values["progress"]
        if "lr" in given:  # a manual step of the schedule: continue at this rate
            merged["lr"] = saved.get("lr", values["lr"])
            merged["resume_lr"] = values["lr"]
        values = merged
    return Recipe(**values)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    expected = (ValueError, FileNotFoundError, CheckpointError, TrainingDiverged, DeviceError,
                DistributedError)
    comm = None
    notes = []
    try:
        recipe = recipe_from_args(args, argv, notes)
        comm = init_distributed(args.distributed, parse_device(args.device)[0])
        trainer = Trainer(recipe, resume=args.resume or None, comm=comm, notes=notes)
        history = trainer.run()
    except KeyboardInterrupt:
        return 130
    except expected as e:
        # Every rank meets these errors together; one of them says so.
        if (comm.rank if comm is not None else env_rank()) == 0:
            if args.debug:
                traceback.print_exc()
            print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        # A failure of the run, not of the request (a full disk, a killed
        # loader worker, memory): one line, the state kept (minivgg.failures).
        if comm is None or comm.size == 1:
            return failures.report(e, args.debug)
        # One rank failed alone: say so, and stop every rank rather than
        # leave the others waiting for it forever.
        failures.report(e, args.debug, prefix=f"rank {comm.rank} of {comm.size} failed: ")
        comm.abort(1)
    comm.close()
    if history and comm.rank == 0:
        last, best = history[-1], trainer.best
        k = min(5, len(trainer.classes))  # top-5 of 3 classes is a top-3
        print(f"final: last epoch {last['epoch']}: val top-1 error "
              f"{100 * last['val_top1_err']:.2f}%, top-{k} {100 * last['val_top5_err']:.2f}% "
              f"({trainer.checkpoint_path()}); best epoch {best['epoch']}: top-1 "
              f"{100 * best['val_top1_err']:.2f}%, top-{k} {100 * best['val_top5_err']:.2f}% "
              f"({trainer.checkpoint_path('best.npz')}); "
              f"{sum(h['time_s'] for h in history):.0f} s of training")
    return 0


console = main  # the minivgg-train command: main() returns the exit status

if __name__ == "__main__":
    sys.exit(main())
