"""configs/<stage>.yaml: free keys for get_config() plus the ``compute:`` block."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldfish.errors import PipelineInvalidError
from goldfish.pipelines.validator import FileReader
from goldfish.yamlfile import load_yaml


class ComputeBlock(BaseModel):
    """Where and how long a stage runs."""

    model_config = ConfigDict(extra="forbid")

    profile: str | None = None
    backend: Literal["auto", "process", "docker", "gce"] | None = None
    timeout_seconds: int | None = Field(None, ge=1, le=7 * 24 * 3600)
    gpu_count: int | None = Field(None, ge=0, le=16)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def stage_override(config_override: dict[str, Any], stage: str, stages: list[str]) -> dict[str, Any]:
    """The part of ``config_override`` for ``stage``.

    A mapping whose keys are all stage names is per stage; any other mapping applies to every stage.
    """
    if config_override and all(key in stages for key in config_override):
        value = config_override.get(stage, {})
        return value if isinstance(value, dict) else {}
    return config_override


def load_stage_config(
    files: FileReader, stage: str, override: dict[str, Any]
) -> tuple[dict[str, Any], ComputeBlock]:
    """The effective config (file deep-merged with ``override``) and its compute block."""
    rel = f"configs/{stage}.yaml"
    text = files.read_text(rel)
    try:
        data = load_yaml(text, rel).data if text else {}
    except yaml.YAMLError as exc:
        raise PipelineInvalidError(
            f"{rel} is not valid YAML: {exc}", details={"path": rel, "stage": stage}
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PipelineInvalidError(f"{rel} must be a mapping.", details={"path": rel, "stage": stage})
    merged = deep_merge(data, override)
    compute_raw = merged.pop("compute", None) or {}
    try:
        compute = ComputeBlock.model_validate(compute_raw)
    except ValidationError as exc:
        problems = [f"compute.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PipelineInvalidError(
            f"{rel}: invalid compute block: {'; '.join(problems)}", details={"path": rel, "stage": stage}
        ) from None
    return merged, compute
