"""The in-stage runner (``python -m goldfish.io.runner``) run as the stage wrapper runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STAGE = """\
import os, sys
print(f"pid={os.getpid()}", flush=True)
print(f"argv={sys.argv[1:]}", flush=True)
print(f"token={os.environ.get('HF_TOKEN', '')}", flush=True)
what = os.environ.get("WHAT", "ok")
if what == "exit":
    sys.exit(3)
if what == "raise":
    raise ValueError("the loader broke")
if __name__ == "__main__":
    print("as main", flush=True)
"""


def _run(tmp_path: Path, what: str, secret: bool = False) -> tuple[subprocess.CompletedProcess[str], int]:
    (tmp_path / "modules").mkdir(exist_ok=True)
    (tmp_path / "modules" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "modules" / "stage.py").write_text(STAGE, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "WHAT": what,
        "GOLDFISH_TELEMETRY_INTERVAL": "10",
    }
    if secret:
        env |= {"HF_TOKEN": "hf-s3cret-value", "GOLDFISH_SECRET_NAMES": "HF_TOKEN"}
    argv = [sys.executable, "-m", "goldfish.io.runner", sys.executable, "-m", "modules.stage", "--lr", "0.1"]
    with subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), proc.pid


def test_runner_without_secrets_runs_the_module_in_its_own_process_as_main(tmp_path: Path) -> None:
    done, pid = _run(tmp_path, "ok")

    assert done.returncode == 0, done.stderr
    assert f"pid={pid}" in done.stdout  # one interpreter for the stage, not a runner and a child
    assert "argv=['--lr', '0.1']" in done.stdout
    assert "as main" in done.stdout


@pytest.mark.parametrize(
    ("what", "code", "said"), [("exit", 3, ""), ("raise", 1, "ValueError: the loader broke")]
)
def test_runner_in_process_when_the_module_exits_or_raises_gives_the_status_python_would(
    tmp_path: Path, what: str, code: int, said: str
) -> None:
    done, _ = _run(tmp_path, what)

    assert done.returncode == code
    assert said in done.stderr


def test_runner_with_a_secret_runs_the_module_as_a_child_and_masks_its_value(tmp_path: Path) -> None:
    done, pid = _run(tmp_path, "ok", secret=True)

    assert done.returncode == 0, done.stderr
    assert f"pid={pid}" not in done.stdout
    assert "token=***" in done.stdout and "s3cret" not in done.stdout
