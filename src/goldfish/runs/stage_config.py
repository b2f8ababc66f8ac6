"""configs/<stage>.yaml: free keys for get_config(), the ``compute:`` block, ``env:`` and ``secrets:``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldfish.errors import InvalidArgumentError, PipelineInvalidError
from goldfish.pipelines.validator import FileReader
from goldfish.validation import SECRET_REMEDY, env_name_problem, env_problem, looks_like_secret
from goldfish.yamlfile import load_yaml

MAX_SECRETS = 64


class ComputeBlock(BaseModel):
    """Where and how long a stage runs."""

    model_config = ConfigDict(extra="forbid")

    profile: str | None = None
    backend: Literal["auto", "process", "docker", "gce"] | None = None
    timeout_seconds: int | None = Field(None, ge=1, le=7 * 24 * 3600)
    gpus: int | None = Field(None, ge=0, le=16, description="Whole local GPUs the stage needs.")


@dataclass(frozen=True)
class StageSettings:
    """A stage's effective config and how it runs: compute, plain env and secret names."""

    config: dict[str, Any]
    compute: ComputeBlock
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


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


def secret_looking_keys(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the mapping keys in ``value`` that look like secrets (any depth)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}{key}"
            if isinstance(key, str) and looks_like_secret(key):
                found.append(path)
            found += secret_looking_keys(item, f"{path}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += secret_looking_keys(item, f"{prefix}{index}.")
    return found


def refuse_secret_keys(config_override: dict[str, Any]) -> None:
    """Refuse a ``config_override`` holding a secret-looking key: it would be stored in the manifest.

    Raises:
        InvalidArgumentError: naming the keys (never their values).
    """
    keys = secret_looking_keys(config_override)
    if keys:
        raise InvalidArgumentError(
            f"config_override holds key(s) that look like secrets: {', '.join(keys[:10])}. "
            "A config_override is stored in the run's manifest.",
            details={"field": "config_override", "keys": keys[:20]},
            remedy=SECRET_REMEDY,
        )


def load_stage_config(
    files: FileReader, stage: str, override: dict[str, Any]
) -> tuple[dict[str, Any], ComputeBlock]:
    """The effective config (file deep-merged with ``override``) and its compute block."""
    settings = load_stage_settings(files, stage, override, {}, [])
    return settings.config, settings.compute


def load_stage_settings(
    files: FileReader,
    stage: str,
    override: dict[str, Any],
    default_env: dict[str, str],
    default_secrets: list[str],
) -> StageSettings:
    """The stage's effective config, compute block, env (over ``default_env``) and secret names.

    Raises:
        PipelineInvalidError: naming the file and the problem (an env key that looks like a secret
            comes with the remedy pointing at ``secrets:``).
    """
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
    env = {**default_env, **parse_env_block(merged.pop("env", None), rel, stage)}
    secrets = list(
        dict.fromkeys([*default_secrets, *parse_secrets_block(merged.pop("secrets", None), rel, stage)])
    )
    compute_raw = merged.pop("compute", None) or {}
    try:
        compute = ComputeBlock.model_validate(compute_raw)
    except ValidationError as exc:
        problems = [f"compute.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PipelineInvalidError(
            f"{rel}: invalid compute block: {'; '.join(problems)}", details={"path": rel, "stage": stage}
        ) from None
    return StageSettings(merged, compute, env, secrets)


def parse_env_block(raw: Any, rel: str, stage: str) -> dict[str, str]:
    """The ``env:`` block of ``rel``: checked names, text values (a YAML number reads as its text).

    Raises:
        PipelineInvalidError: for a bad or reserved name, a secret-looking name or a non-text value.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PipelineInvalidError(
            f"{rel}: env must be a mapping of NAME: value.",
            details={"path": rel, "stage": stage, "key": "env"},
        )
    env: dict[str, str] = {}
    for key, value in raw.items():
        text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        problem = env_problem(key, text)
        if problem is not None:
            raise PipelineInvalidError(
                f"{rel}: env: {problem}.",
                details={"path": rel, "stage": stage, "key": f"env.{str(key)[:80]}"},
                remedy=SECRET_REMEDY if looks_like_secret(str(key)) else None,
            )
        env[key] = text
    return env


def parse_secrets_block(raw: Any, rel: str, stage: str) -> list[str]:
    """The ``secrets:`` block of ``rel``: a list of names (values live in the secret store).

    Raises:
        PipelineInvalidError: for a non-list or a name that cannot be an environment variable.
    """
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_SECRETS:
        raise PipelineInvalidError(
            f"{rel}: secrets must be a list of at most {MAX_SECRETS} names, e.g. [HF_TOKEN].",
            details={"path": rel, "stage": stage, "key": "secrets"},
        )
    for name in raw:
        problem = env_name_problem(name)
        if problem is not None:
            raise PipelineInvalidError(
                f"{rel}: secrets: {problem}.", details={"path": rel, "stage": stage, "key": "secrets"}
            )
    return [str(name) for name in raw]
