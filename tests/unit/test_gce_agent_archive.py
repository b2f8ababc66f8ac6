"""What is shipped to the VM: the agent package's modules, the archive built from them, the bootstrap."""

from __future__ import annotations

import ast
import base64
import io
import re
import sys
import zipfile
from pathlib import Path

import pytest

from goldfish.backends.gce.startup import agent_archive, startup_files
from goldfish.backends.gce.vm import layout


def _agent_modules() -> list[Path]:
    return sorted(Path(layout.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("module", _agent_modules(), ids=lambda path: path.name)
def test_agent_module_when_parsed_as_python_39_is_valid_and_imports_only_stdlib_or_its_package(
    module: Path,
) -> None:
    source = module.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 9))
    absolute = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
    }
    assert "goldfish" not in absolute  # the archive holds this package alone, as goldfish_agent
    assert absolute <= set(sys.stdlib_module_names) | {"__future__"}
    if "->" in source:  # annotations stay strings on Python 3.9
        assert "from __future__ import annotations" in source


def test_agent_archive_when_built_fits_one_metadata_value_and_holds_every_module() -> None:
    value = startup_files().agent
    assert len(value.encode("ascii")) <= 256 * 1024  # GCE: a metadata value holds at most 256 KiB
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(value))).namelist()
    assert "__main__.py" in names
    assert {f"goldfish_agent/{path.name}" for path in _agent_modules()} <= set(names)
    assert agent_archive() == agent_archive()  # deterministic: the same sources, the same bytes


def test_startup_script_when_read_is_strict_bash_that_never_evals_metadata() -> None:
    script = (Path(layout.__file__).parent / "startup.sh").read_text(encoding="utf-8")
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert "<<'PYTHON'" in script  # a quoted heredoc: the shell expands nothing in it
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"\b(eval|curl|source)\b", line)]
    assert 'exec python3 "$agent_home/agent.pyz"' in script
