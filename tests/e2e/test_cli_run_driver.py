"""`goldfish run` drives its run from a fork made before the database is opened."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_runs import goldfish, new_project, write_pipeline


def cli_processes(project: Path) -> list[int]:
    """Pids of live `goldfish run` processes (or forks of one) for ``project``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"run" in cmdline and str(project).encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_run_with_wait_completes_driven_by_its_fork_and_leaves_no_process_behind(tmp_path: Path) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "pipe")

    first = goldfish(project, "run", str(folder), "--wait", "--json")
    again = goldfish(project, "run", str(folder), "--wait", "--json")  # every stage a cache hit
    dry = goldfish(project, "run", str(folder), "--dry-run")

    assert first.code == 0, first.stderr
    assert [stage["status"] for stage in first.json()["stages"]] == ["completed", "completed"]
    assert [stage["cache_hit"] for stage in again.json()["stages"]] == [True, True]
    assert dry.code == 0, dry.stderr
    log = next((project / ".goldfish" / "logs").glob(f"driver-{first.json()['pipeline_run_id']}.log"))
    assert "Traceback" not in log.read_text(encoding="utf-8")
    assert cli_processes(project) == []
