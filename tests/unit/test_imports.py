"""The house rules of the package, read from the source (ast; nothing is imported):

- the pure layers (`algorithms/`, `verifier/`, `data/`) import nothing from the layers that run them;
- no import cycle between rlvr modules (imports inside functions count: they run too);
- no file above 400 lines, no function above 60.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rlvr"
PURE = ("rlvr.algorithms", "rlvr.verifier", "rlvr.data")
RUNNERS = ("rlvr.orchestrator", "rlvr.rollout", "rlvr.trainer", "rlvr.weight_sync", "rlvr.evaluation", "rlvr.cli")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _owner(name: str) -> str | None:
    """The rlvr module that ``import name`` runs last: ``name`` itself, or its longest known prefix."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:`` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = list(node.orelse)
        stack.extend(children)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    modules = _modules()
    if isinstance(node, ast.Import):
        return {_owner(alias.name) for alias in node.names} - {None}
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    out = set()
    for alias in node.names:
        full = f"{base}.{alias.name}"
        out.add(full if full in modules else _owner(base))
    return out - {None}


@cache
def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in _import_nodes(tree):
            edges |= {t for t in _targets(module, path, node) if t.startswith("rlvr") and t != module}
        graph[module] = edges
    return graph


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return out


def test_pure_layers_import_no_runner():
    bad = [f"{module} imports {target}" for module, targets in sorted(_graph().items()) if _within(module, PURE)
           for target in sorted(targets) if _within(target, RUNNERS)]
    assert not bad, "the pure layers (algorithms, verifier, data) must not import " + ", ".join(RUNNERS) + \
        ":\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = _graph()
    described = []
    for component in _cycles(graph):
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in members]
        described.append("cycle: " + "; ".join(edges))
    assert not described, "\n".join(described)


def test_file_and_function_sizes():
    bad = []
    for path in sorted(_modules().values()):
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_FILE_LINES:
            bad.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines (> {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.name} is {length} "
                               f"lines (> {MAX_FUNCTION_LINES})")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    graph = _graph()
    assert "rlvr.verifier.api" in graph["rlvr.verifier"]                 # from .api import ...
    assert "rlvr.data.reasoning_gym" in graph["rlvr.data.datasets"]      # inside load_problem_set
    assert "rlvr.algorithms" in graph["rlvr.verifier.rewards"]           # inside shaped_rewards
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
