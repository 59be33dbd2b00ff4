"""Keeping freed memory in the process (minivgg/memory.py): with it, a big
array freed and allocated again costs no page faults; without it, every
allocation maps fresh pages. Counted in page faults, not time, in a fresh
process each (the setting is the whole process's)."""
import json
import subprocess
import sys
import textwrap

import pytest

from minivgg import memory
from minivgg.train import Recipe, Trainer

CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from minivgg import memory
    took = memory.keep_freed_memory() if sys.argv[1] == "keep" else memory.release_freed_memory()

    def faults_of_a_fresh_64_mib_array():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.empty(16 << 20, np.float32)
        a.fill(1.0)                     # touch every page
        del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    first = faults_of_a_fresh_64_mib_array()
    again = [faults_of_a_fresh_64_mib_array() for _ in range(3)]
    print(json.dumps({"took": took, "keeping": memory.keeping(), "first": first,
                      "again": again}))
""")


def _run(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def _glibc():
    return memory._glibc() is not None


@pytest.mark.skipif(not _glibc(), reason="needs glibc (mallopt); elsewhere both calls are no-ops")
def test_kept_memory_is_reused_without_page_faults():
    kept = _run("keep")
    assert kept["took"] and kept["keeping"]
    assert kept["first"] >= 16                       # the first time, pages must come in
    assert max(kept["again"]) <= 8, kept             # then the heap's own, already mapped
    released = _run("release")
    assert released["took"] and not released["keeping"]
    assert min(released["again"]) >= 16, released    # mapped afresh every time (2 MiB pages at most)


def test_without_glibc_both_are_no_ops(monkeypatch):
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    assert memory.keep_freed_memory() is False and memory.keeping() is False
    assert memory.release_freed_memory() is False


@pytest.mark.parametrize("keep", [True, False])
def test_trainer_keeps_freed_memory_unless_told_not_to(tmp_path, monkeypatch, keep):
    import minivgg.train.trainer as train
    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append(1) or True)
    r = Recipe(data="synthetic", image_size=32, crop=32, scale="32", batch_size=4, epochs=1,
               width_mult=1 / 16, fc_width=8, out=str(tmp_path / "run"), progress=False,
               keep_freed_memory=keep)
    Trainer(r, log=lambda *_: None)
    assert calls == ([1] if keep else [])


def test_the_command_line_flag(tmp_path):
    from minivgg.cli.train import parse_args, recipe_from_args
    argv = ["--out", str(tmp_path / "x")]
    assert recipe_from_args(parse_args(argv), argv).keep_freed_memory is True
    argv += ["--release-freed-memory"]
    assert recipe_from_args(parse_args(argv), argv).keep_freed_memory is False
