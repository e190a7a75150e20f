"""The shape of the package: imports point one way and private names stay in their module.

The import graph of ``libdeclip`` (every ``import`` and ``from ... import`` of a module of the
package, at module level or inside a function) must have no cycle, and no module may import a
private name (one with a leading underscore) defined in another module. Modules whose own name is
private (``_native``, ``_report``, ...) are the package's internals: other modules of the package
may import them and their public names, users may not rely on them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "libdeclip"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """The package's Python modules (not the plug-ins it carries as data), by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if "_plugins" not in p.relative_to(PACKAGE).parts[:-1]}


#: The compiled core: a module of the package without a .py file.
NATIVE = "libdeclip._native"


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for each import of a package module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "libdeclip"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "libdeclip":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in known:  # ``from libdeclip.io import dng``: the module, after its package's
                    found += [(sub, None, node.lineno), (module, None, node.lineno)]  # __init__
                else:
                    found.append((module, alias.name, node.lineno))
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    known = set(modules) | {NATIVE}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for name, path in modules.items():
        for target, symbol, line in _imports(name, path, known):
            if target == name:
                continue
            edges[name].add(target)
            if symbol is not None and symbol.startswith("_") and not symbol.startswith("__"):
                private.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}.{symbol}")
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _without_package_init(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    # ``libdeclip/__init__.py`` re-exports the public API from the stage modules; a stage module
    # importing ``libdeclip.x`` makes Python run the package's __init__ first, which is not an
    # import of the API by that module. So the package node stands for its __init__ only.
    return {m: {t for t in ts if t != "libdeclip"} for m, ts in edges.items()}


def test_no_import_cycles() -> None:
    edges, _ = _graph()
    cycles = _cycles(_without_package_init(edges))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_names_across_modules() -> None:
    _, private = _graph()
    assert not private, "private names imported from another module:\n" + "\n".join(private)


def test_the_checks_see_a_cycle_and_a_private_import() -> None:
    # the analysis itself, on a made-up graph: a test that cannot fail is no test
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    edges, _ = _graph()
    assert "libdeclip.session" in edges["libdeclip"]
