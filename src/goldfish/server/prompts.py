"""MCP prompts."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

START_EXPERIMENT = """You are starting an ML experiment with Goldfish.
1. Call status() and read STATE.md: what exists, what is mounted, what was tried.
2. Pick or create a workspace for this idea (create_workspace with a goal{goal_hint}), then mount it
   into a free slot.
3. Edit plain files in the slot: pipeline.yaml, modules/<stage>.py, configs/<stage>.yaml.
   validate_config(workspace=...) reports problems with file and line.
4. save_version(slot, message) records each meaningful step; diff shows what changed.
5. log_thought whenever you learn something, so your future self knows why."""


def register_prompts(server: MCPServer[Any]) -> None:
    """Register the prompts on ``server``."""

    @server.prompt(name="start-experiment", title="Start an experiment")
    def start_experiment(goal: str = "") -> str:
        """Walks an agent through status, workspace, pipeline and versions."""
        hint = f' such as "{goal[:200]}"' if goal else ""
        return START_EXPERIMENT.format(goal_hint=hint)
