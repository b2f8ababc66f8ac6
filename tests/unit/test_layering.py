"""Import layering: who may import what, checked over the source with ``ast``.

The rules are data: a new layer or adapter is one more row in ``RULES``, ``DIRECTIONS`` or
``STDLIB_ONLY``. On top of them the package's modules must not import each other in a circle.

Which imports count: ``RULES``, ``DIRECTIONS`` and the cycle check see every import in the
source, at module level, inside functions and under ``if TYPE_CHECKING``. A lazy import defers
a dependency, it does not remove it (the one circle this check was written for, context <->
runs.driver, was a pair of function-level imports), and a type named from a layer above is
still knowledge of that layer. Only the stdlib-only check looks at load-time imports alone,
since what it guards is what a stage container can import.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

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
        ("goldfish/server/*", "goldfish/cli*.py", "goldfish/demo.py"),
        "the domain knows nothing of MCP; only the server layer and the entry points do",
    ),
    Rule(("docker",), ("goldfish/backends/docker*",), "the docker SDK lives in its backend adapter"),
    Rule(
        ("google",),
        ("goldfish/backends/gce*", "goldfish/storage/gcs*"),
        "Google clients live in the GCE backend and GCS storage adapters",
    ),
    Rule(
        ("goldfish.web",),
        ("goldfish/web/*", "goldfish/server/*", "goldfish/cli.py"),
        "the dashboard sits above the services: only the entry points that serve it import it",
    ),
    Rule(
        ("goldfish.context",),
        (
            "goldfish/server/*",
            "goldfish/web/*",
            "goldfish/cli*.py",
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
    "goldfish.cli*",
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
ENTRY_MODULES = ("goldfish.server.app", "goldfish.cli")
HEAVY_SDKS = ("google.cloud.compute_v1", "google.cloud.storage", "docker", "matplotlib")


@dataclass(frozen=True)
class Import:
    """One imported module name, where it appears, and whether it runs when the module loads."""

    module: str
    line: int
    at_load: bool


def module_name(relative: Path) -> str:
    """``goldfish/io/__init__.py`` -> ``goldfish.io``; ``goldfish/cli.py`` -> ``goldfish.cli``."""
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


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def rule_violations(relative: str, imports: list[Import], rules: tuple[Rule, ...]) -> list[str]:
    """Lines naming each import in ``imports`` that a rule forbids for the file ``relative``."""
    return [
        f"{relative}:{imp.line} imports {imp.module}: {rule.why}"
        for rule in rules
        if not any(fnmatch(relative, pattern) for pattern in rule.allowed_in)
        for imp in imports
        if _under(imp.module, rule.imported)
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


def stdlib_violations(relative: str, package: str, imports: list[Import]) -> list[str]:
    """Load-time imports of ``relative`` that are neither the standard library nor ``package``."""
    return [
        f"{relative}:{imp.line} imports {imp.module} at module level (standard library only)"
        for imp in imports
        if imp.at_load
        and imp.module.split(".")[0] not in sys.stdlib_module_names
        and not _under(imp.module, (package,))
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


def test_source_files_when_listed_include_the_known_layers() -> None:
    files = {path.as_posix() for path in source_files()}
    assert {"goldfish/cli.py", "goldfish/server/app.py", "goldfish/validation.py"} <= files


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: "+".join(rule.imported))
def test_source_when_scanned_imports_each_guarded_module_only_from_its_allowed_layer(rule: Rule) -> None:
    problems = [
        problem
        for relative in source_files()
        for problem in rule_violations(relative.as_posix(), parsed(relative), (rule,))
    ]
    assert problems == []


@pytest.mark.parametrize("package_dir", STDLIB_ONLY)
def test_stdlib_only_package_when_loaded_imports_only_the_standard_library(package_dir: str) -> None:
    files = [path for path in source_files() if path.as_posix().startswith(package_dir + "/")]
    if not files:
        pytest.skip(f"{package_dir} does not exist yet")
    package = package_dir.replace("/", ".")
    problems = [
        problem
        for relative in files
        for problem in stdlib_violations(relative.as_posix(), package, parsed(relative))
    ]
    assert problems == []


@pytest.mark.parametrize("direction", DIRECTIONS, ids=lambda direction: direction.importers[0])
def test_source_when_scanned_imports_nothing_in_a_forbidden_direction(direction: Direction) -> None:
    problems = [
        problem
        for relative in source_files()
        for problem in direction_violations(relative.as_posix(), parsed(relative), (direction,))
    ]
    assert problems == []


def test_source_when_scanned_has_no_import_cycle() -> None:
    sources = {path.as_posix(): (SRC / path).read_text(encoding="utf-8") for path in source_files()}
    assert cycles(import_graph(sources)) == []


# The checker itself: a rule that silently matched nothing would pass forever.

HOSTILE_SOURCE = textwrap.dedent(
    """
    from __future__ import annotations
    import os
    from typing import TYPE_CHECKING
    import docker.errors
    from google.cloud import storage
    from mcp import Client
    from ..server import app
    from . import helpers

    if TYPE_CHECKING:
        import numpy

    def lazy():
        import pandas
    """
)


def test_rule_check_when_a_file_breaks_rules_reports_every_forbidden_import() -> None:
    imports = imports_of(HOSTILE_SOURCE, "goldfish.runs.service")
    problems = rule_violations("goldfish/runs/service.py", imports, RULES)
    reported = {problem.split(" imports ")[1].split(":")[0] for problem in problems}
    assert {"docker.errors", "google.cloud", "google.cloud.storage", "mcp", "goldfish.server"} <= reported


def test_rule_check_when_the_file_is_in_the_allowed_layer_reports_nothing() -> None:
    imports = imports_of("import docker\nfrom google.cloud import compute_v1\n", "goldfish.backends.x")
    assert rule_violations("goldfish/backends/docker.py", imports, RULES[1:2]) == []
    assert rule_violations("goldfish/backends/gce/compute.py", imports, RULES[2:3]) == []


def test_stdlib_check_when_a_package_imports_third_party_at_load_reports_only_those() -> None:
    imports = imports_of(HOSTILE_SOURCE, "goldfish.io", is_package=True)
    problems = stdlib_violations("goldfish/io/__init__.py", "goldfish.io", imports)
    reported = {problem.split(" imports ")[1].split(" ")[0] for problem in problems}
    # numpy (TYPE_CHECKING) and pandas (inside a function) never load with the module.
    assert reported == {
        "docker.errors",
        "google.cloud",
        "google.cloud.storage",
        "mcp",
        "mcp.Client",
        "goldfish.server",
        "goldfish.server.app",
    }


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: "+".join(rule.imported))
def test_rule_check_when_a_domain_module_imports_a_guarded_module_lazily_reports_it(rule: Rule) -> None:
    source = f"def lazy():\n    import {rule.imported[0]}.planted\n"
    imports = imports_of(source, "goldfish.runs.service")
    assert rule_violations("goldfish/runs/service.py", imports, (rule,)) == [
        f"goldfish/runs/service.py:2 imports {rule.imported[0]}.planted: {rule.why}"
    ]


# (importing file, module it imports inside a function, whether a direction forbids it)
DIRECTION_CASES = (
    ("goldfish/db/runs.py", "goldfish.runs.service", True),
    ("goldfish/db/runs.py", "goldfish.backends.factory", True),
    ("goldfish/db/runs.py", "goldfish.errors", False),
    ("goldfish/backends/docker/backend.py", "goldfish.runs.executor", True),
    ("goldfish/backends/gce/backend.py", "goldfish.server.app", True),
    ("goldfish/backends/process.py", "goldfish.context", True),
    ("goldfish/backends/process.py", "goldfish.cli_runs", True),
    ("goldfish/backends/process.py", "goldfish.storage.paths", False),
    ("goldfish/storage/gcs.py", "goldfish.backends.gce.compute", True),
    ("goldfish/storage/gcs.py", "goldfish.config", False),
    ("goldfish/io/__init__.py", "goldfish.server.toolkit", True),
    ("goldfish/io/runner.py", "goldfish.config", True),
    ("goldfish/io/runner.py", "goldfish.io.masking", False),
)


@pytest.mark.parametrize(("relative", "module", "forbidden"), DIRECTION_CASES)
def test_direction_check_when_a_planted_import_goes_up_reports_it_and_only_then(
    relative: str, module: str, forbidden: bool
) -> None:
    imports = imports_of(f"def lazy():\n    from {module} import thing\n", module_name(Path(relative)))
    problems = direction_violations(relative, imports, DIRECTIONS)
    assert bool(problems) is forbidden, problems


def test_direction_rows_when_listed_each_catch_a_planted_case() -> None:
    caught = {
        direction
        for relative, module, forbidden in DIRECTION_CASES
        if forbidden
        for direction in DIRECTIONS
        if direction_violations(relative, imports_of(f"import {module}", "x"), (direction,))
    }
    assert caught == set(DIRECTIONS)


# The circle this check was written for: the context imported the driver inside functions.
PLANTED_CIRCLE = {
    "goldfish/__init__.py": "",
    "goldfish/context.py": textwrap.dedent(
        """
        from goldfish.db.runs import RunRepository

        def settle():
            from goldfish.runs.driver import PipelineDriver
        """
    ),
    "goldfish/runs/__init__.py": "",
    "goldfish/runs/driver.py": "from goldfish.context import ServerContext\n",
    "goldfish/db/__init__.py": "",
    "goldfish/db/runs.py": "import sqlite3\n",
}


def test_cycle_check_when_a_function_level_import_closes_a_circle_reports_it() -> None:
    assert cycles(import_graph(PLANTED_CIRCLE)) == [["goldfish.context", "goldfish.runs.driver"]]


def test_cycle_check_when_a_type_checking_import_closes_a_circle_reports_it() -> None:
    sources = {
        **PLANTED_CIRCLE,
        "goldfish/context.py": "from goldfish.runs.driver import PipelineDriver\n",
        "goldfish/runs/driver.py": textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from ..context import ServerContext
            """
        ),
    }
    assert cycles(import_graph(sources)) == [["goldfish.context", "goldfish.runs.driver"]]


def test_cycle_check_when_three_modules_form_a_ring_reports_the_three_and_not_their_callee() -> None:
    sources = {
        **PLANTED_CIRCLE,
        "goldfish/context.py": "from goldfish.runs import driver\n",
        "goldfish/runs/driver.py": "from goldfish.db.runs import RunRepository\n",
        "goldfish/db/runs.py": "from goldfish import errors\n\ndef late():\n    import goldfish.context\n",
        "goldfish/errors.py": "",
    }
    assert cycles(import_graph(sources)) == [["goldfish.context", "goldfish.db.runs", "goldfish.runs.driver"]]


def test_cycle_check_when_imports_only_go_down_reports_nothing() -> None:
    sources = {**PLANTED_CIRCLE, "goldfish/runs/driver.py": "from goldfish.db.runs import RunRepository\n"}
    assert cycles(import_graph(sources)) == []


# Runtime: what importing an entry point actually loads, in a fresh interpreter.

PROBE = textwrap.dedent(
    """
    import importlib, json, sys

    attempted = []

    class Recorder:
        def find_spec(self, name, path=None, target=None):
            attempted.append(name)
            return None

    before = set(sys.modules)
    sys.meta_path.insert(0, Recorder())
    importlib.import_module(sys.argv[1])
    print(json.dumps({"loaded": sorted(set(sys.modules) - before), "attempted": attempted}))
    """
)


def imported_by(module: str, cwd: Path) -> dict[str, list[str]]:
    """Modules a fresh interpreter loads (and tries to find) when it imports ``module``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_entry_module_when_imported_fresh_does_not_load_heavy_sdks(module: str, tmp_path: Path) -> None:
    report = imported_by(module, tmp_path)
    assert module in report["loaded"]
    touched = set(report["loaded"]) | set(report["attempted"])
    assert sorted(name for name in touched if _under(name, HEAVY_SDKS)) == []


@pytest.mark.parametrize("package_dir", STDLIB_ONLY)
def test_stdlib_only_package_when_imported_fresh_loads_only_the_standard_library(
    package_dir: str, tmp_path: Path
) -> None:
    if not (SRC / package_dir).is_dir():
        pytest.skip(f"{package_dir} does not exist yet")
    report = imported_by(package_dir.replace("/", "."), tmp_path)
    foreign = [
        name
        for name in report["loaded"]
        if name.split(".")[0] not in sys.stdlib_module_names and not _under(name, ("goldfish",))
    ]
    assert foreign == []
