"""What one Python source file imports, read statically (AST), or why that cannot be followed.

``import a.b``, ``from a import b``, relative imports, and ``importlib.import_module("a.b")`` or
``__import__("a.b")`` with a literal name are imports. An import with a computed name, code run
by path (``exec``, ``runpy``, ``spec_from_file_location``, ...) or a change to ``sys.path`` makes
the file opaque, with the reason. The stage code key (``runs/imports.py``) and the pre-run
static review (``svs/static_review.py``) both read stage modules through this.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

# Calls that import a module named by their first argument.
_IMPORT_CALLS = frozenset({"import_module", "__import__"})
# Calls that run code the analysis cannot see (by path, from a string, from a spec).
_OPAQUE_CALLS = frozenset(
    {
        "exec",
        "run_path",
        "run_module",
        "spec_from_file_location",
        "SourceFileLoader",
        "load_source",
        "module_from_spec",
    }
)
_PATH_CHANGES = frozenset({"append", "insert", "extend"})


@dataclass(frozen=True)
class ImportRef:
    """One import statement (or literal import call) of a file."""

    name: str
    level: int
    names: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ParsedFile:
    """The imports of one file, or why they cannot be followed."""

    imports: tuple[ImportRef, ...]
    opaque: str | None


def parse_source(data: bytes) -> ParsedFile:
    """The imports of one Python file, or what keeps them from being followed."""
    try:
        module = ast.parse(data)
    except (SyntaxError, ValueError) as exc:
        return ParsedFile((), f"it does not parse ({type(exc).__name__})")
    return read_tree(module)


def read_tree(tree: ast.AST) -> ParsedFile:
    """The imports of an already parsed file, or what keeps them from being followed."""
    visitor = _ImportVisitor()
    visitor.visit(tree)
    return ParsedFile(tuple(visitor.imports), visitor.opaque)


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.imports: list[ImportRef] = []
        self.opaque: str | None = None

    def _mark(self, node: ast.AST, what: str) -> None:
        if self.opaque is None:
            self.opaque = f"line {getattr(node, 'lineno', '?')}: {what}"

    def visit_Import(self, node: ast.Import) -> None:
        self.imports += [ImportRef(alias.name, 0, line=node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(a.name for a in node.names)
        self.imports.append(ImportRef(node.module or "", node.level, names, line=node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if last in _IMPORT_CALLS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                text = first.value
                level = len(text) - len(text.lstrip("."))
                self.imports.append(ImportRef(text.lstrip("."), level, line=node.lineno))
            else:
                self._mark(node, f"{name}() with a computed module name")
        elif last in _OPAQUE_CALLS:
            self._mark(node, f"{name}() runs code the import analysis cannot follow")
        elif last in _PATH_CHANGES and name.startswith("sys.path."):
            self._mark(node, "it changes sys.path")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_path_targets(node, node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_path_targets(node, [node.target])
        self.generic_visit(node)

    def _check_path_targets(self, node: ast.AST, targets: Iterable[ast.expr]) -> None:
        if any(_dotted(target) == "sys.path" for target in targets):
            self._mark(node, "it changes sys.path")


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a name or attribute chain; '' for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Subscript):  # sys.path[0:0] = [...]
        inner = _dotted(node.value)
        return inner
    return ""
