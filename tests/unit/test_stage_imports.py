"""The code part of a stage's cache key: the files its module imports inside the workspace."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pytest

from goldfish.pipelines.code_imports import ParsedFile, parse_source
from goldfish.runs.imports import CodeScope, follow

MODULES_TREE = "tree-of-modules"


def scope_of(files: dict[str, str], module: str) -> CodeScope:
    """The code scope of ``module`` in a version holding ``files`` (path -> source)."""
    tree = {path: hashlib.sha256(text.encode()).hexdigest() for path, text in files.items()}

    def parse(batch: Mapping[str, str]) -> dict[str, ParsedFile]:
        return {path: parse_source(files[path].encode()) for path in batch}

    return follow(tree, module, parse, lambda: MODULES_TREE)


def test_scope_of_a_stage_holds_its_module_and_the_workspace_files_it_imports_only() -> None:
    files = {
        "modules/train.py": "import numpy as np\nfrom goldfish.io import save_output\n"
        "from modules import common\n",
        "modules/evaluate.py": "from modules.common import score\nimport modules.report\n",
        "modules/common.py": "import json\n",
        "modules/report.py": "",
        "pipeline.yaml": "name: x\n",
    }

    train = scope_of(files, "train")
    evaluate = scope_of(files, "evaluate")

    assert (sorted(train.files), train.fallback) == (["modules/common.py", "modules/train.py"], None)
    assert sorted(evaluate.files) == ["modules/common.py", "modules/evaluate.py", "modules/report.py"]
    assert train.describe() == {
        "scope": "imports",
        "files": ["modules/common.py", "modules/train.py"],
        "fallback_reason": None,
    }


def test_scope_follows_imports_through_helpers_packages_relative_and_literal_dynamic_imports() -> None:
    files = {
        "modules/__init__.py": "",
        "modules/train.py": "from .helpers import load\n",
        "modules/helpers.py": "import importlib\nimportlib.import_module('lib.models.net')\n",
        "lib/__init__.py": "",
        "lib/models/__init__.py": "from . import layers\n",
        "lib/models/net.py": "from ..data import *\n",
        "lib/models/layers.py": "",
        "lib/data.py": "",
        "lib/unused.py": "",
    }

    scope = scope_of(files, "train")

    assert scope.fallback is None
    assert sorted(scope.files) == [
        "lib/__init__.py",
        "lib/data.py",
        "lib/models/__init__.py",
        "lib/models/layers.py",
        "lib/models/net.py",
        "modules/__init__.py",
        "modules/helpers.py",
        "modules/train.py",
    ]


def test_scope_counts_a_helper_imported_by_bare_name_from_beside_the_module() -> None:
    files = {"modules/train.py": "import helpers\nimport yaml\n", "modules/helpers.py": "", "yaml.txt": ""}

    assert sorted(scope_of(files, "train").files) == ["modules/helpers.py", "modules/train.py"]


def test_scope_keeps_data_files_under_modules_for_every_stage() -> None:
    files = {"modules/train.py": "", "modules/vocab.txt": "a b c", "data/big.csv": "1,2"}

    assert sorted(scope_of(files, "train").files) == ["modules/train.py", "modules/vocab.txt"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "import importlib\nm = importlib.import_module(name)\n",
            "line 2: importlib.import_module() with a computed",
        ),
        ("__import__(f'modules.{x}')\n", "line 1: __import__() with a computed module name"),
        ("import sys\nsys.path.insert(0, 'lib')\n", "line 2: it changes sys.path"),
        ("import sys\nsys.path += ['lib']\n", "line 2: it changes sys.path"),
        ("import runpy\nrunpy.run_path('modules/other.py')\n", "line 2: runpy.run_path() runs code"),
        ("exec(open('x.py').read())\n", "line 1: exec() runs code the import analysis cannot follow"),
        ("def broken(:\n", "it does not parse"),
    ],
)
def test_scope_falls_back_to_the_whole_modules_tree_and_says_why_when_imports_cannot_be_followed(
    source: str, reason: str
) -> None:
    files = {"modules/train.py": "from modules import helpers\n", "modules/helpers.py": source}

    scope = scope_of(files, "train")

    assert scope.fallback is not None
    assert scope.fallback.startswith("modules/helpers.py: ")
    assert reason in scope.fallback
    assert scope.key_material()["modules_tree"] == MODULES_TREE
    assert scope.describe()["scope"] == "modules_tree"


def test_scope_of_a_module_missing_from_the_version_falls_back_with_its_name() -> None:
    scope = scope_of({"modules/other.py": ""}, "train")

    assert scope.fallback == "the stage module modules/train.py is not in the version"


def test_scope_key_changes_with_an_imported_file_and_not_with_another_stage_module() -> None:
    files = {
        "modules/train.py": "import modules.common\n",
        "modules/common.py": "",
        "modules/evaluate.py": "",
    }
    before = scope_of(files, "train").key_material()

    assert scope_of({**files, "modules/evaluate.py": "# edited\n"}, "train").key_material() == before
    assert scope_of({**files, "modules/common.py": "# edited\n"}, "train").key_material() != before
