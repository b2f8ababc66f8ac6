"""The process backend (embedded default): each stage is a local process group.

The stage wrapper (``spec.STAGE_WRAPPER``, shared with the container backends) runs the module
and writes its exit code to ``logs/exit_code.txt``, so the outcome survives the server and the
driver: any later process can read it. The group is its own session, so closing the MCP client
or restarting the server never stops a stage. When the exit code appears, whatever the stage
left running in its group is killed before the stage counts as exited: no child of a finished
stage outlives it (cancel and timeout kill the group too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

from goldfish.backends.process.python_env import interpreter_for, requirements_hash
from goldfish.backends.protocol import BackendSettings, BackendStatus, Capabilities, Handle, OnBuild
from goldfish.backends.spec import RunSpec, read_exit_code, read_log, stage_environment, wrapped_command

# What a stage inherits from the server's environment: locale, paths, certificates, proxies and
# what the interpreter and CUDA libraries need. A credential reaches a stage only through secrets.
BASE_ENV = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TMPDIR", "TZ", "TERM",
        "PYTHONPATH", "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip


def base_environment(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The part of the server's environment every process stage starts from (``BASE_ENV`` + ``LC_*``)."""
    return {key: value for key, value in environ.items() if key in BASE_ENV or key.startswith("LC_")}


def gpu_environment(spec: RunSpec) -> dict[str, str]:
    """The stage's GPUs by nvidia-smi index (none at all when it asked for none)."""
    return {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": ",".join(str(device) for device in spec.gpu_ids),
    }


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against pid reuse), or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


def _carrying(variable: str) -> list[int]:
    """Pids (other than this process) whose environment at start held ``variable`` (``NAME=value``)."""
    marker = b"\0" + variable.encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ:
            found.append(int(entry.name))
    return found


class ProcessBackend:
    """Runs stages with the project's Python (or a per-requirements venv) as process groups."""

    name = "process"
    capabilities = Capabilities(gpu=True, isolation="process", survives_server_restart=True)  # compute.gpus

    def __init__(self, settings: BackendSettings) -> None:
        self._venvs = settings.venvs
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def prepare(self, spec: RunSpec, on_build: OnBuild) -> RunSpec:
        """Pick the interpreter: the project's, or a venv per requirements.txt (created on first use)."""
        if requirements_hash(spec.code_dir) is not None:
            on_build("installing requirements.txt")
        python = interpreter_for(spec.code_dir, self._venvs, spec.logs_dir / "build.log")
        return replace(spec, python=python)

    def find(self, stage_run_id: str) -> Handle | None:
        """A process cannot be found again without its handle."""
        return None

    def launch(self, spec: RunSpec) -> Handle:
        """Start the stage in its own session; return pid, start time and log locations."""
        spec.logs_dir.mkdir(parents=True, exist_ok=True)
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        base = {**base_environment(os.environ), **gpu_environment(spec), "PYTHONDONTWRITEBYTECODE": "1"}
        env = stage_environment(spec, base)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(spec.code_dir), env.get("PYTHONPATH", "")) if p)
        with (
            (spec.logs_dir / "stdout.log").open("ab") as out,
            (spec.logs_dir / "stderr.log").open("ab") as err,
        ):
            proc = subprocess.Popen(
                wrapped_command([spec.python, *spec.module_argv()]),
                cwd=spec.work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        return {
            "backend": self.name,
            "pid": proc.pid,
            "start_time": _start_time(proc.pid),
            "logs_dir": str(spec.logs_dir),
            "stop_file": str(spec.stop_file),
        }

    def status(self, handle: Handle) -> BackendStatus:
        """Exited (exit code file present), running (same process alive) or lost."""
        code = self._exit_code(handle)
        if code is None and self._alive(handle):
            return BackendStatus("running")
        code = code if code is not None else self._exit_code(handle)  # it may have just finished
        self._end_group(handle)
        self._reap(handle)
        if code is not None:
            return BackendStatus("exited", exit_code=code)
        return BackendStatus("lost", detail="the stage process ended without recording an exit code")

    def logs(self, handle: Handle, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        """Log text from ``offset``."""
        return read_log(Path(handle["logs_dir"]), stream, offset)

    def cancel(self, handle: Handle, grace_seconds: float = 5.0) -> None:
        """Signal the stop file and SIGTERM the group, then SIGKILL what is left after the grace."""
        stop = Path(handle["stop_file"])
        stop.parent.mkdir(parents=True, exist_ok=True)
        stop.touch()
        pid = int(handle["pid"])
        if not self._alive(handle):
            self._end_group(handle)
            return
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not self._group_alive(pid):
                break
            time.sleep(0.05)
        self._end_group(handle)
        self._reap(handle)

    def cleanup(self, handle: Handle) -> None:
        """Kill what is left of the stage's group and forget the child."""
        self._end_group(handle)
        self._reap(handle)

    # -- helpers ----------------------------------------------------------------------------
    def _exit_code(self, handle: Handle) -> int | None:
        return read_exit_code(Path(handle["logs_dir"]))

    def _alive(self, handle: Handle) -> bool:
        pid = int(handle["pid"])
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return _start_time(pid) is not None and _start_time(pid) == handle.get("start_time")

    def _group_alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            child.poll()
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _end_group(self, handle: Handle) -> None:
        """SIGKILL whatever of the stage is left once it has ended (or been stopped).

        First its process group, whose id is the wrapper's pid: while any member lives, the
        kernel does not hand that number to a new process, and the recorded start time rules
        out the wrapper's pid itself being reused. Then the processes that left the group (a
        child that started a session of its own) but still carry the stage's environment.
        """
        pid = int(handle["pid"])
        started = _start_time(pid)
        if started is None or started == handle.get("start_time"):
            self._signal_group(pid, signal.SIGKILL)
        for straggler in _carrying(f"GOLDFISH_LOGS_DIR={handle['logs_dir']}"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(straggler, signal.SIGKILL)

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _reap(self, handle: Handle) -> None:
        child = self._children.pop(int(handle["pid"]), None)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._children[child.pid] = child
