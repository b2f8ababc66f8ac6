"""What ``compare_runs`` returns: the differences between two runs, side by side and as deltas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use

if TYPE_CHECKING:
    from goldfish.db.metrics import MetricSummary


class ConfigChange(BaseModel):
    """One key of the effective stage config that differs."""

    path: str = Field(description="Dotted path of the key (nested mappings are followed).")
    change: Literal["added", "removed", "changed"] = Field(
        description="added: only in b; removed: only in a; changed: in both with different values."
    )
    a: Any = Field(None, description="Value in run a (absent when added).")
    b: Any = Field(None, description="Value in run b (absent when removed).")


class ConfigDiff(BaseModel):
    """Differences between two effective stage configs."""

    changes: list[ConfigChange]
    total: int = Field(description="Keys that differ (changes lists at most 200).")
    truncated: bool


class CodeFile(BaseModel):
    """One file that differs between the two versions."""

    path: str
    status: str = Field(description="added, modified, deleted or type_changed.")
    lines_added: int | None = Field(description="None for binary files.")
    lines_removed: int | None = Field(description="None for binary files.")


class CodeDiffSummary(BaseModel):
    """Which files differ between the versions the two runs ran (no patch; use diff for that)."""

    version_a: str = Field(description="workspace@vN of run a.")
    version_b: str = Field(description="workspace@vN of run b.")
    same_version: bool
    available: bool = Field(True, description="False when a version's files could not be read.")
    files_changed: int
    lines_added: int
    lines_removed: int
    files: list[CodeFile] = Field(description="At most 200 files.")
    truncated: bool


class MetricStats(BaseModel):
    """Aggregates of one metric in one run."""

    last: float
    last_step: int | None
    min: float
    max: float
    count: int

    @classmethod
    def of(cls, summary: MetricSummary) -> MetricStats:
        """Build from a summary row."""
        return cls(
            last=summary.last,
            last_step=summary.last_step,
            min=summary.min,
            max=summary.max,
            count=summary.count,
        )


class MetricDelta(BaseModel):
    """A metric in either run, with b - a for last, min and max when both logged it."""

    name: str
    a: MetricStats | None = Field(description="None when run a never logged it.")
    b: MetricStats | None = Field(description="None when run b never logged it.")
    delta_last: float | None
    delta_min: float | None
    delta_max: float | None


class InputDifference(BaseModel):
    """One input signal of either run: what it was on each side and what differs."""

    signal: str
    in_a: bool
    in_b: bool
    content_hash_a: str | None
    content_hash_b: str | None
    producer_run_a: str | None = Field(description="Stage run that produced the input in run a.")
    producer_run_b: str | None
    source_a: str | None = Field(description="Registered source read in run a.")
    source_b: str | None
    content_differs: bool = Field(description="The data itself differs (content hashes differ).")
    producer_differs: bool
    source_differs: bool
    same: bool = Field(description="Same content from the same producer or source on both sides.")


class StageComparison(BaseModel):
    """Two stage runs side by side."""

    stage_a: str
    stage_b: str
    run_a: str = Field(description="Stage run id of side a.")
    run_b: str = Field(description="Stage run id of side b.")
    state_a: str
    state_b: str
    config: ConfigDiff
    metrics: list[MetricDelta] = Field(description="Metrics logged by either run (at most 200).")
    metrics_truncated: bool
    inputs: list[InputDifference]
    inputs_differing: list[str] = Field(description="Signals whose content, producer or source differ.")


class ResultsSide(BaseModel):
    """The recorded outcome of one side (from finalize_run), if any."""

    record_id: str | None
    finalized: bool
    primary_metric: str | None = None
    direction: str | None = None
    value: float | None = None
    ml_outcome: str | None = None
    dataset_split: str | None = None
    secondary: dict[str, float] = Field(default_factory=dict)


class ResultsDelta(BaseModel):
    """Finalized results of the two runs and how they differ."""

    a: ResultsSide
    b: ResultsSide
    same_metric: bool = Field(description="Both finalized on the same primary metric and split.")
    delta: float | None = Field(description="b - a of the primary value when comparable.")
    b_better: bool | None = Field(description="b beats a in the metric's direction (None: not comparable).")
    outcome_changed: bool
    secondary_deltas: dict[str, float] = Field(description="b - a of secondary values both recorded.")


class RunComparison(BaseModel):
    """Everything that differs between two runs."""

    run_a: str
    run_b: str
    mode: Literal["stage", "pipeline"] = Field(
        description="stage: two stage runs; pipeline: two whole runs compared stage by stage."
    )
    pipeline_run_a: str
    pipeline_run_b: str
    code: CodeDiffSummary
    results: ResultsDelta
    stages: list[StageComparison]
    only_in_a: list[str] = Field(description="Stages only run a ran (pipeline mode).")
    only_in_b: list[str] = Field(description="Stages only run b ran (pipeline mode).")
    summary: list[str] = Field(description="The differences in a few plain lines.")
