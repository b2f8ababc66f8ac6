"""Validation of what ``run`` is asked: reason, results spec, stage names and overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldfish.errors import InvalidArgumentError, suggestion_suffix
from goldfish.validation import MIN_REASON_LENGTH
from goldfish.validation import reason as check_reason


@dataclass(frozen=True)
class RunRequest:
    """A validated ``run`` call."""

    workspace: str
    stages: list[str] | None
    pipeline: str | None
    config_override: dict[str, Any]
    inputs_override: dict[str, str]
    reason: str | dict[str, Any]
    results_spec: dict[str, Any] | None
    experiment_group: str | None
    dry_run: bool
    use_cache: bool
    profile: str | None


class ResultsSpec(BaseModel):
    """What success means for a run (required for every non-dry run)."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: str = Field(..., min_length=1, max_length=200)
    direction: Literal["maximize", "minimize"]
    min_value: float | None = None
    goal_value: float | None = None
    dataset_split: str | None = Field(None, max_length=100)
    tolerance: float | None = Field(None, ge=0)
    context: str | None = Field(None, max_length=4000)
    secondary_metrics: list[str] = Field(default_factory=list, max_length=50)
    baseline_run: str | None = Field(None, max_length=200)


class StructuredReason(BaseModel):
    """A reason with its parts spelled out."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(..., min_length=MIN_REASON_LENGTH, max_length=4000)
    hypothesis: str | None = Field(None, max_length=4000)
    approach: str | None = Field(None, max_length=4000)
    goal: str | None = Field(None, max_length=4000)


def _invalid(field: str, error: ValidationError, model: type[BaseModel]) -> InvalidArgumentError:
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        hint = suggestion_suffix(key, model.model_fields) if item["type"] == "extra_forbidden" else ""
        problems.append(f"{key}: {item['msg']}{hint}")
    return InvalidArgumentError(
        f"Invalid {field}: {'; '.join(problems[:5])}", details={"field": field, "problems": problems[:20]}
    )


def parse_reason(value: object) -> str | dict[str, Any]:
    """A reason string (≥ 15 characters) or a {description, hypothesis, approach, goal} mapping."""
    if isinstance(value, dict):
        try:
            return StructuredReason.model_validate(value).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise _invalid("reason", exc, StructuredReason) from None
    return check_reason(value)


def parse_results_spec(value: object) -> dict[str, Any]:
    """A validated results spec."""
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            "results_spec is required (unless dry_run): {primary_metric, direction, ...}.",
            details={"field": "results_spec"},
            remedy='Pass results_spec={"primary_metric": "val_acc", "direction": "maximize"} at least.',
        )
    try:
        return ResultsSpec.model_validate(value).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise _invalid("results_spec", exc, ResultsSpec) from None


def select_stages(requested: list[str] | None, order: list[str]) -> list[str]:
    """The stages to run, in pipeline order; unknown names are refused with a did-you-mean."""
    if not requested:
        return order
    unknown = [name for name in requested if name not in order]
    if unknown:
        hint = suggestion_suffix(str(unknown[0]), order)
        raise InvalidArgumentError(
            f"Unknown stage(s) {unknown}{hint}.",
            details={"field": "stages", "stages": order},
        )
    return [name for name in order if name in requested]


def check_inputs_override(value: object) -> dict[str, str]:
    """``{input_name: stage run id or source name}``."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 200 for k, v in value.items()
    ):
        raise InvalidArgumentError(
            "inputs_override maps input names to a stage run id (stage-...) or a source name.",
            details={"field": "inputs_override"},
        )
    return dict(value)


def check_config_override(value: object) -> dict[str, Any]:
    """A mapping deep-merged over configs/<stage>.yaml (per stage when keyed by stage names)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError("config_override must be a mapping.", details={"field": "config_override"})
    return dict(value)
