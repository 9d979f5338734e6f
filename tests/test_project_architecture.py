"""The house rules of issue #26, read from the source: no import circle (lazy imports inside functions
count too), a library that never imports a trainer, a dataset package that is dataset code only, and
infrastructure that depends on no package of the project."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("infra", "clevr_ds", "renderer", "detailclip", "benchmark", "measure")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules["cli"] = ROOT / "cli.py"
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module this one imports, at module level or inside functions (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {m for m in imports_of(name, path, modules) if m in modules and m != name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_project_has_no_import_circle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _third_party(name: str, path: Path) -> set[str]:
    return {m.split(".")[0] for m in imports_of(name, path, {})}


@pytest.mark.parametrize("package, forbidden", [
    ("clevr_ds", {"bpy", "torch", "ray", "click", "renderer", "detailclip", "benchmark"}),
    ("infra", {"bpy", "torch", "clevr_ds", "renderer", "detailclip", "benchmark"}),
])  # fmt: skip
def test_a_package_imports_nothing_it_must_not(package, forbidden):
    offenders = {name: sorted(_third_party(name, path) & forbidden)
                 for name, path in project_modules().items() if name.split(".")[0] == package}  # fmt: skip
    assert {n: bad for n, bad in offenders.items() if bad} == {}


def test_the_detailclip_library_never_imports_a_trainer_or_a_loss():
    edges = graph()
    training = {m for m in edges if m.startswith("detailclip.training")}
    assert training, "the trainers and losses live in the package detailclip.training"
    library = [m for m in edges if m.split(".")[0] in ("detailclip", "benchmark") and m not in training]
    assert {m: sorted(edges[m] & training) for m in library if edges[m] & training} == {}
