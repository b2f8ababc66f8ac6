"""``validate_config``: every problem in goldfish.yaml and a workspace's pipeline files, with lines."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from goldfish.config import (
    key_lines,
    parse_config,
    problems_from_validation,
    yaml_problem,
)
from goldfish.errors import (
    ConfigError,
    GoldfishError,
    InvalidPathError,
    PipelineInvalidError,
    SlotTooLargeError,
    UnsafeSymlinkError,
)
from goldfish.paths import CONFIG_FILENAME
from goldfish.pipelines.validator import FileReader, check_pipeline, pipeline_path
from goldfish.problems import ConfigProblem
from goldfish.runs.stage_config import ComputeBlock, parse_env_block, parse_secrets_block
from goldfish.workspaces.core import WorkspaceCore
from goldfish.yamlfile import YamlFileError, load_yaml


class ConfigReport(BaseModel):
    """Problems found; ``valid`` is True when there are none."""

    valid: bool
    checked: list[str]
    problems: list[ConfigProblem]


def check_project_config(root: Path) -> list[ConfigProblem]:
    """Problems of goldfish.yaml as it is on disk now."""
    path = root / CONFIG_FILENAME
    try:
        parse_config(path.read_text(encoding="utf-8"), CONFIG_FILENAME)
    except OSError as exc:
        return [
            ConfigProblem(
                path=CONFIG_FILENAME, line=None, key="(file)", message=f"cannot read: {exc.strerror}"
            )
        ]
    except ConfigError as exc:
        return [ConfigProblem.model_validate(p) for p in exc.details.get("problems", [])]
    except YamlFileError as exc:
        return [yaml_problem(exc, CONFIG_FILENAME)]
    return []


def _check_stage_config(rel: str, content: str) -> list[ConfigProblem]:
    try:
        data = load_yaml(content, rel).data
    except (yaml.YAMLError, YamlFileError) as exc:
        return [yaml_problem(exc, rel)]
    if data is not None and not isinstance(data, dict):
        return [ConfigProblem(path=rel, line=1, key="(document)", message="a stage config must be a mapping")]
    if not isinstance(data, dict):
        return []
    problems = _env_problems(rel, content, data)
    compute = data.get("compute")
    if compute is None:
        return problems
    try:
        ComputeBlock.model_validate(compute)
    except ValidationError as exc:
        return problems + problems_from_validation(exc, ComputeBlock, content, rel)
    return problems


def _env_problems(rel: str, content: str, data: dict[str, object]) -> list[ConfigProblem]:
    """Problems of the ``env:`` and ``secrets:`` blocks (the same checks a run makes)."""
    stage = rel.removeprefix("configs/").removesuffix(".yaml")
    problems = []
    for block, parse in (("env", parse_env_block), ("secrets", parse_secrets_block)):
        try:
            parse(data.get(block), rel, stage)
        except PipelineInvalidError as exc:
            line = key_lines(content).get((block,))
            key = str(exc.details.get("key", block))
            problems.append(ConfigProblem(path=rel, line=line, key=key, message=exc.message, stage=stage))
    return problems


def _refused(rel: str, exc: GoldfishError) -> ConfigProblem:
    """A file the readers refuse (a link out of the slot, too complex, a duplicate key) as a problem."""
    return ConfigProblem(path=rel, line=exc.details.get("line"), key="(file)", message=exc.message)


def _check_workspace(
    files: FileReader, sources: Collection[str] | None
) -> tuple[list[str], list[ConfigProblem]]:
    """Check every pipeline and stage config of a workspace; a refused file is one problem."""
    checked: list[str] = []
    problems: list[ConfigProblem] = []
    names: dict[str, list[str]] = {}
    for folder in ("pipelines", "configs"):
        try:
            names[folder] = files.names(folder, ".yaml")
        except (InvalidPathError, UnsafeSymlinkError) as exc:
            names[folder] = []
            problems.append(_refused(folder, exc))
    pipelines = [None, *(n[len("pipelines/") : -len(".yaml")] for n in names["pipelines"])]
    for name in pipelines:
        rel = pipeline_path(name)
        try:
            if name is None and len(pipelines) > 1 and not files.exists(rel):
                continue
            checked.append(rel)
            problems.extend(check_pipeline(files, name, sources)[1])
        except (InvalidPathError, UnsafeSymlinkError, SlotTooLargeError, YamlFileError) as exc:
            problems.append(_refused(rel, exc))
    for rel in names["configs"]:
        checked.append(rel)
        try:
            problems.extend(_check_stage_config(rel, files.read_text(rel) or ""))
        except (InvalidPathError, UnsafeSymlinkError, SlotTooLargeError) as exc:
            problems.append(_refused(rel, exc))
    return checked, problems


def validate(
    root: Path, core: WorkspaceCore | None, workspace: str | None, sources: Collection[str] | None = None
) -> ConfigReport:
    """Check goldfish.yaml and, with ``workspace``, its pipelines (every rule) and stage configs."""
    problems = check_project_config(root)
    checked = [CONFIG_FILENAME]
    if workspace is not None and core is not None:
        more, found = _check_workspace(core.files_of(core.workspace_or_slot(workspace)), sources)
        checked += more
        problems += found
    return ConfigReport(valid=not problems, checked=checked, problems=problems)
