"""`goldfish doctor` as a person runs it: a subprocess, text or JSON, with and without Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from goldfish.project import initialize_project
from tests.conftest import use_backend
from tests.docker_support import require_docker


def doctor(cwd: Path, *arguments: str, docker_host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("GOLDFISH_PROJECT", None)
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    return subprocess.run(
        [sys.executable, "-m", "goldfish.cli", "doctor", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_doctor_when_no_engine_answers_says_so_and_auto_picks_process(tmp_path: Path) -> None:
    absent = f"unix://{tmp_path}/absent.sock"

    done = doctor(tmp_path, "--json", docker_host=absent)

    assert done.returncode == 0, done.stderr
    report = report_of(done)
    assert report["docker"]["reachable"] is False
    assert report["project"] is None
    assert report["auto_picks"] == "process"
    assert "not reachable" in report["auto_reason"]
    assert report["docker"]["missing"] == "engine"
    assert report["docker"]["fix"].startswith("unset DOCKER_HOST")
    text = doctor(tmp_path, docker_host=absent)
    assert "docker: not reachable" in text.stdout
    assert "missing: the docker engine; fix: unset DOCKER_HOST" in text.stdout
    assert "auto picks process" in text.stdout


def test_doctor_when_the_project_insists_on_docker_without_an_engine_exits_1(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    initialize_project(str(root), "proj")
    use_backend(root, "docker")

    done = doctor(root, "--json", docker_host=f"unix://{tmp_path}/absent.sock")

    assert done.returncode == 1
    report = report_of(done)
    assert (report["project"], report["default_backend"], report["ok"]) == (
        str(root.resolve()),
        "docker",
        False,
    )


def test_doctor_when_the_engine_has_the_base_image_reports_it_and_auto_picks_docker(tmp_path: Path) -> None:
    require_docker()

    done = doctor(tmp_path, "--json")

    assert done.returncode == 0, done.stderr
    report = report_of(done)
    assert report["docker"]["reachable"] is True
    images = {image["name"]: image for image in report["base_images"]}
    assert images["goldfish-base:latest"]["present"] is True
    assert images["goldfish-base:latest"]["role"] == "configured"
    assert report["auto_picks"] == "docker"
    assert (report["docker"]["missing"], report["docker"]["fix"]) == (None, None)
    text = doctor(tmp_path).stdout
    assert "docker: reachable" in text
    assert "base image goldfish-base:latest (configured): sha256:" in text
