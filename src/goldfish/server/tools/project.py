"""Project and config tools: initialize_project, validate_config, reload_config."""

from typing import Annotated, Any

from pydantic import Field

from goldfish.errors import ConfigError
from goldfish.problems import ConfigProblem
from goldfish.server.toolkit import ToolRegistry, ToolResult


class InitializeResult(ToolResult):
    """The project created (or found complete)."""

    project_root: str
    project_name: str
    created: list[str]
    already_initialized: bool


class ValidateResult(ToolResult):
    """Problems found; ``valid`` is True when there are none."""

    valid: bool
    checked: list[str]
    problems: list[ConfigProblem]


class ReloadResult(ToolResult):
    """The effective config after reloading."""

    project_name: str
    slots: list[str]
    defaults: dict[str, Any]
    storage_backend: str
    gce_configured: bool


def register(reg: ToolRegistry) -> None:
    """Register the project tools."""

    @reg.tool(read_only=False, idempotent=True, title="Initialize project")
    def initialize_project(
        project_name: Annotated[
            str, Field(description="Human name of the project (letters, digits, . _ -).")
        ],
        project_root: Annotated[
            str, Field(description="Folder to create the project in (its parent must exist).")
        ],
        from_existing: Annotated[
            bool, Field(description="Adopt a goldfish.yaml already in that folder.")
        ] = False,
    ) -> InitializeResult:
        """Create a Goldfish project, or complete one that is partly there.

        Makes goldfish.yaml, workspaces/ with its slots, STATE.md and the hidden .goldfish/ state (database
        and version store). Safe to call again: it completes what is missing and never overwrites
        another project.
        """
        result = reg.app.initialize(project_root, project_name, from_existing)
        return InitializeResult(**result.model_dump())

    @reg.tool(read_only=True, idempotent=True, title="Validate config")
    def validate_config(
        workspace: Annotated[
            str | None, Field(description="Also check this workspace's pipeline files.")
        ] = None,
    ) -> ValidateResult:
        """Check goldfish.yaml and, with a workspace, its pipeline.yaml, pipelines/*.yaml and configs/*.yaml.

        Each problem names the file, line, key and what is wrong.
        """
        from goldfish import config_check  # noqa: PLC0415 - loaded at first call, not at server start

        context = reg.app.context
        report = config_check.validate(context.paths.root, context.core, workspace, context.sources.names())
        return ValidateResult(**report.model_dump())

    @reg.tool(read_only=False, idempotent=True, title="Reload config", audited=True)
    def reload_config() -> ReloadResult:
        """Re-read goldfish.yaml after editing it.

        An invalid file is reported and the previous config stays in force. Returns the effective
        settings (slots, defaults, storage, whether GCE is configured).
        """
        from goldfish import config_check  # noqa: PLC0415 - loaded at first call, not at server start

        context = reg.app.context
        problems = config_check.check_project_config(context.paths.root)
        if problems:
            raise ConfigError(
                f"goldfish.yaml has {len(problems)} problem(s); the previous config stays in force.",
                details={"problems": [p.model_dump() for p in problems]},
            )
        config = reg.app.reload().config
        return ReloadResult(
            project_name=config.project_name,
            slots=config.slots,
            defaults=config.defaults.model_dump(),
            storage_backend=config.storage.backend,
            gce_configured=config.gce.project_id is not None,
        )
