"""STATE.md: the short, always-current summary an agent reads to recover its context.

Regenerated after every state change; its length is bounded however long the history is.
"""

from __future__ import annotations

from pathlib import Path

from goldfish.db.records import RecordRepository
from goldfish.db.runs import RunRepository
from goldfish.db.svs import SvsRepository
from goldfish.db.thoughts import ThoughtRepository
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.fileops import write_text_atomic
from goldfish.timeutil import age, now_iso
from goldfish.workspaces.core import WorkspaceCore

MAX_STATE_CHARS = 4000
MAX_WORKSPACES = 8
MAX_PENDING = 5
VERSIONS_PER_WORKSPACE = 2
RECENT_THOUGHTS = 5
MAX_RUN_LINES = 5
GOAL_CHARS = 300
THOUGHT_CHARS = 240


def _clip(value: str, limit: int) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class StateWriter:
    """Renders and writes STATE.md."""

    def __init__(
        self,
        core: WorkspaceCore,
        rows: WorkspaceRepository,
        records: RecordRepository,
        thoughts: ThoughtRepository,
        runs: RunRepository,
        svs: SvsRepository | None = None,
    ):
        self._core = core
        self._rows = rows
        self._records = records
        self._thoughts = thoughts
        self._runs = runs
        self._svs = svs

    def render(self) -> str:
        """The STATE.md text (at most :data:`MAX_STATE_CHARS` characters)."""
        core = self._core
        lines = [f"# {core.config.project_name}", ""]
        if core.config.goal:
            lines += [f"Goal: {_clip(core.config.goal, GOAL_CHARS)}", ""]
        lines += (
            self._slots()
            + self._pending()
            + self._runs_section()
            + self._findings()
            + self._workspaces()
            + self._recent_thoughts()
        )
        lines += [f"_Updated {now_iso()}. Call status() for live details._", ""]
        text = "\n".join(lines)
        if len(text) > MAX_STATE_CHARS:
            text = text[: MAX_STATE_CHARS - 40].rsplit("\n", 1)[0] + "\n\n_(truncated)_\n"
        return text

    def _slots(self) -> list[str]:
        mounts = {m.slot: m.workspace for m in self._rows.mounts()}
        lines = ["## Slots"]
        for slot in self._core.config.slots:
            lines.append(f"- {slot}: {mounts.get(slot, '(empty)')}")
        return [*lines, ""]

    def _pending(self) -> list[str]:
        pending = self._records.unfinalized(None, MAX_PENDING + 1)
        if not pending:
            return []
        lines = ["## Waiting for finalize_run"]
        lines += [
            f"- {r.pipeline_run_id} ({r.workspace} v{r.version_num}, {r.run_state})"
            for r in pending[:MAX_PENDING]
        ]
        if len(pending) > MAX_PENDING:
            lines.append("- … more: list_unfinalized_runs()")
        return [*lines, ""]

    def _runs_section(self) -> list[str]:
        active = self._runs.active_stage_runs(MAX_RUN_LINES)
        recent = [r for r in self._runs.recent_stage_runs(MAX_RUN_LINES) if r.terminal]
        if not active and not recent:
            return []
        lines = ["## Runs"]
        lines += [f"- {r.id} {r.workspace}/{r.stage}: {r.state} (v{r.version_num})" for r in active]
        for run in recent:
            note = " (cache hit)" if run.cache_hit else (f": {_clip(run.error, 100)}" if run.error else "")
            lines.append(f"- {run.id} {run.workspace}/{run.stage}: {run.state} {age(run.finished_at)}{note}")
        return [*lines, ""]

    def _findings(self) -> list[str]:
        recent = self._svs.recent("", MAX_RUN_LINES) if self._svs is not None else []
        if not recent:
            return []
        lines = ["## Validation findings"]
        for item in recent:
            finding = item.finding
            lines.append(
                f"- {finding.stage_run_id} {item.workspace}/{item.stage} {finding.mode}"
                f" {age(finding.created_at)}: {_clip(finding.message, 140)}"
            )
        return [*lines, ""]

    def _workspaces(self) -> list[str]:
        core = self._core
        total = self._rows.count()
        lines = [f"## Workspaces ({total})"]
        for ws in self._rows.recently_active(MAX_WORKSPACES):
            versions, count = self._rows.versions(
                ws.id, include_pruned=False, limit=VERSIONS_PER_WORKSPACE, offset=0
            )
            lines.append(f"### {ws.name}" + (f": {_clip(ws.goal, GOAL_CHARS)}" if ws.goal else ""))
            best = core.best_record(ws.name)
            if best is not None and best.metric_value is not None:
                where = f"v{best.version_num}, {best.ml_outcome}, {best.pipeline_run_id}"
                lines.append(f"- best: {best.primary_metric}={best.metric_value:g} ({where})")
            if not versions:
                lines.append("- no versions yet")
            for version in versions:
                tags = f" [{', '.join(version.tags)}]" if version.tags else ""
                lines.append(
                    f"- {version.version}{tags} {age(version.created_at)}: {_clip(version.message, 120)}"
                )
            if count > len(versions):
                lines.append(f"- … {count - len(versions)} older version(s)")
        if total > MAX_WORKSPACES:
            lines.append(f"_… {total - MAX_WORKSPACES} more: list_workspaces()_")
        return [*lines, ""]

    def _recent_thoughts(self) -> list[str]:
        rows, _ = self._thoughts.page(None, RECENT_THOUGHTS, 0)
        if not rows:
            return []
        lines = ["## Recent thoughts"]
        for row in rows:
            where = f" ({row.workspace})" if row.workspace else ""
            lines.append(f"- {age(row.at)}{where}: {_clip(row.thought, THOUGHT_CHARS)}")
        return [*lines, ""]

    def write(self) -> Path:
        """Regenerate STATE.md atomically; return its path."""
        path = self._core.paths.state_md
        write_text_atomic(path, self.render())
        return path
