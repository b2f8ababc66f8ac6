"""MCP resources: STATE.md of the project and of one workspace, run logs and manifests."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer

from goldfish.errors import GoldfishError
from goldfish.server.app_state import GoldfishApp
from goldfish.timeutil import age
from goldfish.validation import workspace_name


def workspace_state(app: GoldfishApp, name: str) -> str:
    """A short Markdown summary of one workspace."""
    context = app.context
    detail = context.workspaces.inspect(workspace_name(name), 10, 0, [])
    info = detail.workspace
    lines = [
        f"# {info.name}",
        "",
        f"Goal: {info.goal or '(none)'}",
        f"Slot: {info.mounted_slot or '(not mounted)'}",
        "",
        f"## Versions ({detail.versions_total})",
    ]
    for version in detail.versions:
        tags = f" [{', '.join(version.tags)}]" if version.tags else ""
        lines.append(f"- {version.version}{tags} {age(version.created_at)}: {version.message}")
    thoughts, _ = context.thoughts.list(info.name, 5, 0)
    if thoughts:
        lines += ["", "## Recent thoughts", *(f"- {t.age}: {t.thought}" for t in thoughts)]
    return "\n".join(lines) + "\n"


def register_resources(server: MCPServer[GoldfishApp], app: GoldfishApp) -> None:
    """Register the resources on ``server``."""

    @server.resource("goldfish://state", name="state", title="Project STATE.md", mime_type="text/markdown")
    def state() -> str:
        """The project's STATE.md: slots, workspaces with their latest versions, recent thoughts."""
        try:
            return app.context.state.render()
        except GoldfishError as exc:
            return f"# Goldfish\n\n{exc.message}\n\n{exc.remedy}\n"

    @server.resource("goldfish://runs/{run_id}/logs", name="run_logs", mime_type="text/plain")
    def run_logs(run_id: str) -> str:
        """The last 500 lines of a stage run's stdout and stderr."""
        try:
            chunk = app.context.run_queries.logs(run_id, 500, None, "both")
        except GoldfishError as exc:
            return f"{exc.message}\n{exc.remedy}\n"
        return "\n".join(chunk.lines) + "\n"

    @server.resource("goldfish://runs/{run_id}/manifest", name="run_manifest", mime_type="application/json")
    def run_manifest(run_id: str) -> str:
        """Provenance of a stage run: version, config, inputs and outputs with content hashes."""
        try:
            return json.dumps(app.context.run_queries.manifest(run_id), indent=2, default=str)
        except GoldfishError as exc:
            return json.dumps({"success": False, "error": exc.to_dict()})

    @server.resource("goldfish://workspaces/{name}/state", name="workspace_state", mime_type="text/markdown")
    def workspace(name: str) -> str:
        """One workspace: goal, slot, latest versions with tags and recent thoughts."""
        try:
            return workspace_state(app, name)
        except GoldfishError as exc:
            return f"# {name[:64]}\n\n{exc.message}\n\n{exc.remedy}\n"
