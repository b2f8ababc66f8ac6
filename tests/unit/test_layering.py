"""Import layering: who may import what, checked over the source with ``ast``.

The rules are data: a new layer or adapter is one more row in ``RULES`` or ``STDLIB_ONLY``.
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
        ("goldfish/web/*", "goldfish/server/*", "goldfish/cli.py"),
        "the dashboard sits above the services: only the entry points that serve it import it",
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
    assert rule_violations("goldfish/backends/docker/adaptor.py", imports, RULES[1:2]) == []
    assert rule_violations("goldfish/backends/gce/compute.py", imports, RULES[2:3]) == []


def test_rule_check_when_another_module_of_the_backend_imports_the_sdk_reports_it() -> None:
    imports = imports_of("import docker\n", "goldfish.backends.docker.backend")
    assert len(rule_violations("goldfish/backends/docker/backend.py", imports, RULES[1:2])) == 1
    imports = imports_of("import google.cloud.storage\n", "goldfish.storage.gcs")
    assert len(rule_violations("goldfish/storage/gcs.py", imports, RULES[2:3])) == 1


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
