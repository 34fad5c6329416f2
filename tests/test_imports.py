"""The packages' import graph (read from the source, function-level imports included): no cycle anywhere, the
layers of DESIGN.md import downward only where it matters most, so serving and exporting never load training, and
serkit_synth (the synthetic voice and corpora) sits on top of serkit: only the demo, `serkit synth-iemocap` and the
export's check on clips import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = (SRC / "serkit", SRC / "serkit_synth")
# the serkit modules that may import serkit_synth: what makes the demo's corpus, the command that writes one, and
# the export's check on clips (synthetic speech when no clips are given)
SYNTH_USERS = {"serkit.demo", "serkit.commands.synth", "serkit.export.check_clips"}


def import_graph(*roots: Path) -> dict[str, set[str]]:
    """module name -> the modules of the packages at `roots` (default PACKAGES) it imports (explicitly; a
    package's __init__ only when named)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for root in roots or PACKAGES:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from .pkg import sub` imports the submodule; `from .mod import name` the module
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `import serkit.a.b.attr` -> serkit.a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module `start` (and its submodules) imports, directly or not -> the module that imports it."""
    seen = {name: "" for name in graph if name == start or name.startswith(f"{start}.")}
    todo = list(seen)
    while todo:
        node = todo.pop()
        for target in graph[node]:
            if target not in seen:
                seen[target] = node
                todo.append(target)
    return seen


def test_the_packages_have_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", ["serkit.inference", "serkit.serve", "serkit.export", "serkit.bundle"])
def test_serving_and_exporting_never_import_training(layer):
    reached = reachable(import_graph(), layer)
    training = sorted(name for name in reached if name.startswith("serkit.training"))
    assert not training, f"{layer} reaches {training[0]} through {reached[training[0]]}"


@pytest.mark.parametrize("layer, below", [
    ("serkit.data", ("serkit.model", "serkit.upstream", "serkit.downstream", "serkit.training")),
    ("serkit.upstream", ("serkit.model", "serkit.training", "serkit.data.corpora")),
    ("serkit.downstream", ("serkit.model", "serkit.training", "serkit.upstream", "serkit.data")),
    ("serkit.checkpoint", ("serkit.model", "serkit.training", "serkit.bundle")),
])
def test_lower_layers_do_not_import_higher_ones(layer, below):
    reached = reachable(import_graph(), layer)
    wrong = sorted(name for name in reached if name.startswith(below))
    assert not wrong, f"{layer} reaches {wrong[0]} through {reached[wrong[0]]}"


def test_only_the_demo_the_synth_command_and_the_export_check_import_serkit_synth():
    graph = import_graph()
    importers = {name for name, targets in graph.items()
                 if name.startswith("serkit.") and any(t.startswith("serkit_synth") for t in targets)}
    assert importers and importers <= SYNTH_USERS, f"serkit_synth imported by {sorted(importers - SYNTH_USERS)}"


@pytest.mark.parametrize("layer", ["serkit.data", "serkit.upstream", "serkit.downstream", "serkit.model",
                                   "serkit.training", "serkit.evaluation", "serkit.inference", "serkit.serve",
                                   "serkit.bundle", "serkit.checkpoint", "serkit.config", "serkit.baselines"])
def test_the_toolkit_layers_never_reach_serkit_synth(layer):
    reached = reachable(import_graph(), layer)
    assert reached, f"no module {layer}"
    synth = sorted(name for name in reached if name.startswith("serkit_synth"))
    assert not synth, f"{layer} reaches {synth[0]} through {reached[synth[0]]}"


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: a cycle made only by a lazy import inside a function is found."""
    package = tmp_path / "serkit"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..sub.a import thing\n")
    other = tmp_path / "serkit_synth"
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "c.py").write_text("from serkit.sub import b\n")
    graph = import_graph(package, other)
    assert graph["serkit.sub.a"] == {"serkit.sub.b"} and graph["serkit.sub.b"] == {"serkit.sub.a"}
    assert graph["serkit_synth.c"] == {"serkit.sub.b"}  # across packages, absolute
    assert find_cycle(graph) == ["serkit.sub.a", "serkit.sub.b", "serkit.sub.a"]
