"""``validate_config``: every problem in goldfish.yaml and a workspace's pipeline files, with lines."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from goldfish.config import CONFIG_FILENAME, ConfigProblem, key_lines, parse_config, problems_from_validation
from goldfish.errors import ConfigError, PipelineInvalidError
from goldfish.pipelines.validator import FileReader, check_pipeline, pipeline_path
from goldfish.runs.stage_config import ComputeBlock, parse_env_block, parse_secrets_block
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.files import SlotFiles, VersionFiles


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
    return []


def _reader(core: WorkspaceCore, workspace: str) -> tuple[FileReader, list[str]]:
    """A reader over the workspace's slot (when mounted) or last version, and its YAML file names."""
    ws = core.workspace_or_slot(workspace)
    mount = core.rows.mount_of_workspace(ws.id)
    if mount is not None:
        slot = core.slot_path(mount.slot)
        names = [
            str(path.relative_to(slot))
            for folder in ("pipelines", "configs")
            for path in sorted((slot / folder).glob("*.yaml"))
        ]
        return SlotFiles(slot), names
    head = core.repo.branch_head(ws.name)
    names = [rel for rel in core.repo.list_files(head) if rel.endswith(".yaml")]
    return VersionFiles(core.repo, head), [n for n in names if n.startswith(("pipelines/", "configs/"))]


def _check_stage_config(rel: str, content: str) -> list[ConfigProblem]:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [
            ConfigProblem(
                path=rel,
                line=mark.line + 1 if mark else None,
                key="(document)",
                message=f"not valid YAML: {getattr(exc, 'problem', exc)}",
            )
        ]
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


def validate(
    root: Path, core: WorkspaceCore | None, workspace: str | None, sources: Collection[str] | None = None
) -> ConfigReport:
    """Check goldfish.yaml and, with ``workspace``, its pipelines (every rule) and stage configs."""
    problems = check_project_config(root)
    checked = [CONFIG_FILENAME]
    if workspace is not None and core is not None:
        files, names = _reader(core, workspace)
        pipelines = [
            None,
            *(n[len("pipelines/") : -len(".yaml")] for n in names if n.startswith("pipelines/")),
        ]
        for name in pipelines:
            if name is None and not files.exists(pipeline_path(None)) and len(pipelines) > 1:
                continue
            checked.append(pipeline_path(name))
            problems.extend(check_pipeline(files, name, sources)[1])
        for rel in (n for n in names if n.startswith("configs/")):
            checked.append(rel)
            problems.extend(_check_stage_config(rel, files.read_text(rel) or ""))
    return ConfigReport(valid=not problems, checked=checked, problems=problems)
