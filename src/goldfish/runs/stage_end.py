"""The side effects of ending a stage run: the effects behind ``states.STAGE_HOOKS``.

:class:`~goldfish.runs.machine.StageMachine` calls them around the moves they are declared for;
nothing else calls them, so ending a run is written once whichever way it ends.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from goldfish.backends.factory import BackendRegistry
from goldfish.db.runs import RunRepository
from goldfish.io.masking import mask_file_in_place
from goldfish.runs.machine import Effect, Move
from goldfish.runs.stage_secrets import StageSecrets
from goldfish.states import StageHook
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage
from goldfish.svs.pattern_service import PatternService


class StageEnd:
    """Closes the attempt, keeps the logs and wraps up a stage run that reaches its end."""

    def __init__(
        self,
        runs: RunRepository,
        backends: BackendRegistry,
        storage: Storage,
        scratch: Path,
        secrets: StageSecrets,
        patterns: PatternService | None = None,
    ):
        self._runs = runs
        self._backends = backends
        self._storage = storage
        self._scratch = scratch
        self._secrets = secrets
        self._patterns = patterns

    def effects(self) -> dict[StageHook, Effect]:
        """Each hook of ``states.STAGE_HOOKS`` and what does it."""
        return {
            StageHook.CLOSE_ATTEMPT: self.close_attempt,
            StageHook.KEEP_LOGS: self.keep_logs,
            StageHook.WRAP_UP: self.wrap_up,
        }

    def close_attempt(self, move: Move) -> None:
        """End the run's current attempt (if still open) with the outcome the run ends with."""
        run = move.run
        self._runs.finish_attempt(
            run.id,
            run.attempt,
            move.target.value,
            move.fields.get("failure_kind"),
            move.fields.get("error") or move.detail,
            move.fields.get("exit_code"),
        )

    def keep_logs(self, move: Move) -> None:
        """Store the logs before the terminal move: whoever sees the end state finds them complete.

        A VM writes its logs to storage itself; the local copy may lag, so it never overwrites them.
        """
        run = move.run
        if self._backends.get(run.backend).capabilities.isolation == "vm":
            return
        logs = self._scratch / run.id / "logs"
        values = self._secrets.known(run)
        for name in ("stdout.log", "stderr.log", "metrics.jsonl"):  # also what a stage wrote itself
            mask_file_in_place(logs / name, values)
        if logs.is_dir():  # stdout, stderr, metrics, exit code
            self._storage.put_dir(logs, RunPaths(run.id).logs)

    def wrap_up(self, move: Move) -> None:
        """Learn from the outcome, release the backend, drop the scratch folder (after the move)."""
        run = move.run
        run_dir = self._scratch / run.id
        if self._patterns is not None:
            self._patterns.observe(self._runs.stage_run(run.id) or run, run_dir / "logs")
        if run.backend_handle:
            self._backends.get(run.backend).cleanup(run.backend_handle)
        shutil.rmtree(run_dir, ignore_errors=True)
