"""No import circles among the pkpi modules (include/pkpi, every subpackage).

A circle (a imports b, b imports a, directly or round a longer loop) means neither module can
be read, tested or changed on its own, and which one Python finishes first depends on who is
imported first. Every import counts here: top-level ones, ones inside a function (a "lazy"
import only hides a circle) and ones under ``if TYPE_CHECKING:``. Importing a submodule runs
its package's ``__init__`` implicitly; that is not counted as an edge, only what the code
names.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "include" / "pkpi"


def module_name(path: Path) -> str:
    parts = ("pkpi", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The pkpi modules ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # "from pkg import sub" imports the submodule sub; "from mod import name" imports mod.
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for target in targets:
            # "import pkpi.a.b" names pkpi.a.b; a name inside a module resolves to the module.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_graph_sees_the_imports_it_checks():
    """The checker itself: relative, absolute, lazy and submodule imports all become edges."""
    graph = import_graph()
    assert "pkpi.scorecard.assemble" in graph["pkpi.scorecard.produce"]
    assert "pkpi.scorecard.model" in graph["pkpi.scorecard.charts"]  # from .model import ...
    assert "pkpi.disclosure" in graph["pkpi.scorecard.assemble"]  # from ..disclosure import ...
    assert "pkpi.scorecard" in graph["pkpi.delivery"]  # from .scorecard import ...
    assert "pkpi.scorecard" in graph["pkpi.cli"]  # a lazy import inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_pkpi_module_is_part_of_an_import_circle():
    found = cycles(import_graph())
    assert not found, (
        "These pkpi modules import each other in a circle (directly or round a loop): "
        + "; ".join(" <-> ".join(c) for c in found)
        + ". Move what both need into a module lower down that neither imports back."
    )
