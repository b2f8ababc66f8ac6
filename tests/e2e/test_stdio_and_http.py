"""`goldfish serve` as a real subprocess: MCP over stdio and over streamable HTTP.

The stdio server's stdout is copied to a file (through ``tee``) so the test can check that
nothing but JSON-RPC messages ever reached it: a stray print would corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import LONG_REASON, call

START_TIMEOUT = 60
_SCRIPT = Path(sys.executable).with_name("goldfish")


def goldfish_command() -> list[str]:
    """The console script when installed next to this interpreter, else ``python -m goldfish.cli``."""
    if _SCRIPT.is_file() and os.access(_SCRIPT, os.X_OK):
        return [str(_SCRIPT)]
    return [sys.executable, "-m", "goldfish.cli"]


def kill_group(pid: int) -> None:
    """Kill a process group we started (its leader's pid is the group id); gone already is fine."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@contextmanager
def killed_at_exit(pid_file: Path) -> Iterator[None]:
    """Whatever happens, kill the process group whose leader wrote ``pid_file``."""
    try:
        yield
    finally:
        if pid_file.exists():
            text = pid_file.read_text(encoding="utf-8").strip()
            if text.isdigit():
                kill_group(int(text))


def stdio_parameters(
    tmp_path: Path, serve_args: list[str], cwd: Path
) -> tuple[StdioServerParameters, Path, Path]:
    """Run ``goldfish serve`` under bash, teeing its stdout to a file and writing bash's pid."""
    stdout_copy, pid_file = tmp_path / "stdout.jsonl", tmp_path / "server.pid"
    serve = shlex.join([*goldfish_command(), "serve", *serve_args])
    script = (
        f"echo $$ > {shlex.quote(str(pid_file))}; "
        f"{serve} 2> {shlex.quote(str(tmp_path / 'stderr.log'))} | tee {shlex.quote(str(stdout_copy))}"
    )
    params = StdioServerParameters(command="bash", args=["-c", script], cwd=str(cwd))
    return params, stdout_copy, pid_file


def assert_only_protocol(stdout_copy: Path) -> int:
    """Every line the server wrote to stdout is a JSON-RPC 2.0 message; return how many."""
    lines = [line for line in stdout_copy.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, "the server wrote nothing to stdout"
    for line in lines:
        message = json.loads(line)
        assert isinstance(message, dict), line[:200]
        assert message.get("jsonrpc") == "2.0", line[:200]
    return len(lines)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_goldfish_serve_over_stdio_runs_create_mount_save_diff(
    project_root: Path, tmp_path: Path, mode: str
) -> None:
    params, stdout_copy, pid_file = stdio_parameters(tmp_path, ["--project", str(project_root)], tmp_path)
    with killed_at_exit(pid_file), anyio.fail_after(START_TIMEOUT):
        async with Client(params, mode=mode) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"status", "create_workspace", "mount", "save_version", "diff"} <= tools

            created = await call(client, "create_workspace", name="baseline", goal="e2e", reason=LONG_REASON)
            assert created["success"] is True
            mounted = await call(client, "mount", workspace="baseline", slot="w1", reason=LONG_REASON)
            slot = Path(mounted["mount"]["slot_path"])
            assert slot == (project_root / "workspaces" / "w1").resolve()

            (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
            first = await call(client, "save_version", slot="w1", message="first")
            assert first["save"]["version"]["version"] == "v1"
            (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")
            changes = await call(client, "diff", target="w1")
            assert [(f["path"], f["status"]) for f in changes["diff"]["files"]] == [("train.py", "modified")]
            second = await call(client, "save_version", slot="w1", message="second")
            assert second["save"]["version"]["version"] == "v2"
            between = await call(client, "diff", target="baseline@v2", against="baseline@v1")
            assert "+lr = 0.2" in between["diff"]["patch"]

            failure = await call(client, "save_version", slot="w2", message="empty slot")
            assert failure["error"]["code"] == "SLOT_EMPTY"
            # The session survives the error.
            assert (await call(client, "status"))["slots"][0]["workspace"] == "baseline"

    # Every request got its answer and nothing else reached stdout.
    assert assert_only_protocol(stdout_copy) >= 9
    assert (project_root / ".goldfish" / "logs" / "server.log").is_file()
    assert "v2" in (project_root / "STATE.md").read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_goldfish_serve_over_stdio_outside_a_project_can_initialize_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "new-project"
    params, stdout_copy, pid_file = stdio_parameters(tmp_path, [], empty)
    with killed_at_exit(pid_file), anyio.fail_after(START_TIMEOUT):
        async with Client(params, mode="legacy") as client:
            status = await call(client, "status")
            assert status["error"]["code"] == "PROJECT_NOT_INITIALIZED"
            init = await call(client, "initialize_project", project_name="fresh", project_root=str(root))
            assert init["success"] is True
            assert (root / "goldfish.yaml").is_file()
            assert (await call(client, "status"))["project"]["name"] == "fresh"
    assert_only_protocol(stdout_copy)
    assert not (empty / "goldfish.yaml").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    while True:
        assert process.poll() is None, "goldfish serve --http exited early"
        try:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            await anyio.sleep(0.05)
            continue
        await stream.aclose()
        return


@pytest.mark.anyio
async def test_goldfish_serve_over_http_answers_status_and_shares_state_between_sessions(
    project_root: Path, tmp_path: Path
) -> None:
    port = free_port()
    with (tmp_path / "http.out").open("wb") as out, (tmp_path / "http.err").open("wb") as err:
        process = subprocess.Popen(
            [*goldfish_command(), "serve", "--http", f"127.0.0.1:{port}", "--project", str(project_root)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            with anyio.fail_after(START_TIMEOUT):
                await wait_for_port(port, process)
                url = f"http://127.0.0.1:{port}/mcp"
                async with Client(url) as client:
                    status = await call(client, "status")
                    assert status["success"] is True
                    assert status["project"]["name"] == "testproj"
                    assert [s["slot"] for s in status["slots"]] == ["w1", "w2", "w3"]
                    await call(client, "create_workspace", name="shared", goal="http", reason=LONG_REASON)
                async with Client(url, mode="legacy") as second:
                    listed = await call(second, "list_workspaces")
                    assert [w["name"] for w in listed["workspaces"]] == ["shared"]
        finally:
            kill_group(process.pid)
            process.wait(timeout=10)
    log = (tmp_path / "http.err").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log
