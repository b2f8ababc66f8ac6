"""Pydantic models of ``pipeline.yaml``, the source of its JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

STAGE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SIGNAL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$"
# Signal names become file and folder names (inputs/<name>, outputs/<name>): no '/', no '..'.
SignalName = Annotated[str, StringConstraints(pattern=SIGNAL_NAME_PATTERN)]

SignalType = Literal["dataset", "npy", "csv", "directory", "file"]
OutputType = Literal["npy", "csv", "directory", "file"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalSchema(_Strict):
    """Optional contract checked on a signal after the stage ends."""

    shape: list[int | None] | None = Field(None, description="Array shape; null means any size.")
    dtype: str | None = Field(None, description="numpy dtype name, e.g. float32.")
    columns: list[str] | None = Field(None, description="Required CSV columns.")
    min_rows: int | None = Field(None, ge=0, description="Minimum number of rows.")


class InputSignal(_Strict):
    """A stage input: a registered dataset or another stage's output."""

    type: SignalType
    dataset: str | None = Field(None, description="Registered source name (type dataset).")
    from_stage: str | None = Field(None, pattern=STAGE_NAME_PATTERN, description="Producing stage.")
    signal: str | None = Field(
        None,
        pattern=SIGNAL_NAME_PATTERN,
        description="Output name on the producing stage (default: this name).",
    )
    schema_: SignalSchema | None = Field(None, alias="schema")


class CheckRule(_Strict):
    """A rule over one statistic of an output (SVS): a bound, optional columns, warn or block."""

    min: float | None = Field(None, description="Smallest allowed value.")
    max: float | None = Field(None, description="Largest allowed value.")
    between: tuple[float, float] | None = Field(None, description="Inclusive [low, high].")
    columns: list[str] | None = Field(None, description="CSV columns it applies to (default: all).")
    mode: Literal["warn", "block"] | None = Field(None, description="Default: svs.default_mode.")


class OutputSignal(_Strict):
    """A stage output, written by the stage under its outputs directory."""

    type: OutputType
    schema_: SignalSchema | None = Field(None, alias="schema")
    checks: dict[str, CheckRule] | None = Field(
        None, description="Rules over the output's statistics, keyed by statistic (nan_ratio, std, ...)."
    )


class StageDef(_Strict):
    """One stage: a Python module with typed inputs and outputs."""

    name: str = Field(..., pattern=STAGE_NAME_PATTERN)
    module: str | None = Field(
        None, pattern=MODULE_PATTERN, description="Module under modules/ (default: the stage name)."
    )
    description: str | None = None
    inputs: dict[SignalName, InputSignal] = Field(default_factory=dict)
    outputs: dict[SignalName, OutputSignal] = Field(default_factory=dict)


class PipelineDef(_Strict):
    """The whole pipeline.yaml."""

    name: str | None = None
    description: str | None = None
    stages: list[StageDef] = Field(..., min_length=1)


def pipeline_json_schema() -> dict[str, Any]:
    """JSON Schema of pipeline.yaml, generated from :class:`PipelineDef`."""
    schema = PipelineDef.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pipeline.yaml"
    return schema
