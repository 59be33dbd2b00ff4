"""No import circles in the package: the modules form layers, each importing
only modules below it, counting every import (those inside functions too,
which only hide a circle until the function runs) and the package
``__init__`` files an import goes through."""
import ast
import os

from conftest import ROOT


def _modules():
    """{dotted name: path} of every module of the minivgg package."""
    mods = {}
    base = os.path.join(ROOT, "minivgg")
    for folder, _, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                mods[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def import_graph():
    """{module: {modules it imports}}, within minivgg. Importing a.b.c runs
    a/__init__ and a/b/__init__ too; a module's own packages are left out
    (Python has already started them when the module runs)."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        package = path.endswith("__init__.py")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                parts = m.split(".") if package else m.split(".")[:-1]
                if node.level:
                    parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else [])) \
                    if node.level else node.module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for t in targets:
                bits = t.split(".")
                for i in range(1, len(bits) + 1):
                    p = ".".join(bits[:i])
                    if p in mods and p != m and not m.startswith(p + "."):
                        graph[m].add(p)
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_circles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(g) == [["a", "b", "c"]]
    graph = import_graph()
    assert "minivgg.fast.select" in graph["minivgg.nn.layers"]      # the door, below the layers
    assert "minivgg.fast.select" not in graph["minivgg.functional.conv"]  # the textbook tier
    assert not any(m.startswith("minivgg.fast") for m in graph["minivgg.functional.conv"])
