"""Import layering: the rules as data and the ``ast`` checker that applies them.

``test_layering`` applies them to the source; ``test_layering_checker`` proves each check
reports a planted violation.

The rules are data: a new layer or adapter is one more row in ``RULES``, ``DIRECTIONS`` or
``STDLIB_ONLY``. On top of them the package's modules must not import each other in a circle,
and neither may its top-level packages (``runs`` importing ``svs`` importing ``runs``, each
through a different module, is a circle of packages though no module circles back).

Which imports count: ``RULES``, ``DIRECTIONS`` and the cycle check see every import in the
source, at module level, inside functions and under ``if TYPE_CHECKING``. A lazy import defers
a dependency, it does not remove it (the one circle this check was written for, context <->
runs.driver, was a pair of function-level imports), and a type named from a layer above is
still knowledge of that layer. Only the stdlib-only check looks at load-time imports alone,
since what it guards is what a stage container can import.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import goldfish

SRC = Path(goldfish.__file__).resolve().parent.parent  # the folder holding the goldfish package


@dataclass(frozen=True)
class Rule:
    """Modules under any of ``imported`` may be imported only by files matching ``allowed_in``.

    Both sides are prefixes/globs: ``imported`` matches a module and its submodules; ``allowed_in``
    holds ``fnmatch`` globs over paths relative to ``src/`` (``*`` also crosses ``/``).
    """

    imported: tuple[str, ...]
    allowed_in: tuple[str, ...]
    why: str


RULES = (
    Rule(
        ("goldfish.server", "mcp"),
        # The CLI modules and the demo are entry points above the server: they start it or talk to it.
        ("goldfish/server/*", "goldfish/cli/*", "goldfish/demo.py"),
        "the domain knows nothing of MCP; only the server layer and the entry points do",
    ),
    Rule(
        ("docker",),
        ("goldfish/backends/docker/adaptor.py",),
        "the docker SDK is imported in one place: the docker backend's adaptor",
    ),
    Rule(
        ("google",),
        ("goldfish/backends/gce/*", "goldfish/storage/gcs_adaptor.py"),
        "Google clients live in the GCE backend and the GCS storage adaptor",
    ),
    Rule(
        ("goldfish.web",),
        ("goldfish/web/*", "goldfish/server/*", "goldfish/cli/*"),
        "the dashboard sits above the services: only the entry points that serve it import it",
    ),
    Rule(
        ("goldfish.context",),
        (
            "goldfish/server/*",
            "goldfish/web/*",
            "goldfish/cli/*",
            "goldfish/demo.py",
            "goldfish/driver_entry.py",
        ),
        "the composition root wires the layers below it; only the faces and entry points above it open it",
    ),
)

# The domain: services and their models, above the adapters (backends, storage, db, io).
DOMAIN = (
    "goldfish.workspaces",
    "goldfish.pipelines",
    "goldfish.runs",
    "goldfish.memory",
    "goldfish.data",
    "goldfish.svs",
    "goldfish.secrets",
    "goldfish.backups",
)
# Above the domain: the composition root and the faces/entry points built on it.
TOP = (
    "goldfish.context",
    "goldfish.server",
    "goldfish.web",
    "goldfish.cli",
    "goldfish.demo",
    "goldfish.driver_entry",
    "goldfish.__main__",
)


@dataclass(frozen=True)
class Direction:
    """Files matching ``importers`` must not import modules under ``forbidden`` (but ``allowed``).

    ``importers`` are ``fnmatch`` globs over paths relative to ``src/``; ``forbidden`` and
    ``allowed`` are module globs, each also covering the submodules of what it names.
    """

    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()


DIRECTIONS = (
    Direction(
        ("goldfish/db/*",),
        (*DOMAIN, *TOP, "goldfish.backends", "goldfish.storage"),
        "the database layer imports nothing above it",
    ),
    Direction(
        ("goldfish/backends/*",),
        (*DOMAIN, *TOP),
        "a backend is driven by the services and knows neither them nor the server",
    ),
    Direction(
        ("goldfish/storage/*",),
        (*DOMAIN, *TOP, "goldfish.backends"),
        "storage sits below the backends (they use it, never the other way)",
    ),
    Direction(
        ("goldfish/io/*",),
        ("goldfish",),
        "the in-stage runtime runs in stage containers: nothing of the server, not even lazily",
        allowed=("goldfish.io",),
    ),
)

# Packages that must import with the standard library alone (their own modules aside): they run
# inside stage containers where only Python is guaranteed.
STDLIB_ONLY = ("goldfish/io", "goldfish/backends/gce/vm")

# Modules that must stay light to import: importing them never loads these heavy SDKs.
ENTRY_MODULES = ("goldfish.server.app", "goldfish.cli.app")
HEAVY_SDKS = ("google.cloud.compute_v1", "google.cloud.storage", "docker", "matplotlib")


@dataclass(frozen=True)
class Import:
    """One imported module name, where it appears, and whether it runs when the module loads."""

    module: str
    line: int
    at_load: bool


def module_name(relative: Path) -> str:
    """``goldfish/io/__init__.py`` -> ``goldfish.io``; ``goldfish/cli/app.py`` -> ``goldfish.cli.app``."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    # ``from a import b`` may import the submodule a.b: report both, a rule on either applies.
    return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, importer: str, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source``; ``at_load`` is False inside functions and ``if TYPE_CHECKING``."""
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, at_load) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                names = _absolute(child, importer, is_package)
                found.extend(Import(name, child.lineno, at_load) for name in names)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), at_load)
            else:
                visit(child, at_load)

    visit(ast.parse(source), True)
    return found


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    """True when ``module`` is one of ``prefixes`` or a submodule of one."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def rule_violations(relative: str, imports: list[Import], rules: tuple[Rule, ...]) -> list[str]:
    """Lines naming each import in ``imports`` that a rule forbids for the file ``relative``."""
    return [
        f"{relative}:{imp.line} imports {imp.module}: {rule.why}"
        for rule in rules
        if not any(fnmatch(relative, pattern) for pattern in rule.allowed_in)
        for imp in imports
        if under(imp.module, rule.imported)
    ]


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch(module, pattern) or fnmatch(module, pattern + ".*") for pattern in patterns)


def direction_violations(
    relative: str, imports: list[Import], directions: tuple[Direction, ...]
) -> list[str]:
    """Lines naming each import of the file ``relative`` that goes a forbidden direction."""
    return [
        f"{relative}:{imp.line} imports {imp.module}: {direction.why}"
        for direction in directions
        if any(fnmatch(relative, pattern) for pattern in direction.importers)
        for imp in imports
        if _matches(imp.module, direction.forbidden) and not _matches(imp.module, direction.allowed)
    ]


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` it imports (any import, see the module docstring).

    ``sources`` maps paths relative to ``src/`` to their text. ``from pkg import name`` counts
    as importing ``pkg`` and, when it is one, the submodule ``pkg.name``.
    """
    modules = {module_name(Path(relative)): relative for relative in sources}
    return {
        module: {
            imp.module
            for imp in imports_of(sources[relative], module, is_package=relative.endswith("__init__.py"))
            if imp.module in modules and imp.module != module
        }
        for module, relative in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: each group of modules that reach one another, sorted."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return sorted(found)


def package_of(module: str) -> str:
    """The top-level package (or module) of goldfish that ``module`` is in.

    ``goldfish.runs.driver`` → ``goldfish.runs``; ``goldfish.context`` is its own.
    """
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` one level up: goldfish's top-level packages and modules, and which import which."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = package_of(module)
        packages.setdefault(source, set()).update(package_of(target) for target in targets)
        packages[source].discard(source)
    return packages


def crossing_imports(graph: dict[str, set[str]], packages: list[str]) -> list[str]:
    """The module imports that tie ``packages`` together (what to cut to break their circle)."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if package_of(module) in packages
        and package_of(target) in packages
        and package_of(module) != package_of(target)
    )


def stdlib_violations(relative: str, package: str, imports: list[Import]) -> list[str]:
    """Load-time imports of ``relative`` that are neither the standard library nor ``package``."""
    return [
        f"{relative}:{imp.line} imports {imp.module} at module level (standard library only)"
        for imp in imports
        if imp.at_load
        and imp.module.split(".")[0] not in sys.stdlib_module_names
        and not under(imp.module, (package,))
    ]


def source_files() -> list[Path]:
    """Every Python file of the goldfish package, relative to ``src/``."""
    return sorted(path.relative_to(SRC) for path in (SRC / "goldfish").rglob("*.py"))


def parsed(relative: Path) -> list[Import]:
    """The imports of one source file."""
    return imports_of(
        (SRC / relative).read_text(encoding="utf-8"),
        module_name(relative),
        is_package=relative.name == "__init__.py",
    )
