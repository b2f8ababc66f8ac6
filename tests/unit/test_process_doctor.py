"""The process backend's part of ``goldfish doctor``: its interpreter, and pip for requirements venvs."""

from __future__ import annotations

import sys

import pytest

from goldfish.backends.process import doctor
from goldfish.cli.doctor import process_line


def test_process_doctor_when_asked_names_this_interpreter_and_is_ready() -> None:
    report = doctor.diagnose()

    assert (report["ready"], report["interpreter"]) == (True, sys.executable)
    assert report["python"] == sys.version.split()[0]
    assert f"process: python {report['python']} ({sys.executable})" in process_line(report)


def test_process_doctor_when_neither_pip_nor_ensurepip_exists_gives_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pip", None)
    monkeypatch.setitem(sys.modules, "ensurepip", None)

    report = doctor.diagnose()

    assert (report["ready"], report["pip"]) == (True, None)
    assert "python3-venv" in report["fix"]
    assert "no pip for requirements.txt" in process_line(report)
