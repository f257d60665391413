"""The house's plan holds: marigold/'s folders import each other in one direction only, and the README's first
screen stays a first screen (issue #18, item 5)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "marigold"


def _part(module: str) -> str:
    """'marigold.video.io' → 'video'; top-level modules ('marigold.cli', 'marigold.errors') are their own part."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every marigold module a file imports (relative imports resolved), lazy ones inside functions included."""
    here = ["marigold", *path.relative_to(PKG).with_suffix("").parts]
    package = here[:-1] if path.name != "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("marigold"):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` names modules
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("marigold"))
    return found


def test_the_folders_name_the_parts():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert {"core", "video", "geometry", "io"} <= folders
    flat = [p.name for p in PKG.glob("*.py")]
    assert len(flat) <= 6, f"marigold/ grows flat again: {sorted(flat)}"  # __init__, __main__, cli, errors, optional


def test_no_import_circles_between_parts():
    edges: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        src = _part(".".join(["marigold", *path.relative_to(PKG).with_suffix("").parts]))
        for mod in _imports(path):
            dst = _part(mod)
            if dst != src and (PKG / dst).is_dir():
                edges.setdefault(src, set()).add(dst)
    # depth-first search for a cycle among the folders (the package root and cli.py sit on top of everything)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, ()):
            assert state.get(nxt) != 1, f"import circle: {' → '.join(trail + [node, nxt])}"
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in list(edges):
        if node not in state:
            visit(node, [])
    assert "video" not in edges.get("core", set()) and "geometry" not in edges.get("core", set())


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _file_imports(path: Path, known: set[str]) -> set[str]:
    """The files (module names in ``known``) that ``path`` imports: at module level and lazily inside functions
    alike, but not under ``if TYPE_CHECKING:`` (annotations only, never run). ``from a.b import c`` counts as
    a.b.c where that is a module, else a.b; a parent package run on the way (a.__init__) does not count."""
    name = _module(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def file_of(mod: str) -> str | None:
        parts = mod.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        return ".".join(parts) or None

    found: set[str | None] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for c in child.orelse:
                    visit(ast.Module(body=[c], type_ignores=[]))
                continue
            if isinstance(child, ast.ImportFrom):
                base = package[:len(package) - child.level + 1] if child.level else []
                mod = ".".join(base + ([child.module] if child.module else []))
                found.update(file_of(f"{mod}.{a.name}") if f"{mod}.{a.name}" in known else file_of(mod)
                             for a in child.names)
            elif isinstance(child, ast.Import):
                found.update(file_of(a.name) for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m and m != name}


def _file_circles(folder: str) -> list[list[str]]:
    """Every import circle between the files of ``folder`` (strongly connected groups of two or more)."""
    paths = {_module(p): p for p in (ROOT / folder).rglob("*.py")}
    edges = {m: _file_imports(p, set(paths)) for m, p in paths.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in edges[v]:
            if w not in order:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(edges):
        if v not in order:
            strong(v)
    return circles


@pytest.mark.parametrize("folder", ["marigold", "train"])
def test_no_import_circles_between_files(folder):
    """No file imports, through any chain, a file that imports it back: each circle has one file that knows
    too much (issue #37: checkpoint ↔ modality ↔ prompts, coco ↔ segmentation, train.data ↔ segmentation)."""
    circles = _file_circles(folder)
    assert not circles, "import circles: " + "; ".join(" ↔ ".join(c) for c in circles)


def test_readme_first_screen_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text().split("\n")
    assert len(text) < 60
    first = "\n".join(text[:40])
    assert "python -m marigold" in first and "bash .ci/run" in first and "docs/pictures/" in first
    for link in [l.split("](")[1].split(")")[0] for l in first.split("\n") if "](" in l]:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to a missing page: {link}"


def test_every_import_inside_the_package_resolves():
    """Lazy imports inside functions too, in the package and in the trainer, benches, docs scripts and tests: a
    module moved between folders must not leave a stale import behind that fails only when its function runs."""
    import importlib
    import importlib.util

    bad = []
    users = [p for d in ("train", "bench", "docs", "tests") for p in (ROOT / d).rglob("*.py")]
    for path in [*PKG.rglob("*.py"), *users]:
        inside = path.is_relative_to(PKG)
        package = ["marigold", *path.relative_to(PKG).parts[:-1]] if inside else []
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level and inside:
                mod = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif not node.level and (node.module or "").split(".")[0] == "marigold":  # the rest of the repo
                mod = node.module
            else:
                continue
            try:
                module = importlib.import_module(mod)
            except ImportError as e:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {mod} ({e})")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name) and importlib.util.find_spec(f"{mod}.{alias.name}") is None:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {mod} has no {alias.name}")
    assert not bad, "\n".join(bad)
