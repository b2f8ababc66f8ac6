"""Every storage key of a run, computed in one place (the VM agent gets them from its job spec).

The bucket layout is fixed by ``shared/spec/gce-protocol.md``; keys here are relative to the
store's root (a GCS store adds ``storage.gcs.prefix``). Nothing else builds these strings.
"""

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
    def stage_heartbeat(self) -> str:
        """Last heartbeat the stage itself wrote through ``goldfish.io`` (synced with the logs)."""
        return f"{self.logs}/heartbeat.json"

    @property
    def svs_stats(self) -> str:
        """The outputs' SVS statistics the stage wrapper wrote after the module exited (small JSON)."""
        return f"{self.logs}/svs_stats.json"

    @property
    def heartbeat(self) -> str:
        """The VM agent's heartbeat ``{"at", "state", "attempt"}``, rewritten every sync."""
        return f"{self.root}/heartbeat.json"

    @property
    def job(self) -> str:
        """The job spec a VM runs (written before the VM is told)."""
        return f"{self.root}/job.json"

    @property
    def secrets(self) -> str:
        """Secret env values of the job, only when there are any (never in instance metadata)."""
        return f"{self.root}/secrets.json"

    @property
    def ack(self) -> str:
        """Written by the VM agent when it accepts the job."""
        return f"{self.root}/ack.json"

    @property
    def preempted(self) -> str:
        """Written by the VM agent when the preemption notice arrived."""
        return f"{self.root}/preempted.json"

    @property
    def failure(self) -> str:
        """Written by the VM agent when the attempt failed around the stage (no GPU, image pull)."""
        return f"{self.root}/failure.json"

    @property
    def bundle(self) -> str:
        """The stage's code, config and signal declarations as one ``.tar.gz`` for the VM."""
        return f"{self.root}/bundle.tar.gz"

    def staged_input(self, name: str) -> str:
        """Where a local input (a registered local source) is uploaded for a VM to read."""
        return f"{self.root}/inputs/{name}"

    @property
    def outputs(self) -> str:
        """Folder of all outputs."""
        return f"{self.root}/outputs"

    def output(self, signal: str) -> str:
        """Folder of one output signal."""
        return f"{self.outputs}/{signal}"


def warm_state_key(instance: str) -> str:
    """``warm/<instance>/state.json``: a warm-pool VM's own report of its state."""
    return f"warm/{instance}/state.json"
