"""The package's layering: the registry imports nothing of the package, the core never imports
``parsers``, ``detectors`` or ``experiments`` (nor spaCy or detectron2), and the core's imports
form no circle."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "graphmatch"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(imported module, line, at module level?) of every import statement in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    pkg = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            yield base, node.lineno, id(node) in top
            for a in node.names:  # "from graphmatch import config" imports graphmatch.config
                yield f"{base}.{a.name}", node.lineno, id(node) in top


def _core_files():
    return sorted(p for p in CORE.rglob("*.py"))


def test_registry_imports_nothing_of_the_package():
    code = ("import sys, graphmatch.registry; "
            "print(sorted(m for m in sys.modules if m == 'graphmatch' or m.startswith(('graphmatch.', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['graphmatch', 'graphmatch.registry']"


@pytest.mark.parametrize("forbidden", ["parsers", "detectors", "experiments", "spacy", "detectron2"])
def test_core_never_imports(forbidden):
    hits = [f"{p.relative_to(ROOT)}:{line}" for p in _core_files() for mod, line, _ in _imports(p)
            if mod == forbidden or mod.startswith(forbidden + ".")]
    assert not hits, f"graphmatch imports {forbidden}: {hits}"


def test_no_import_circle_in_the_core():
    modules = {_module_name(p): p for p in _core_files()}
    graph = {m: set() for m in modules}
    for m, p in modules.items():
        for mod, _, _ in _imports(p):
            while mod and mod not in modules:  # "graphmatch.models.scan.SCAN" -> the module
                mod = mod.rpartition(".")[0]
            if mod and mod != m:
                graph[m].add(mod)
    # imports inside functions count too: a circle hidden in a function is still a circle.
    # A module inside a package importing the package itself (to reach a sibling through its
    # __init__) closes one as well; registries therefore live in modules of their own.
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles[:10])
