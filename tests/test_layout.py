"""The code is laid out as the pipeline it runs: stage packages, small files, no import circle between files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
PKG = SRC / "postfit"
STAGE_PREFIXES = ("cli_", "config_", "report_", "study_", "verify_", "bench_", "eval_", "train_", "sandbox_")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The file an import of `name` runs: the module itself, or the nearest package above it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the postfit modules it imports anywhere in its file (function-level imports too: a lazy import
    is still a dependency). `from pkg import sub` points at the submodule when `sub` is one."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith("postfit"):
                    dep = _resolve(t, modules)
                    if dep and dep != name:
                        deps.add(dep)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_files():
    graph = import_graph()
    assert len(graph) > 40 and graph["postfit.cli.app"]  # the walk sees the package
    assert cycles(graph) == []


def test_every_exported_name_exists():
    """A package's `__all__` names only what it really defines or imports (a re-export can go stale)."""
    import importlib

    for name, path in _modules().items():
        if "__all__" in path.read_text(encoding="utf-8"):
            module = importlib.import_module(name)
            assert [n for n in getattr(module, "__all__", []) if not hasattr(module, n)] == [], name


def test_top_level_is_small_and_unprefixed():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 14, top
    assert [n for n in top if n.startswith(STAGE_PREFIXES)] == []
    stages = {"cli", "config", "study", "train", "evaluation", "verify", "analysis", "report", "data", "sandbox"}
    assert stages <= {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    for stage in stages:  # each says what it does
        assert ast.get_docstring(ast.parse((PKG / stage / "__init__.py").read_text())), stage


def test_no_module_over_400_lines():
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 400} == {}


def test_every_source_path_the_docs_name_exists():
    named = set()
    for doc in [ROOT / "README.md", *ROOT.glob("*.md"), *ROOT.glob("docs/*.md")]:
        named |= set(re.findall(r"src/postfit/[\w/.]*\w", doc.read_text()))
    assert named, "the README names no source path"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def _readme_layers() -> list[str]:
    """The packages and modules of the README's code map, top (the command) first."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("## How the code is laid out", 1)[1]
    return re.findall(r"^\| `(\w+)(?:/|\.py)` \|", text.split("\n## ", 1)[0], re.M)


def test_imports_point_down_the_readmes_code_map():
    """Every postfit import of every module, inside functions too, goes to its own stage or one below it in the
    README's table: the map the README draws is the one the code has."""
    layers = _readme_layers()
    top = {p.name.removesuffix(".py") for p in PKG.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert set(layers) == top - {"__init__", "__main__"}, "the README's code map must list every stage"
    rank = {name: i for i, name in enumerate(layers)}

    def stage(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in rank else None

    upward = sorted(f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
                    if stage(m) and stage(d) and rank[stage(d)] < rank[stage(m)])  # fmt: skip
    assert upward == []
