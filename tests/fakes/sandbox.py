"""One simulated VM: runs an instance's real startup script as a local process group.

The script runs as ``bash <dir>/startup-script`` in a fresh per-instance folder, in its own session
(``start_new_session=True``) so the whole group can be killed like a VM being switched off. Its
environment is the test process's, plus:

* ``GCE_METADATA_HOST`` = the instance's fake metadata server (``127.0.0.1:PORT``);
* ``STORAGE_EMULATOR_HOST`` = the GCS emulator the fake Compute was given (when None, whatever
  the test process has when the instance boots);
* ``HOME`` = ``<dir>/home`` and no ``DOCKER_CONFIG``: like a fresh VM, docker there holds no
  registry login;
* ``PATH`` prefixed with a shim folder whose ``poweroff``, ``shutdown`` and ``halt`` only record
  the call in ``<dir>/poweroff.log`` and exit 0, plus the shared fake ``nvidia-smi``
  (``tests/fakes/nvidia_smi.py``, state in ``<dir>/gpu-state.json``) showing ``gpus`` idle GPUs
  when the VM has a working driver (``gpus`` > 0). The agent exits after powering off; the
  process exit is what the fake Compute treats as the VM stopping.

stdout and stderr go to ``<dir>/console.log``, like a serial console (:meth:`Sandbox.console`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from tests.fakes.nvidia_smi import STATE_ENV, default_gpus, install_fake_nvidia_smi

POWER_COMMANDS = ("poweroff", "shutdown", "halt")
KILL_WAIT_SECONDS = 5.0

_SHIM = """#!/bin/sh
# Simulated VM power control: record the call; the caller's exit stops the "VM".
printf '%s\\n' "$(basename "$0") $*" >> "$GOLDFISH_SANDBOX_DIR/poweroff.log"
exit 0
"""


class Sandbox:
    """The local stand-in for one VM: a folder and the process group running its startup script."""

    def __init__(
        self,
        script: str,
        *,
        directory: Path,
        metadata_host: str,
        storage_emulator_host: str | None = None,
        extra_env: dict[str, str] | None = None,
        on_exit: Callable[[Sandbox], None] | None = None,
        gpus: int = 0,
    ) -> None:
        self.script = script
        self.directory = directory
        self.metadata_host = metadata_host
        self.storage_emulator_host = storage_emulator_host
        self.extra_env = dict(extra_env or {})
        self.gpus = gpus
        self._on_exit = on_exit
        self._proc: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._group_done = False
        self.killed = False

    @property
    def console_path(self) -> Path:
        """The serial-console file (stdout and stderr of the script)."""
        return self.directory / "console.log"

    @property
    def pid(self) -> int | None:
        """The script's process id (also its process group id), once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The script's exit status, or None while it runs (or before it started)."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> None:
        """Write the script and the power shims, then start ``bash`` in a new session."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "home").mkdir(exist_ok=True)
        shim_dir = self._write_shims()
        script_path = self.directory / "startup-script"
        script_path.write_text(self.script)
        env = self._environment(shim_dir)
        with self.console_path.open("ab") as console:
            self._proc = subprocess.Popen(
                ["bash", str(script_path)],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._watcher = threading.Thread(
            target=self._watch, name=f"sandbox-{self.directory.name}", daemon=True
        )
        self._watcher.start()

    def _write_shims(self) -> Path:
        shim_dir = self.directory / ".shims"
        shim_dir.mkdir(exist_ok=True)
        for name in POWER_COMMANDS:
            path = shim_dir / name
            path.write_text(_SHIM)
            path.chmod(0o755)
        if self.gpus:  # the shared fake: idle H100s answering any --query-gpu fields
            install_fake_nvidia_smi(shim_dir, self.directory / "gpu-state.json", default_gpus(self.gpus))
        return shim_dir

    def _environment(self, shim_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        # A fresh VM's docker has no registry credentials: none of the test process's leak in.
        env.pop("DOCKER_CONFIG", None)
        env.pop(STATE_ENV, None)  # this VM's GPUs are its own (gpu-state.json in its folder)
        env["HOME"] = str(self.directory / "home")
        env.update(self.extra_env)
        env["GCE_METADATA_HOST"] = self.metadata_host
        env["GOLDFISH_SANDBOX_DIR"] = str(self.directory)
        if self.storage_emulator_host is not None:
            env["STORAGE_EMULATOR_HOST"] = self.storage_emulator_host
        env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _watch(self) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.wait()
        if self._on_exit is not None:
            self._on_exit(self)

    def running(self) -> bool:
        """Whether the script is still running."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait (bounded) for the script to end; its exit status, or None if still running."""
        if self._proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._proc.wait(timeout=timeout)
        return None

    def kill(self) -> None:
        """SIGKILL the whole process group (what switching the VM off does) and reap it."""
        with self._lock:
            self.killed = True
        proc = self._proc
        if proc is None:
            return
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_WAIT_SECONDS)
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=KILL_WAIT_SECONDS)

    def kill_leftovers(self) -> None:
        """Kill what is left of the group after the script ended by itself (a VM powers off whole)."""
        self._kill_group()

    def _kill_group(self) -> None:
        # Once only: after that the group id could be reused by an unrelated process group.
        with self._lock:
            if self._proc is None or self._group_done:
                return
            self._group_done = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def console(self) -> str:
        """The console output so far (for failing-test messages)."""
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def poweroff_calls(self) -> list[str]:
        """Every recorded ``poweroff``/``shutdown``/``halt`` call, as ``"name args"`` lines."""
        try:
            return (self.directory / "poweroff.log").read_text().splitlines()
        except FileNotFoundError:
            return []
