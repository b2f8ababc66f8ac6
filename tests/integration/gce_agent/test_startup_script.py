"""The VM's startup script run for real: it refuses an agent that is missing or not an archive."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.gce_agent.vm_support import STARTUP, WAIT_SECONDS, Vm


def _run_startup_script(vm: Vm) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(STARTUP)],
        env=vm.environment(),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


def test_startup_script_when_the_agent_is_not_in_metadata_fails_without_running_anything(vm: Vm) -> None:
    done = _run_startup_script(vm)
    assert done.returncode != 0
    assert "goldfish-agent metadata value is missing" in done.stderr
    assert not (vm.tmp / "agent-home" / "agent.pyz").exists()
    assert vm.docker_calls() == [] and vm.power_calls() == []


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("print('not an archive')", "not base64"),
        ("bm90IGEgemlwIGFyY2hpdmU=", "not a zip application"),  # base64 of "not a zip archive"
    ],
)
def test_startup_script_when_the_agent_value_is_not_an_archive_fails_without_running_anything(
    vm: Vm, value: str, said: str
) -> None:
    vm.metadata.set_attribute("goldfish-agent", value)
    done = _run_startup_script(vm)
    assert done.returncode != 0
    assert said in done.stderr
    assert not (vm.tmp / "agent-home" / "agent.pyz").exists()
    assert vm.docker_calls() == [] and vm.power_calls() == []
