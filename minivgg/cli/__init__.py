"""The command-line programs, installed as commands and runnable as modules:

    minivgg-train     python -m minivgg train      examples/train_vgg.py     (§3.1)
    minivgg-evaluate  python -m minivgg evaluate   examples/evaluate_vgg.py  (§3.2, §4)
    minivgg-classify  python -m minivgg classify   examples/classify.py
    minivgg-summary   python -m minivgg summary    python -m minivgg.summary (Tables 1, 2)
    minivgg-export    python -m minivgg export     examples/export.py

The scripts in examples/ call the same functions, so a checkout runs them
without installing anything.
"""
