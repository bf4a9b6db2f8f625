"""The house's shape: no module of the product imports, however indirectly, a module that imports it.

Every import counts, at the top of a module or inside a function (an import put off to the call only hides a
circle from Python's loader, not from the reader), and `if TYPE_CHECKING:` ones too. A name taken from a package
(`from . import clock`, `from .workflow import Actor`) counts as an import of the submodule of that name when there
is one, else of the package's `__init__.py`; a package's `__init__.py` importing its own submodules is how a package
gathers them, and is not followed back.
"""
from __future__ import annotations

import ast
from pathlib import Path

from app import ROOMS

ROOT = Path(__file__).resolve().parent.parent
TOP = ("app", "worker", "scheduler")  # the process entry points beside the rooms


def product_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the rooms and the top-level scripts."""
    modules = {name: ROOT / f"{name}.py" for name in TOP}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict) -> set[str]:
    """The product modules `name` (at `path`) imports, resolved as the docstring says."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a module outside: its nearest product parent
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    if path.name == "__init__.py":  # a package gathering its own submodules
        found = {target for target in found if not target.startswith(name + ".")}
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_imports_are_resolved_to_submodules_and_packages():
    modules = product_modules()
    engine = imports_of("tickets.workflow.engine", modules["tickets.workflow.engine"], modules)
    assert {"tickets.clock", "tickets.access", "tickets.workflow.registry"} <= engine
    assert "tickets.workflow" not in engine


def test_no_module_imports_itself_through_others():
    modules = product_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 300  # it read the imports
    assert circles(graph) == []
