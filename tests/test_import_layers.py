"""Each package directory of edgebert imports downwards only: no import circle between its modules.

Every ``import`` counts, at module level and inside functions alike (a function-level import hides a
circle from Python but not from the reader). The graph is built from the source with ``ast``, one per
package directory: an edge ``a -> b`` when module ``a`` imports module ``b`` of the same directory
(relatively or absolutely; ``from . import name`` of something ``__init__.py`` defines is an edge to
``__init__``). Any strongly connected component of more than one module, or a module importing
itself, fails the test with the circle spelled out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgebert

ROOT = Path(edgebert.__file__).parent


def _packages(root: Path) -> list[Path]:
    return [root, *sorted(p for p in root.rglob("*") if p.is_dir() and (p / "__init__.py").is_file())]


def _dotted(root: Path, directory: Path) -> str:
    return ".".join(["edgebert", *directory.relative_to(root).parts])


def _imported(node: ast.AST, package: str) -> list[str]:
    """Absolute dotted names an import statement reaches (``from x import y`` gives ``x.y`` and ``x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        parts = package.split(".")
        base = parts[:len(parts) - node.level + 1]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    return [module, *(f"{module}.{a.name}" for a in node.names)]


def import_graph(directory: Path, package: str) -> dict[str, set[str]]:
    """Module -> modules of the same directory it imports anywhere in its source."""
    modules = {("__init__" if p.name == "__init__.py" else p.stem): p for p in directory.glob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = _imported(node, package)
            if not targets:
                continue
            hit = False
            for target in targets:
                if target.startswith(package + "."):
                    first = target[len(package) + 1:].split(".")[0]
                    if first in modules:
                        graph[name].add(first)
                        hit = True
            # ``from . import X`` / ``from package import X`` where X is no module: a name of __init__.py
            if (not hit and isinstance(node, ast.ImportFrom) and targets[0] == package
                    and not all((directory / a.name).is_dir() for a in node.names)):
                graph[name].add("__init__")
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a circle in them (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_any_package_directory():
    problems = []
    for directory in _packages(ROOT):
        package = _dotted(ROOT, directory)
        graph = import_graph(directory, package)
        for component in circles(graph):
            edges = ", ".join(f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component)
            problems.append(f"{package}: {' <-> '.join(component)} ({edges})")
    assert not problems, "import circles (give the shared pieces a module of their own):\n" + "\n".join(problems)


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The detector itself: relative, absolute, function-level and ``from . import`` circles are found."""
    pkg = tmp_path / "edgebert" / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import sub\nA = 1\ndef f():\n    from .b import B\n")
    (pkg / "b.py").write_text("import edgebert.demo.c\nB = 2\n")
    (pkg / "c.py").write_text("from edgebert.demo.a import A\n")
    (pkg / "d.py").write_text("from . import A\n")  # a name of __init__.py
    (pkg / "e.py").write_text("from ..demo import sub\n")  # a subpackage, not __init__
    graph = import_graph(pkg, "edgebert.demo")
    assert graph == {"__init__": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"__init__"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    graph["d"].add("d")
    graph["a"].add("__init__")
    assert sorted(circles(graph)) == [["__init__", "a", "b", "c"], ["d"]]
