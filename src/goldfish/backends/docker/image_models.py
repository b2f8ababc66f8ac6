"""Image builds and base images as tools show them (no engine, no Docker SDK: imported at server start)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use

if TYPE_CHECKING:
    from goldfish.db.images import ImageBuildRow


class BuildInfo(BaseModel):
    """An image build as tools show it."""

    build_id: str
    kind: str
    image: str
    base_image: str | None
    requirements_hash: str | None
    workspace: str | None
    stage_run_id: str | None
    state: str = Field(description="building, succeeded or failed.")
    log_tail: str = Field(description="The last lines of the build log.")
    log_lines: int
    error: str | None
    started_at: str
    finished_at: str | None
    duration_ms: int | None

    @classmethod
    def of(cls, row: ImageBuildRow) -> BuildInfo:
        """From a database row."""
        fields = {key: value for key, value in vars(row).items() if key != "id"}
        return cls(build_id=row.id, **fields)


class ImageInfo(BaseModel):
    """A base image and whether this engine has it."""

    name: str
    role: str = Field(
        description="configured (docker.base_image), dockerfile_base (FROM of the Dockerfile) or asked."
    )
    present: bool
    image_id: str | None = None
    size_mb: float | None = None
    created: str | None = None
    python: str | None = Field(None, description="python3 version inside (check only).")
    pip: str | None = Field(None, description="pip version inside (check only).")
    runs_as_uid: int | None = Field(None, description="uid a stage runs as (check only; never 0).")
