"""The package's shape: imports flow one way, no module reaches into another's private names,
no module grows past what one sitting can read, and the audit layer does not know pytest.

Imports are read from the source (with `ast`), those inside functions and under
``TYPE_CHECKING`` included: an import deferred to keep start-up light is still a dependency.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_mps"
MAX_CODE_LINES = 350
# The package's layers, bottom first: data flows one way, images and model -> engine (and its
# Ray executor) -> checks -> the session that runs them -> reports -> pytest and the shell.
LAYERS = (
    ("choices", "errors", "fileio", "yamlfile", "versions"),
    ("engine",),
    ("cluster", "ray_actor"),
    ("audit",),
    ("session",),
    ("report",),
    ("plugin", "cli", ""),  # "": the package's own __init__, the public API
)


def module_names(root: Path) -> dict[str, Path]:
    """Every module under ``root`` by its dotted name (a package by its ``__init__``)."""
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(path: Path, name: str) -> list[tuple[str, str | None]]:
    """``(module, imported name or None)`` for every import statement in the file, at any
    depth, relative imports resolved against the module ``name``."""
    found: list[tuple[str, str | None]] = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found += [(base, alias.name) for alias in node.names]
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Which package modules each module imports (``from a import b`` counts as ``a.b`` when
    that is a module), and every private name imported from another module."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    private = []
    for name, path in modules.items():
        for module, member in imported(path, name):
            target = f"{module}.{member}" if f"{module}.{member}" in modules else module
            if target not in modules or target == name:
                continue
            graph[name].add(target)
            if target == module and member and member.startswith("_") and member[1] != "_":
                private.append(f"{name} imports {module}.{member}")
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowest[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                lowest[node] = min(lowest[node], lowest[other])
            elif other in stack:
                lowest[node] = min(lowest[node], index[other])
        if lowest[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def code_lines(path: Path) -> int:
    """Lines holding code: blank lines, comments and docstrings aside."""
    source = path.read_text()
    docstrings: set[int] = set()
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(ast.parse(source)):
        first = node.body[0] if isinstance(node, documented) and node.body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):  # a docstring
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_no_import_cycles():
    graph, _ = import_graph(PACKAGE)
    assert cycles(graph) == []


def layer(module: str) -> int:
    """The number of the layer a module of the package belongs to (`LAYERS`)."""
    top = module.split(".")[1] if "." in module else ""
    return next(number for number, names in enumerate(LAYERS) if top in names)


def test_every_module_has_a_layer_and_imports_only_its_own_and_those_below():
    graph, _ = import_graph(PACKAGE)
    upward = [
        f"{module} imports {other}"
        for module, others in graph.items()
        for other in sorted(others)
        if layer(other) > layer(module)
    ]
    assert upward == []


def test_no_private_names_imported_from_another_module():
    _, private = import_graph(PACKAGE)
    assert private == []


def test_no_module_is_too_long_to_read_in_one_sitting():
    long = {
        name: lines
        for name, path in module_names(PACKAGE).items()
        if (lines := code_lines(path)) > MAX_CODE_LINES
    }
    assert long == {}


def test_the_audit_layer_does_not_import_pytest():
    modules = module_names(PACKAGE)
    uses = [
        name
        for name, path in modules.items()
        if name.startswith("pytest_mps.audit")
        and any(module.split(".")[0] in ("pytest", "_pytest") for module, _ in imported(path, name))
    ]
    assert uses == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A package with a cycle hidden inside a function, a private import and a long module."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("from pkg.sub import b\n")
    (root / "sub" / "b.py").write_text('"""Doc."""\ndef f():\n    from ..c import _hidden\n')
    (root / "c.py").write_text("# note\n" + "import pkg.a\nx = 1\n" * 200)
    return root


def test_the_measures_find_what_is_planted(planted: Path):
    graph, private = import_graph(planted)
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert private == ["pkg.sub.b imports pkg.c._hidden"]
    assert code_lines(planted / "c.py") == 400
    assert code_lines(planted / "sub" / "b.py") == 2
