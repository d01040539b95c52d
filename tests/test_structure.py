"""The project's structure: layers that import one way, no import circles, and a server that
starts without the model runtime. Plain Python: an import graph read from the source (ast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("inference", "lsp_server", "quantize", "bench")
# Who may not import whom: a lower layer never imports a higher one.
FORBIDDEN = {
    "inference": ("lsp_server", "bench", "quantize", "pygls", "lsprotocol"),
    "quantize": ("lsp_server", "bench"),
    "lsp_server": ("bench", "quantize", "ctranslate2", "torch", "transformers"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Modules `module` imports anywhere in its code (not under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports (and, for third-party ones, their top name)."""
    files = {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in _imports(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"):
            if name.split(".")[0] in PACKAGES:
                if name in files:
                    targets.add(name)
            else:
                targets.add(name.split(".")[0])
        graph[module] = targets - {module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            strong(node)
    return circles


def _is_package_face(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").exists()


def test_the_graph_sees_the_known_edges():
    graph = import_graph()
    assert "inference.completion.pipeline" in graph["lsp_server.session"]
    assert "inference.completion.stop" in graph["inference.completion.postprocess.chain"]
    assert "pygls" in graph["lsp_server.session"] and "ctranslate2" in graph["inference.engines.runtime"]


def test_no_layer_imports_a_higher_one():
    wrong = [f"{module} imports {target}" for module, targets in import_graph().items()
             for target in sorted(targets) if any(target == f or target.startswith(f + ".")
                                                  for f in FORBIDDEN.get(module.split(".")[0], ()))]
    assert wrong == []


def test_no_import_circles():
    graph = {module: {t for t in targets if not _is_package_face(t)} for module, targets in import_graph().items()
             if not _is_package_face(module)}  # a package's face only hands its modules' names on
    assert _circles(graph) == []


@pytest.mark.parametrize("module", ["lsp_server.config", "lsp_server.server", "lsp_server.cli", "inference"])
def test_importing_the_server_does_not_load_the_model_runtime(module: str):
    code = (f"import sys, {module}\n"
            "loaded = sorted(m for m in ('ctranslate2', 'torch', 'transformers') if m in sys.modules)\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_runtime_loads_with_the_passive_wait_policy():
    code = ("import os; os.environ.pop('OMP_WAIT_POLICY', None)\n"
            "from inference.engines.runtime import ctranslate2\n"
            "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
