"""scripts/mutation_check.py stays usable: every planted bug still applies
(its text occurs exactly once in its file), so moving or rewriting code
cannot silently retire a mutation, and both tiers keep theirs."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import mutation_check  # noqa: E402


def test_every_mutation_applies_exactly_once():
    bad = []
    for name, (desc, edits) in mutation_check.MUTATIONS.items():
        assert desc and edits, name
        for rel, old, new in edits:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                n = f.read().count(old)
            if n != 1 or old == new:
                bad.append(f"{name}: {rel} holds {old!r} {n} times")
    assert not bad, "mutations that no longer apply:\n" + "\n".join(bad)


def test_apply_and_restore_on_a_copy(tmp_path):
    (tmp_path / "m.py").write_text("a = 1\nb = 2\n", encoding="utf-8")
    originals = mutation_check.apply(str(tmp_path), [("m.py", "b = 2", "b = 3")])
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == "a = 1\nb = 3\n"
    mutation_check.restore(str(tmp_path), originals)
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == "a = 1\nb = 2\n"
    with pytest.raises(ValueError, match="occurs 0 times"):
        mutation_check.apply(str(tmp_path), [("m.py", "c = 3", "c = 4")])


def test_both_tiers_have_mutations():
    files = {rel for _, edits in mutation_check.MUTATIONS.values() for rel, _, _ in edits}
    for path in ("minivgg/functional/conv.py", "minivgg/functional/pooling.py",
                 "minivgg/functional/activation.py", "minivgg/fast/conv.py",
                 "minivgg/fast/pooling.py", "minivgg/fast/activation.py",
                 "minivgg/autograd.py", "minivgg/fast/handoff.py"):
        assert path in files, f"no mutation plants a bug in {path}"
