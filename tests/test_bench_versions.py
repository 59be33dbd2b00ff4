"""benchmarks/bench_versions.py: two versions' training steps side by side, at a tiny size."""
import os
import shutil

import pytest

from conftest import ROOT, load_example

TINY = "32:2:8:1:0.0625"


def test_two_checkouts_side_by_side_with_ratios(tmp_path, capsys):
    bv = load_example("bench_versions", "benchmarks")
    md = tmp_path / "bench.md"
    assert bv.main(["--dirs", ROOT, ROOT, "--cases", TINY, "--threads", "1,2", "--rounds", "2",
                    "--write-md", str(md)]) == 0
    out = capsys.readouterr().out
    # Two rounds x two thread counts x two versions, the order reversed in round 2.
    lines = [ln for ln in out.splitlines() if ln.startswith("round ")]
    assert len(lines) == 8
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\n## Versions side by side\n") and "Command: `" in text
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| {TINY} (32x32, batch 2, FC 8")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        a, b, ratio = float(cells[2]), float(cells[3]), float(cells[4])
        assert a > 0 and b > 0 and ratio == pytest.approx(b / a, abs=0.006)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git (commits are archived)")
def test_commits_are_archived_not_checked_out(tmp_path, capsys):
    bv = load_example("bench_versions", "benchmarks")
    if not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("needs a git checkout of the repository")
    assert bv.main(["HEAD", "HEAD", "--cases", TINY, "--threads", "1", "--rounds", "1"]) == 0
    assert "s/step" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["HEAD"], "expected two or more"),
    ([], "give two or more commits"),
    (["--dirs", "/nonexistent", "/nonexistent2"], "not a minivgg checkout"),
    (["--dirs", "A", "B", "--cases", "7:7"], "expected one of default, 32, 224 or SIZE:BATCH"),
    (["--dirs", "A", "B", "--threads", "0"], "positive counts expected"),
    (["--dirs", "A", "B", "--rounds", "0"], "--rounds must be >= 1"),
])
def test_bad_requests_refused_before_any_work(args, message, capsys):
    bv = load_example("bench_versions", "benchmarks")
    with pytest.raises(SystemExit):
        bv.main(args)
    assert message in capsys.readouterr().err
