"""Every storage key of a run, computed in one place (the VM agent gets them from its job spec)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunPaths:
    """Storage keys of one stage run."""

    stage_run_id: str

    @property
    def root(self) -> str:
        """``runs/<stage_run_id>``."""
        return f"runs/{self.stage_run_id}"

    @property
    def logs(self) -> str:
        """Folder of the run's logs."""
        return f"{self.root}/logs"

    @property
    def stdout(self) -> str:
        """Captured standard output."""
        return f"{self.logs}/stdout.log"

    @property
    def stderr(self) -> str:
        """Captured standard error."""
        return f"{self.logs}/stderr.log"

    @property
    def metrics(self) -> str:
        """Metric points as JSON lines."""
        return f"{self.logs}/metrics.jsonl"

    @property
    def exit_code(self) -> str:
        """The stage's exit code, written once it ends."""
        return f"{self.logs}/exit_code.txt"

    @property
    def heartbeat(self) -> str:
        """Last heartbeat of the stage."""
        return f"{self.logs}/heartbeat.json"

    @property
    def outputs(self) -> str:
        """Folder of all outputs."""
        return f"{self.root}/outputs"

    def output(self, signal: str) -> str:
        """Folder of one output signal."""
        return f"{self.outputs}/{signal}"
