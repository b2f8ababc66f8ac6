"""The ``goldfish`` process entry: its exit code, output and exit handlers survive the prompt exit."""

import os
import subprocess
import sys
from pathlib import Path

from goldfish import __version__
from goldfish.cli.entry import PIPE_CLOSED

# Runs the entry as the console script does, with an exit handler and (optionally) a thread that
# is still writing when the command is done.
ENTRY = """
import atexit, sys, threading, time
record = sys.argv[1]
out = open(record, "a", encoding="utf-8")
atexit.register(lambda: (out.write("exit handler ran\\n"), out.flush()))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.3)
        with open(record, "a", encoding="utf-8") as fh:
            fh.write("thread finished\\n")
    threading.Thread(target=late).start()
sys.argv = ["goldfish", *sys.argv[3:]]
from goldfish.cli.entry import run
run()
"""


def _entry(tmp_path: Path, mode: str, *argv: str) -> tuple[subprocess.CompletedProcess[str], str]:
    record = tmp_path / "record.txt"
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, str(record), mode, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    return done, record.read_text(encoding="utf-8") if record.exists() else ""


def test_entry_when_command_succeeds_prints_all_output_runs_exit_handlers_and_exits_zero(
    tmp_path: Path,
) -> None:
    done, record = _entry(tmp_path, "plain", "schema", "--out", str(tmp_path / "schema"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() != ""
    assert (tmp_path / "schema").is_dir()
    assert record == "exit handler ran\n"


def test_entry_when_command_fails_exits_with_its_code_and_message(tmp_path: Path) -> None:
    done, record = _entry(tmp_path, "plain", "runs", "--project", str(tmp_path / "missing"))
    assert done.returncode not in (0, None)
    assert "goldfish.yaml" in done.stderr
    assert record == "exit handler ran\n"


def test_entry_when_another_thread_still_runs_waits_for_it(tmp_path: Path) -> None:
    done, record = _entry(tmp_path, "thread", "schema", "--out", str(tmp_path / "schema"))
    assert done.returncode == 0, done.stderr
    assert "thread finished\n" in record
    assert "exit handler ran\n" in record


def test_python_dash_m_goldfish_when_asked_for_its_version_prints_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "goldfish", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_entry_when_its_reader_has_gone_exits_quietly_like_a_piped_command(tmp_path: Path) -> None:
    # `goldfish call ... | head`: head exits early and the command's next write finds the pipe closed.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "goldfish", "schema"],
            check=False,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        os.close(write_end)
    assert done.returncode == PIPE_CLOSED
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
