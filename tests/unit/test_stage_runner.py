"""The in-stage runner as every backend starts it: the stage wrapper around ``python -m modules.stage``,
real processes, real /proc. One interpreter per stage without secrets; a masked child with them;
output statistics after a successful exit; telemetry from a sampler process started only when the
stage outlives the first interval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from goldfish.backends.spec import wrapped_command
from goldfish.io.runner import exit_status

STAGE = """\
import atexit, os, sys, time
from pathlib import Path

print(f"parent={os.getppid()}", flush=True)
print(f"via_runner={b'goldfish.io.runner' in Path('/proc/self/cmdline').read_bytes()}", flush=True)
print(f"argv={sys.argv[1:]}", flush=True)
print(f"token={os.environ.get('HF_TOKEN', '')}", flush=True)
what = os.environ.get("WHAT", "ok")
deadline = time.monotonic() + float(os.environ.get("BUSY_SECONDS", "0"))
while time.monotonic() < deadline:  # pure Python: holds the GIL the whole time
    sum(range(20000))
samplers = []
for entry in os.listdir("/proc"):
    try:
        cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\\0")
    except OSError:
        continue
    if b"goldfish.io.telemetry" in cmdline:
        watched = cmdline[cmdline.index(b"goldfish.io.telemetry") + 1]
        if watched == str(os.getpid()).encode():
            samplers.append(entry)
print(f"samplers={samplers}", flush=True)
if what == "fork":  # a child that leaves through sys.exit runs the exit handlers it inherited
    child = os.fork()
    if child == 0:
        sys.exit(0)
    os.waitpid(child, 0)
    stopped, deadline = False, time.monotonic() + 0.5
    while samplers and not stopped and time.monotonic() < deadline:
        stopped = Path(f"/proc/{samplers[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    print(f"sampler_stopped_by_child={stopped}", flush=True)


def save_output() -> None:  # at exit, after the module's code: the statistics must still see it
    import numpy as np

    folder = Path(os.environ["GOLDFISH_OUTPUTS_DIR"]) / "scores"
    folder.mkdir(parents=True)
    np.save(folder / "data.npy", np.arange(10, dtype=np.float64))


atexit.register(save_output)
if what == "exit":
    sys.exit(3)
if what == "raise":
    raise ValueError("the loader broke")
if __name__ == "__main__":
    print("as main", flush=True)
"""


@dataclass
class StageRun:
    code: int
    pid: int
    stdout: str
    stderr: str
    logs: Path

    def metrics(self) -> list[dict[str, object]]:
        path = self.logs / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def said(self, key: str) -> str:
        return next(line.split("=", 1)[1] for line in self.stdout.splitlines() if line.startswith(f"{key}="))


def run_stage(tmp_path: Path, what: str = "ok", secret: bool = False, **env: str) -> StageRun:
    """Run the module STAGE as a backend does (wrapper → runner → module), with stage-like env."""
    code_dir, logs, outputs = tmp_path / "code", tmp_path / "logs", tmp_path / "outputs"
    for folder in (code_dir / "modules", logs, outputs):
        folder.mkdir(parents=True, exist_ok=True)
    (code_dir / "modules" / "__init__.py").write_text("", encoding="utf-8")
    (code_dir / "modules" / "stage.py").write_text(STAGE, encoding="utf-8")
    signals = tmp_path / "signals.json"
    signals.write_text(
        json.dumps(
            {"svs": {"output_stats": True, "sample_size": 100}, "outputs": {"scores": {"type": "npy"}}}
        ),
        encoding="utf-8",
    )
    stage_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(code_dir), *sys.path[1:]]),
        "GOLDFISH_RUN_ID": "stage-0123456789ab",
        "GOLDFISH_LOGS_DIR": str(logs),
        "GOLDFISH_EXIT_FILE": str(logs / "exit_code.txt"),
        "GOLDFISH_METRICS_FILE": str(logs / "metrics.jsonl"),
        "GOLDFISH_OUTPUTS_DIR": str(outputs),
        "GOLDFISH_SIGNALS": str(signals),
        "GOLDFISH_TELEMETRY_INTERVAL": "10",
        "GOLDFISH_TELEMETRY_MAX_POINTS": "2000",
        "WHAT": what,
        **env,
    }
    if secret:
        stage_env |= {"HF_TOKEN": "hf-s3cret-value", "GOLDFISH_SECRET_NAMES": "HF_TOKEN"}
    argv = wrapped_command([sys.executable, "-m", "modules.stage", "--lr", "0.1"])
    with subprocess.Popen(argv, cwd=tmp_path, env=stage_env) as proc:
        code = proc.wait(timeout=120)
    return StageRun(
        code=code,
        pid=proc.pid,
        stdout=(logs / "stdout.log").read_text(encoding="utf-8"),
        stderr=(logs / "stderr.log").read_text(encoding="utf-8"),
        logs=logs,
    )


def test_runner_without_secrets_runs_the_module_in_its_own_interpreter_as_main(tmp_path: Path) -> None:
    done = run_stage(tmp_path)

    assert done.code == 0, done.stderr
    assert (done.logs / "exit_code.txt").read_text() == "0"
    assert "argv=['--lr', '0.1']" in done.stdout
    assert "as main" in done.stdout
    assert done.said("via_runner") == "True"
    assert done.said("parent") == str(done.pid)  # the wrapper's own child: no runner process between


@pytest.mark.parametrize(
    ("what", "code", "said"), [("exit", 3, ""), ("raise", 1, "ValueError: the loader broke")]
)
def test_runner_in_process_when_the_module_exits_or_raises_gives_the_status_python_would(
    tmp_path: Path, what: str, code: int, said: str
) -> None:
    done = run_stage(tmp_path, what)

    assert done.code == code
    assert (done.logs / "exit_code.txt").read_text() == str(code)
    assert said in done.stderr
    assert (
        "goldfish/io/runner.py" not in done.stderr and "runpy" not in done.stderr
    )  # the stage's frames only
    assert not (done.logs / "svs_stats.json").exists()  # statistics only after a successful exit


def test_runner_in_process_summarises_outputs_after_the_stages_own_exit_handlers(tmp_path: Path) -> None:
    done = run_stage(tmp_path)

    assert done.code == 0, done.stderr
    report = json.loads((done.logs / "svs_stats.json").read_text(encoding="utf-8"))
    scores = report["outputs"]["scores"]
    assert scores["type"] == "npy" and scores["count"] == 10 and scores["max"] == 9.0


def test_stage_without_telemetry_or_secrets_runs_without_the_runner_and_still_gets_its_statistics(
    tmp_path: Path,
) -> None:
    done = run_stage(tmp_path, GOLDFISH_TELEMETRY_INTERVAL="")

    assert done.code == 0, done.stderr
    assert done.said("via_runner") == "False"
    report = json.loads((done.logs / "svs_stats.json").read_text(encoding="utf-8"))
    assert report["outputs"]["scores"]["count"] == 10  # the wrapper's own statistics step


def test_runner_with_a_secret_runs_the_module_as_a_child_masks_its_value_and_still_summarises(
    tmp_path: Path,
) -> None:
    done = run_stage(tmp_path, secret=True)

    assert done.code == 0, done.stderr
    assert "token=***" in done.stdout and "s3cret" not in done.stdout
    assert done.said("parent") != str(done.pid)  # a child of the runner, which masks its output
    report = json.loads((done.logs / "svs_stats.json").read_text(encoding="utf-8"))
    assert report["outputs"]["scores"]["count"] == 10


def test_telemetry_when_the_stage_ends_within_the_first_interval_starts_no_sampler(tmp_path: Path) -> None:
    done = run_stage(tmp_path)

    assert done.code == 0, done.stderr
    assert done.said("samplers") == "[]"
    assert not [m for m in done.metrics() if str(m["name"]).startswith("sys/")]


def test_runner_when_the_stage_forks_a_child_that_exits_the_child_neither_summarises_nor_stops_telemetry(
    tmp_path: Path,
) -> None:
    done = run_stage(tmp_path, "fork", BUSY_SECONDS="0.3", GOLDFISH_TELEMETRY_INTERVAL="0.05")

    assert done.code == 0, done.stderr
    assert len(json.loads(done.said("samplers").replace("'", '"'))) == 1
    assert done.said("sampler_stopped_by_child") == "False"
    report = json.loads((done.logs / "svs_stats.json").read_text(encoding="utf-8"))
    assert report["outputs"]["scores"]["count"] == 10


@pytest.mark.parametrize("secret", [False, True])
def test_telemetry_when_a_busy_stage_outlives_the_interval_comes_from_a_sampler_process_that_ends_with_it(
    tmp_path: Path, secret: bool
) -> None:
    done = run_stage(tmp_path, secret=secret, BUSY_SECONDS="0.6", GOLDFISH_TELEMETRY_INTERVAL="0.05")

    assert done.code == 0, done.stderr
    samplers = json.loads(done.said("samplers").replace("'", '"'))
    assert len(samplers) == 1  # a process of its own, not a thread waiting for the stage's GIL
    assert not Path(f"/proc/{samplers[0]}").exists()  # stopped and reaped before the stage's end was recorded
    names = {m["name"] for m in done.metrics()}
    assert {"sys/rss_mb", "sys/cpu_pct"} <= names


def test_exit_status_is_what_sys_exit_gives_a_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert [exit_status(None), exit_status(0), exit_status(3), exit_status(256 + 7)] == [0, 0, 3, 7]
    assert exit_status("bad config") == 1
    assert capsys.readouterr().err == "bad config\n"
