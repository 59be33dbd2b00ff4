"""How many lines a student reads for each goal of docs/paper_to_code.md,
"Reading budgets": the code a goal needs, counted the same way every time.

    python scripts/reading_budgets.py            # the table, as the page shows it
    python scripts/reading_budgets.py --check    # exit 1 if a budget is exceeded

A line of code is a line that is neither blank, nor a comment, nor part of a
docstring (Python) or a comment block (CUDA C); "lines" counts everything a
reader scrolls past in the same stretches, docstrings and comments included.
A goal names whole files, or the functions, classes, methods and
assignments of a file it needs (``"VGG.to_fully_conv"``), or, in a CUDA
file, the stretch from one line to another. tests/test_docs_drift.py holds
the page's table to these counts and the budgets below.
"""
import argparse
import ast
import io
import os
import re
import sys
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (goal, [(path, parts)], budget in lines of code or None). ``parts``: None
#: for the whole file; for Python a list of qualified names; for CUDA C a
#: list of (first line's regex, last line's regex, what it is) stretches.
GOALS = [
    ("a convolution, forward and backward (§2.1)",
     [("minivgg/functional/conv.py", None)], 150),
    ("the autograd: Tensor, Function, backward, and the arithmetic a loss needs",
     [("minivgg/autograd.py", None),
      ("minivgg/arithmetic.py", ["sum_to", "Add", "Mul", "Sum", "_attach_operators"])], 300),
    ("max-pooling, ReLU, dropout and LRN (§2.1, §3.1)",
     [("minivgg/functional/pooling.py", None), ("minivgg/functional/activation.py", None),
      ("minivgg/functional/normalization.py", None)], None),
    ("the configurations of Table 1 (§2.2)",
     [("minivgg/models/vgg.py", ["M", "LRN", "CONFIGS", "make_layers"])], None),
    ("one training step (§3.1)",
     [("examples/one_step.py", None)], None),
    ("one CUDA kernel and its launch: im2col (§3.3)",
     [("kernels/conv.cu", [(r"^// col\[r, q\] = ", r"^extern \"C\" __global__ void im2col_f64"
                            r"[\s\S]*?^}", "the `im2col` kernel and its float32/float64 entry points")]),
      ("minivgg/cuda/ops.py", ["dense", "im2col"])], None),
    ("dense evaluation (§3.2)",
     [("minivgg/evaluate/views.py", ["rescale", "normalise", "dense_window"]),
      ("minivgg/evaluate/batching.py", ["_posteriors", "pool_score_map", "_Batcher",
                                        "_dense_forward", "_queue_dense"]),
      ("minivgg/evaluate/protocols.py", ["_fully_conv", "dense_score_map", "dense_scores"]),
      ("minivgg/nn/layers.py", ["LinearAsConv"]),
      ("minivgg/models/vgg.py", ["VGG.to_fully_conv", "FullyConvVGG"])], None),
]


def _python_lines(text):
    """(code, every): the sets of line numbers holding code, and all lines."""
    code = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        code.update(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            code.difference_update(range(body[0].lineno, body[0].end_lineno + 1))
    return code, set(range(1, text.count("\n") + 2))


def _python_span(tree, name, path):
    """(first, last) line of the definition or assignment ``name`` ("A.b" for a method)."""
    scope = tree.body
    *outer, last = name.split(".")
    for part in outer:
        scope = next(n.body for n in scope if isinstance(n, ast.ClassDef) and n.name == part)
    for node in scope:
        names = [node.name] if hasattr(node, "name") else \
            [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if last in names:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            return first, node.end_lineno
    raise LookupError(f"{path}: no definition of {name!r}")


def _c_lines(text):
    """(code, every) for C: comments (// and /* */) and blank lines are not code."""
    stripped = re.sub(r"/\*[\s\S]*?\*/", lambda m: "\n" * m.group(0).count("\n"), text)
    stripped = re.sub(r"//[^\n]*", "", stripped)
    lines = stripped.split("\n")
    return ({i + 1 for i, s in enumerate(lines) if s.strip()},
            set(range(1, len(lines) + 1)))


def _c_span(text, first, last, path):
    start = re.search(first, text, flags=re.M)
    if start is None:
        raise LookupError(f"{path}: no line matches {first!r}")
    end = re.compile(last, flags=re.M).search(text, start.start())
    if end is None:
        raise LookupError(f"{path}: nothing after {first!r} matches {last!r}")
    return text.count("\n", 0, start.start()) + 1, text.count("\n", 0, end.end()) + 1


def count(path, parts=None):
    """(lines of code, lines) of ``parts`` of the file ``path`` (relative to the repository)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    python = path.endswith(".py")
    code, every = _python_lines(text) if python else _c_lines(text)
    if parts is None:
        keep = every
    else:
        tree = ast.parse(text) if python else None
        keep = set()
        for part in parts:
            a, b = _python_span(tree, part, path) if python else _c_span(text, *part[:2], path)
            keep.update(range(a, b + 1))
    return len(code & keep), len(every & keep)


def budgets():
    """[(goal, lines of code, lines, budget, [(path, parts)])] for every goal."""
    rows = []
    for goal, files, budget in GOALS:
        counted = [count(path, parts) for path, parts in files]
        rows.append((goal, sum(c for c, _ in counted), sum(n for _, n in counted), budget, files))
    return rows


def _what(files):
    out = []
    for path, parts in files:
        if parts is None:
            out.append(f"`{path}`")
        elif path.endswith(".py"):
            out.append(f"`{path}`: " + ", ".join(f"`{p}`" for p in parts))
        else:
            out.append(f"`{path}`: " + ", ".join(p[2] for p in parts))
    return "; ".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 if a goal exceeds its budget")
    args = p.parse_args(argv)
    rows = budgets()
    print("| goal | lines of code | lines with docstrings and comments | budget | what |")
    print("| --- | ---: | ---: | ---: | --- |")
    over = []
    for goal, code, lines, budget, files in rows:
        print(f"| {goal} | {code} | {lines} | {budget or '—'} | {_what(files)} |")
        if budget is not None and code > budget:
            over.append(f"{goal}: {code} lines of code > {budget}")
    for line in over:
        print(f"over budget: {line}", file=sys.stderr)
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
