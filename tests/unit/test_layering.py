"""Import layering over the goldfish source: the rules of ``tests/unit/layering.py`` hold.

Also what importing an entry point actually loads, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.unit.layering import (
    DIRECTIONS,
    ENTRY_MODULES,
    HEAVY_SDKS,
    RULES,
    SRC,
    STDLIB_ONLY,
    Direction,
    Rule,
    crossing_imports,
    cycles,
    direction_violations,
    import_graph,
    package_graph,
    parsed,
    rule_violations,
    source_files,
    stdlib_violations,
    under,
)


def test_source_files_when_listed_include_the_known_layers() -> None:
    files = {path.as_posix() for path in source_files()}
    assert {"goldfish/cli/app.py", "goldfish/server/app.py", "goldfish/validation.py"} <= files


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


def test_source_when_scanned_has_no_import_cycle_between_its_packages() -> None:
    sources = {path.as_posix(): (SRC / path).read_text(encoding="utf-8") for path in source_files()}
    graph = import_graph(sources)
    found = {" <-> ".join(group): crossing_imports(graph, group) for group in cycles(package_graph(graph))}
    assert found == {}


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
    assert sorted(name for name in touched if under(name, HEAVY_SDKS)) == []


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
        if name.split(".")[0] not in sys.stdlib_module_names and not under(name, ("goldfish",))
    ]
    assert foreign == []
