"""``validate_config``: every problem in goldfish.yaml and a workspace's pipeline files, with lines."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from goldfish.config import CONFIG_FILENAME, ConfigProblem, parse_config, problems_from_validation
from goldfish.errors import ConfigError
from goldfish.pipelines.models import PipelineDef
from goldfish.workspaces.core import WorkspaceCore


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


def _workspace_files(core: WorkspaceCore, workspace: str) -> dict[str, str]:
    """Pipeline and stage-config files of a workspace: from its slot when mounted, else its last version."""
    ws = core.workspace_or_slot(workspace)
    mount = core.rows.mount_of_workspace(ws.id)
    wanted = ("pipeline.yaml", "pipelines/", "configs/")
    if mount is not None:
        slot = core.slot_path(mount.slot)
        files = [
            slot / "pipeline.yaml",
            *sorted((slot / "pipelines").glob("*.yaml")),
            *sorted((slot / "configs").glob("*.yaml")),
        ]
        return {
            str(f.relative_to(slot)): f.read_text(encoding="utf-8", errors="replace")
            for f in files
            if f.is_file() and not f.is_symlink()
        }
    head = core.repo.branch_head(ws.name)
    found = {}
    for rel in core.repo.list_files(head):
        if rel.endswith(".yaml") and (rel == wanted[0] or rel.startswith(wanted[1:])):
            content = core.repo.read_file(head, rel)
            if content is not None:
                found[rel] = content
    return found


def _check_yaml_file(rel: str, content: str) -> list[ConfigProblem]:
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
    if rel.startswith("configs/"):
        if data is not None and not isinstance(data, dict):
            return [
                ConfigProblem(path=rel, line=1, key="(document)", message="a stage config must be a mapping")
            ]
        return []
    if not isinstance(data, dict):
        return [
            ConfigProblem(
                path=rel, line=1, key="(document)", message="a pipeline must be a mapping with stages"
            )
        ]
    try:
        PipelineDef.model_validate(data)
    except ValidationError as exc:
        return problems_from_validation(exc, PipelineDef, content, rel)
    return []


def validate(root: Path, core: WorkspaceCore | None, workspace: str | None) -> ConfigReport:
    """Check goldfish.yaml and, with ``workspace``, its pipeline files and stage configs."""
    problems = check_project_config(root)
    checked = [CONFIG_FILENAME]
    if workspace is not None and core is not None:
        files = _workspace_files(core, workspace)
        if "pipeline.yaml" not in files and not any(rel.startswith("pipelines/") for rel in files):
            problems.append(
                ConfigProblem(
                    path="pipeline.yaml",
                    line=None,
                    key="(file)",
                    message=f"workspace '{workspace}' has no pipeline.yaml yet",
                )
            )
        for rel, content in files.items():
            checked.append(rel)
            problems.extend(_check_yaml_file(rel, content))
    return ConfigReport(valid=not problems, checked=checked, problems=problems)
