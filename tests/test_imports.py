"""The imports of migsim flow one way (README, layout): the engine (kernel/, cost/) imports no
study, no output, no CLI, no host and no calibration code, and no module imports itself
through others (no cycle), counting the imports inside functions too, which are the ones a
cycle hides behind. Read from the source with ast, so a test cannot miss an import that a
particular run does not execute."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "migsim"
ENGINE = ("migsim.kernel", "migsim.cost")
ABOVE_ENGINE = (
    "migsim.studies",
    "migsim.output",
    "migsim.cli",
    "migsim.host",
    "migsim.calibrate",
    "migsim.pipeline",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The migsim module `name` stands for (a name imported from a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str) -> set[str]:
    """The migsim modules `name` imports anywhere in its source (not under TYPE_CHECKING)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "migsim" or mod.startswith("migsim."):
                for a in node.names:
                    target = _resolve(f"{mod}.{a.name}")
                    if target:
                        out.add(target)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("migsim."):
                    target = _resolve(a.name)
                    if target:
                        out.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    out.discard(name)
    out.discard("migsim")  # the package's __init__ holds only the version
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module -> the migsim modules it imports: parsed on first use, not at collection (every
    pytest-xdist worker collects this file; ~0.8 CPU s)."""
    return {name: imports_of(name) for name in MODULES}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_known_imports():
    """Not vacuous: lazy imports inside functions and relative ones are found."""
    assert "migsim.kernel.zone" in graph()["migsim.kernel.compaction"]
    assert "migsim.studies.compaction" in graph()["migsim.pipeline"]  # inside a function
    assert "migsim.output.figures" in graph()["migsim.studies.hybrid"]  # inside a function
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", [n for n in MODULES if _under(n, ENGINE)])
def test_engine_imports_nothing_above_it(name):
    bad = sorted(m for m in graph()[name] if _under(m, ABOVE_ENGINE))
    assert not bad, f"{name} imports {bad}"


def test_no_import_cycle_in_migsim():
    """Depth-first search for a back edge; the message names one cycle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph()[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph()):
        if node not in state:
            cycle = dfs(node)
            assert cycle is None, " -> ".join(cycle)
