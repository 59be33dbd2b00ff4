"""``python -m minivgg COMMAND [options]``: train, evaluate, classify, summary or export
(each also installed as ``minivgg-COMMAND``; ``--help`` after a command lists its options)."""
import importlib
import sys

COMMANDS = {
    "train": ("minivgg.cli.train", "train a VGG configuration with the paper's recipe (§3.1)"),
    "evaluate": ("minivgg.cli.evaluate", "evaluate checkpoints with the test protocols (§3.2, §4)"),
    "classify": ("minivgg.cli.classify", "top-5 classes of images under a test protocol"),
    "summary": ("minivgg.summary", "the layers of a configuration or a file: Tables 1 and 2"),
    "export": ("minivgg.cli.export", "a model to .safetensors, .pth, .npz or ONNX"),
}


def usage():
    lines = ["usage: python -m minivgg COMMAND [options]   (COMMAND --help for its options)", ""]
    lines += [f"  {name:<9} {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"python -m minivgg {name}"] + rest
    run = getattr(module, "console", None) or module.main
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
