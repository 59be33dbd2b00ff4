"""The docs cannot state a number the code defines differently.

Each test reads a number where the docs state it (a table the docs keep for
that purpose, or a short fixed phrase) and compares it with the code:

- the fast tier's algorithm thresholds (architecture.md's table, and every
  "F(4x4) from N channels"-style phrase in the docs and the fast tier's
  docstrings) against ``minivgg.fast.select``;
- the default recipe (training.md's table, and the README's description of
  the default run) against ``minivgg.train.Recipe`` and ``minivgg.profiles``;
- the default run's figures quoted in the README against the table of
  benchmarks.md's "Default example run" (the same numbers in both places);
- the reading budgets of paper_to_code.md against a fresh count;
- every repository path a doc names exists.

A failure names the document, what it says and what the code says.
"""
import ast
import dataclasses
import glob
import os
import re
import sys

import pytest

from minivgg import profiles, train
from minivgg.fast import select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import reading_budgets  # noqa: E402


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def section(text, heading):
    """The body of the Markdown section ``heading``, up to the next heading
    of the same or a higher level."""
    m = re.search(rf"^(#+) {re.escape(heading)}\n", text, flags=re.M)
    assert m, f"no section {heading!r}"
    body = text[m.end():]
    end = re.search(rf"^#{{1,{len(m.group(1))}}} ", body, flags=re.M)
    return body[:end.start()] if end else body


def table_rows(text):
    """The cells of every Markdown table row of ``text`` (header and rule rows included)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]


def literal(cell):
    """The first `...` of a table cell as a Python value ("1 << 23" allowed)."""
    m = re.search(r"`([^`]*)`", cell)
    assert m, f"no `value` in the cell {cell!r}"
    src = m.group(1)
    if re.fullmatch(r"[\d\s<()*,]+|[\d\s<(),*None]+", src):
        return eval(src, {"__builtins__": {}}, {"None": None})  # digits, <<, tuples, None only
    return ast.literal_eval(src)


def number(text):
    return float(text.replace(",", ""))


DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                              for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
FAST_CODE = sorted(os.path.relpath(p, ROOT)
                   for p in glob.glob(os.path.join(ROOT, "minivgg", "fast", "*.py")))

# -- the fast tier's thresholds ----------------------------------------------------------------

THRESHOLDS = ("SMALL_MAP_MAX_ELEMENTS", "WINOGRAD_MIN_MACS", "WINOGRAD_SIZES",
              "CHANNELS_LAST_MIN_CHANNELS", "CHANNELS_LAST_MIN_PIXELS",
              "CHANNELS_LAST_MAX_WEIGHTS")


def documented_thresholds():
    """{name: value} from architecture.md's table of the selector's constants."""
    rows = table_rows(section(read("docs/architecture.md"), "Two tiers, one door"))
    return {m.group(1): literal(row[1]) for row in rows if len(row) >= 2
            for m in [re.fullmatch(r"`([A-Z_]+)`", row[0])] if m}


def test_the_selector_table_states_every_threshold_as_the_code_defines_it():
    documented = documented_thresholds()
    assert set(documented) == set(THRESHOLDS), \
        f"architecture.md's table lists {sorted(documented)}; expected {sorted(THRESHOLDS)}"
    for name, value in documented.items():
        assert value == getattr(select, name), \
            f"architecture.md: {name} = {value!r}, but minivgg/fast/select.py: " \
            f"{getattr(select, name)!r}"


def _f4_rows():
    return [row for row in select.WINOGRAD_SIZES if row[1] is not None]


#: (pattern, what the code says, which constant): the phrases the docs use for
#: the rule, wherever they occur (docs/*.md, README.md, minivgg/fast/*.py).
PHRASES = [
    (r"F\(4x4(?:, ?3x3)?\) from (\d[\d,]*) channels",
     lambda: min(r[0] for r in _f4_rows()), "the smallest F(4x4) row of WINOGRAD_SIZES"),
    (r"F\(4x4(?:, ?3x3)?\)[^.;]{0,80}? from (\d[\d,]*) output pixels",
     lambda: _f4_rows()[-1][2], "WINOGRAD_SIZES's F(4x4) pixels"),
    (r"F\(2x2(?:, ?3x3)?\) from (\d[\d,]*) channels",
     lambda: min(r[0] for r in select.WINOGRAD_SIZES if r[3] is not None),
     "the smallest F(2x2) row of WINOGRAD_SIZES"),
    (r"Winograd[^.;]{0,80}? \(?from (\d[\d,]*) channels",
     lambda: min(r[0] for r in select.WINOGRAD_SIZES), "WINOGRAD_SIZES's last row"),
    (r"channels-last im2col from (\d[\d,]*) input channels",
     lambda: select.CHANNELS_LAST_MIN_CHANNELS, "CHANNELS_LAST_MIN_CHANNELS"),
    (r"below (\d[\d,]*) output pixels or 2\^\d+ multiply-adds",
     lambda: _f4_rows()[-1][2], "WINOGRAD_SIZES's F(4x4) pixels"),
]


def test_f4_rows_share_one_pixel_threshold():
    """The phrases above quote one pixel count for F(4x4): true while every row agrees."""
    assert len({r[2] for r in _f4_rows()}) == 1, select.WINOGRAD_SIZES


@pytest.mark.parametrize("pattern,truth,what", PHRASES, ids=[p[2] for p in PHRASES])
def test_threshold_phrases_agree_with_the_selector(pattern, truth, what):
    bad, seen = [], 0
    for path in DOCS + FAST_CODE:
        for m in re.finditer(pattern, re.sub(r"\s+", " ", read(path))):
            seen += 1
            if number(m.group(1)) != truth():
                bad.append(f"{path}: {m.group(0)!r} says {m.group(1)}; {what} is {truth()}")
    assert seen, f"no document states {what} ({pattern!r}); the test has lost its text"
    assert not bad, "\n".join(bad)


def test_multiply_add_thresholds_in_the_docs_are_the_codes():
    """Every "2^N multiply-adds" the docs state is one of the code's two such
    thresholds: Winograd's minimum and the Trainer's one-thread limit."""
    known = {select.WINOGRAD_MIN_MACS, train.AUTO_ONE_THREAD_MACS}
    bad = [f"{path}: 2^{m.group(1)} multiply-adds"
           for path in DOCS + FAST_CODE
           for m in re.finditer(r"2\^(\d+) multiply-adds", re.sub(r"\s+", " ", read(path)))
           if 1 << int(m.group(1)) not in known]
    assert not bad, "\n".join(bad) + f"\nthe code's: {sorted(known)}"


# -- the default recipe ------------------------------------------------------------------------

def documented_recipe():
    """{field: (default cell, paper cell)} from training.md's table of Recipe fields."""
    rows = table_rows(section(read("docs/training.md"), "The small-CPU profile (the defaults)"))
    fields = {f.name for f in dataclasses.fields(train.Recipe)}
    out = {}
    for row in rows:
        m = re.fullmatch(r"`([a-z_]+)`", row[0])
        if m and m.group(1) in fields and len(row) == 4:
            out[m.group(1)] = (row[2], row[3])
    return out


def test_training_md_states_the_recipe_defaults_and_the_papers():
    rows = documented_recipe()
    for field in ("crop", "scale", "batch_size", "lr", "momentum", "weight_decay", "epochs",
                  "width_mult", "fc_width", "dropout", "init", "patience", "pixel_scale"):
        assert field in rows, f"training.md's table has no row for Recipe.{field}"
    default, paper = train.Recipe(), profiles.profile_recipe("paper")
    for field, (d, p) in rows.items():
        assert literal(d) == getattr(default, field), \
            f"training.md: default {field} = {literal(d)!r}; Recipe(): {getattr(default, field)!r}"
        assert literal(p) == getattr(paper, field), \
            f"training.md: paper {field} = {literal(p)!r}; profiles.PAPER: {getattr(paper, field)!r}"
    notes = " ".join(d for d, _ in rows.values())
    assert number(re.search(r"\(([\d,]+) generated images\)", notes).group(1)) \
        == train.SYNTHETIC_TRAIN_SIZE
    small, large = re.search(r"\((\d+) below crop (\d+), (\d+) from", notes).group(1, 3)
    assert int(small) == train.Recipe(crop=32).resolved_fc_width()
    assert int(large) == train.Recipe(crop=224, scale="256").resolved_fc_width()


def readme_default_run():
    """The README's paragraph on what the default run does and gives."""
    text = re.sub(r"\s+", " ", read("README.md"))
    m = re.search(r"What the default run does and gives(.*?)Plain VGG nets", text)
    assert m, "README.md: the paragraph 'What the default run does and gives' is gone"
    return m.group(1)


#: (phrase in the README's default-run paragraph, what each group must equal)
README_RECIPE = [
    (r"at (a quarter|half) of the paper's channel widths",
     lambda g: {"a quarter": 0.25, "half": 0.5}[g[0]] == train.Recipe().width_mult),
    (r"FC layers of (\d+)", lambda g: int(g[0]) == train.Recipe().resolved_fc_width()),
    (r"([\d,]+) generated (\d+)x\d+ training images per epoch",
     lambda g: (number(g[0]), int(g[1])) == (train.SYNTHETIC_TRAIN_SIZE,
                                             train.Recipe().image_size)),
    (r"S in \[(\d+), (\d+)\] with (\d+)x\d+ crops",
     lambda g: (f"{g[0]}:{g[1]}", int(g[2])) == (train.Recipe().scale, train.Recipe().crop)),
    (r"momentum ([\d.]+)", lambda g: float(g[0]) == train.Recipe().momentum),
    (r"weight decay ([\d.e-]+)", lambda g: float(g[0]) == train.Recipe().weight_decay),
    (r"the paper's learning rate ([\d.]+)",
     lambda g: float(g[0]) == train.Recipe().lr == profiles.profile_recipe("paper").lr),
    (r"(no dropout)", lambda g: train.Recipe().dropout == 0),
    (r"(\d+) epochs of batch (\d+)",
     lambda g: (int(g[0]), int(g[1])) == (train.Recipe().epochs, train.Recipe().batch_size)),
]


@pytest.mark.parametrize("pattern,agrees", README_RECIPE, ids=[p for p, _ in README_RECIPE])
def test_the_readmes_default_run_is_the_recipes(pattern, agrees):
    m = re.search(pattern, readme_default_run())
    assert m, f"README.md's default-run paragraph no longer says {pattern!r}"
    assert agrees(m.groups()), f"README.md: {m.group(0)!r} is not what minivgg.train.Recipe says"


# -- the default run's figures -----------------------------------------------------------------

FIGURE = r"\d+(?:\.\d+)?%|\d+ min \d+ s|\d+(?:\.\d+)?x\b"


def test_the_readmes_figures_are_benchmarks_mds():
    """The same percentages, wall times and ratios in the README's paragraph
    and in the table at the head of benchmarks.md's "Default example run"."""
    rows = table_rows(section(read("docs/benchmarks.md"), "Default example run"))
    table = " ".join(row[1] for row in rows[2:] if len(row) == 2)
    readme, bench = set(re.findall(FIGURE, readme_default_run())), set(re.findall(FIGURE, table))
    assert readme == bench, (f"only in README.md: {sorted(readme - bench)}; "
                             f"only in docs/benchmarks.md: {sorted(bench - readme)}")


def test_the_width_ratio_is_the_same_in_readme_and_training_md():
    readme = re.search(r"about ([\d.]+)x slower", readme_default_run())
    training = re.search(r"about ([\d.]+)x more images per second", read("docs/training.md"))
    assert readme and training
    assert readme.group(1) == training.group(1), (readme.group(0), training.group(0))


# -- reading budgets ---------------------------------------------------------------------------

def test_reading_budgets_are_counted_and_kept():
    rows = table_rows(section(read("docs/paper_to_code.md"), "Reading budgets"))
    documented = {row[0]: (int(row[1]), int(row[2])) for row in rows[2:] if len(row) == 5}
    counted = {goal: (code, lines, budget)
               for goal, code, lines, budget, _ in reading_budgets.budgets()}
    assert set(documented) == set(counted), \
        "paper_to_code.md's reading budgets list other goals than scripts/reading_budgets.py"
    for goal, (code, lines, budget) in counted.items():
        doc_code, doc_lines = documented[goal]
        for doc, now in ((doc_code, code), (doc_lines, lines)):
            assert abs(doc - now) <= max(3, now // 10), \
                (f"paper_to_code.md says {goal!r} takes {doc} lines, it takes {now} now: "
                 f"run python scripts/reading_budgets.py and update the table")
        assert budget is None or code <= budget, f"{goal}: {code} lines of code > {budget}"


def test_the_line_counter_skips_docstrings_comments_and_blank_lines(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text('"""doc\nstring"""\n\n# comment\nx = 1  # trailing\n\n'
                                   'def f():\n    """doc"""\n    return x\n', encoding="utf-8")
    (tmp_path / "k.cu").write_text("// a\n/* b\n c */\nint x;\n\nint f() {\n  return 1;\n}\n",
                                   encoding="utf-8")
    monkeypatch.setattr(reading_budgets, "ROOT", str(tmp_path))
    assert reading_budgets.count("m.py") == (3, 10)
    assert reading_budgets.count("m.py", ["f"]) == (2, 3)
    assert reading_budgets.count("k.cu") == (4, 9)
    assert reading_budgets.count("k.cu", [(r"^int f", r"^}", "f")]) == (3, 3)


# -- paths -------------------------------------------------------------------------------------

PATH = r"(?<![\w./-])((?:[\w-]+/)+[\w.-]+\.(?:py|md|cu|cuh|h|txt))\b"


def test_every_path_the_docs_name_exists():
    """A file of the repository named by a doc (or by a docstring of the
    fast tier) exists: a path whose first folder is one of the repository's
    (from its root, minivgg/, tests/, docs/ or the naming file's folder)
    names a file there. Other projects' paths (dezero/...) are not checked."""
    bad = []
    for path in DOCS + FAST_CODE + ["kernels/README.md"]:
        bases = [ROOT, os.path.join(ROOT, "minivgg"), os.path.join(ROOT, "tests"),
                 os.path.join(ROOT, "docs"), os.path.dirname(os.path.join(ROOT, path))]
        for target in set(re.findall(PATH, read(path))):
            ours = [b for b in bases if os.path.isdir(os.path.join(b, target.split("/")[0]))]
            if ours and not any(os.path.exists(os.path.join(b, target)) for b in ours):
                bad.append(f"{path}: {target}")
    assert not bad, "no such file:\n" + "\n".join(sorted(bad))
