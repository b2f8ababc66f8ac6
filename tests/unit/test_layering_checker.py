"""The layering checker itself: a rule that silently matched nothing would pass forever."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.unit.layering import (
    DIRECTIONS,
    RULES,
    Rule,
    crossing_imports,
    cycles,
    direction_violations,
    import_graph,
    imports_of,
    module_name,
    package_graph,
    rule_violations,
    stdlib_violations,
)

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
    ("goldfish/backends/process.py", "goldfish.cli.runs", True),
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


# The package circle the package check was written for: no module imports back into its
# importer, yet pipelines -> svs -> runs -> pipelines, each step through another module.
PLANTED_PACKAGE_CIRCLE = {
    "goldfish/__init__.py": "",
    "goldfish/pipelines/__init__.py": "",
    "goldfish/pipelines/models.py": "",
    "goldfish/pipelines/validator.py": "from goldfish.svs.rules import rule_problems\n",
    "goldfish/svs/__init__.py": "",
    "goldfish/svs/rules.py": "from goldfish.pipelines.models import CheckRule\n",
    "goldfish/svs/service.py": "def findings():\n    from goldfish.runs.service import RunNotFoundError\n",
    "goldfish/runs/__init__.py": "",
    "goldfish/runs/service.py": "from goldfish.pipelines.validator import validate\n",
    "goldfish/errors.py": "",
}


def test_package_cycle_check_when_packages_circle_through_different_modules_reports_them() -> None:
    graph = import_graph(PLANTED_PACKAGE_CIRCLE)

    assert cycles(graph) == []  # no module circle: only the package view sees it
    assert cycles(package_graph(graph)) == [["goldfish.pipelines", "goldfish.runs", "goldfish.svs"]]
    assert crossing_imports(graph, ["goldfish.pipelines", "goldfish.runs", "goldfish.svs"]) == [
        "goldfish.pipelines.validator -> goldfish.svs.rules",
        "goldfish.runs.service -> goldfish.pipelines.validator",
        "goldfish.svs.rules -> goldfish.pipelines.models",
        "goldfish.svs.service -> goldfish.runs.service",
    ]


def test_package_cycle_check_when_the_rules_live_with_the_pipelines_reports_nothing() -> None:
    sources = {
        **PLANTED_PACKAGE_CIRCLE,
        "goldfish/pipelines/validator.py": "from goldfish.pipelines.checks import rule_problems\n",
        "goldfish/pipelines/checks.py": "from goldfish.pipelines.models import CheckRule\n",
        "goldfish/svs/service.py": "def findings():\n    from goldfish.errors import RunNotFoundError\n",
    }
    assert cycles(package_graph(import_graph(sources))) == []


def test_package_graph_when_built_keeps_top_level_modules_as_their_own_nodes() -> None:
    graph = {"goldfish.context": {"goldfish.runs.driver"}, "goldfish.runs.driver": {"goldfish.errors"}}
    assert package_graph(graph) == {
        "goldfish.context": {"goldfish.runs"},
        "goldfish.runs": {"goldfish.errors"},
    }
