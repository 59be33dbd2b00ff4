"""The docs cannot drift from the code: every Python block of the tutorial pages
runs here, in order, each page as one session (a fresh namespace per page).

Blocks that only illustrate (paths to checkpoints the reader has not trained)
live on other pages; a page joins this list when all its blocks can run.
"""
import os
import re

import pytest

matplotlib = pytest.importorskip("matplotlib", reason="the docs' blocks draw figures; "
                                                      "pip install matplotlib")
matplotlib.use("Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "docs/paper_to_code.md", "docs/why_3x3.md", "docs/ambiguities.md",
         "docs/architecture.md"]


def python_blocks(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_runs(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no Python block"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{os.path.basename(page)}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page} block {i + 1}", "exec"), namespace)
        except Exception as e:  # say which block of which page broke
            raise AssertionError(f"{page}, Python block {i + 1} failed: {e!r}\n{code}") from e


def test_the_tutorial_covers_the_paper():
    text = "\n".join(python_blocks("docs/paper_to_code.md"))
    for api in ("conv2d", "layer_rows", "backward", "SGD", "profile_recipe", "train_transform",
                "to_fully_conv", "dense+multicrop", "fuse_posteriors"):
        assert api in text


def _slug(heading):
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_images_resolve():
    pages = ["README.md"] + [os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                             if f.endswith(".md")]
    bad = []
    for page in pages:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path \
                else os.path.join(ROOT, page)
            if not os.path.exists(full):
                bad.append(f"{page}: {target} (no such file)")
            elif anchor and full.endswith(".md"):
                with open(full, encoding="utf-8") as f:
                    heads = {_slug(h) for h in re.findall(r"^#+ (.*)$", f.read(), flags=re.M)}
                if anchor not in heads:
                    bad.append(f"{page}: {target} (no heading with that anchor)")
    assert not bad, "\n".join(bad)


def test_no_reference_outside_the_repository():
    hits = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in
                       ("runs", "__pycache__", "build", "dist")]
        for name in filenames:
            if name.endswith((".py", ".md", ".txt", ".cfg", ".ini")):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    text = f.read()
                for needle in ("DESIGN.md", "/work/", "../shared"):
                    if needle in text and name != "test_docs.py":
                        hits.append(f"{os.path.relpath(os.path.join(dirpath, name), ROOT)}: "
                                    f"{needle}")
    assert not hits, hits
