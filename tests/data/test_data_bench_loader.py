"""benchmarks/bench_loader.py runs end to end at toy size and edits only its own markdown section."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loader.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_loader_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_section_is_replaced_in_place(tmp_path):
    bench = load_bench()
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Conv\n\nconv figures\n\n## Data loader\n\nold\n\n## GEMM\n\ngemm\n")
    bench.write_section(str(md), "Data loader", "new figures\n")
    text = md.read_text()
    assert "old" not in text and "new figures" in text
    assert text.index("## Conv") < text.index("## Data loader") < text.index("## GEMM")
    assert "conv figures" in text and "gemm" in text
    fresh = tmp_path / "fresh.md"
    bench.write_section(str(fresh), "Data loader", "x\n")
    assert fresh.read_text().startswith("# Benchmarks\n\n## Data loader\n")


def test_runs_at_toy_size(tmp_path, capsys):
    bench = load_bench()
    md = tmp_path / "b.md"
    bench.main(["--workers", "0", "--synthetic-images", "16", "--synthetic-batch", "8",
                "--jpeg-count", "3", "--jpeg-images", "2", "--jpeg-batch", "2", "--write-md", str(md)])
    out = capsys.readouterr().out
    assert "SyntheticShapes" in out and "JPEG" in out
    text = md.read_text()
    assert "## Data loader" in text and "| SyntheticShapes" in text and "logical CPUs" in text
