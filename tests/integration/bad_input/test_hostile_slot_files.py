"""Bad input: slot-reading tools on hostile files (bombs, deep nesting, huge files, links out, '..')."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import LONG_REASON, structured
from tests.integration.bad_input.sandbox_support import Session, assert_structured, outside_state

# ---------------------------------------------------------------------------------------------
# Hostile files in the slot: bombs, deep nesting, huge files, duplicate keys, links out, '..'
# ---------------------------------------------------------------------------------------------

# Text that exists only in bait files outside the project: no reply may ever contain it.
OUTSIDE_MARKER = "OUTSIDE-ONLY-c0ffee"
VALID_PIPELINE = "stages:\n  - name: train\n    outputs:\n      model: {type: file}\n"


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())


def _files(entries: dict[str, str]) -> Callable[[Path, Path], None]:
    def apply(slot: Path, _outside: Path) -> None:
        for rel, text in entries.items():
            (slot / rel).parent.mkdir(parents=True, exist_ok=True)
            (slot / rel).write_text(text, encoding="utf-8")

    return apply


def _links(entries: dict[str, str]) -> Callable[[Path, Path], None]:
    def apply(slot: Path, outside: Path) -> None:
        for rel, target in entries.items():
            _link(slot / rel, outside / target if not target.startswith("/") else Path(target))

    return apply


HOSTILE_SLOTS: dict[str, Callable[[Path, Path], None]] = {
    "alias bomb in pipeline.yaml": _files({"pipeline.yaml": VALID_PIPELINE + _alias_bomb()}),
    "alias bomb in a stage config": _files({"configs/train.yaml": "lr: 0.1\n" + _alias_bomb()}),
    "5000-deep nesting": _files({"pipeline.yaml": "stages: " + "[" * 5000 + "]" * 5000 + "\n"}),
    "2 MB pipeline.yaml": _files({"pipeline.yaml": VALID_PIPELINE + "#" * 2_000_000 + "\n"}),
    "duplicate keys": _files(
        {"pipeline.yaml": VALID_PIPELINE + VALID_PIPELINE, "configs/train.yaml": "a: 1\na: 2\n"}
    ),
    "configs/ links out": _links({"configs": "bait-configs"}),
    "pipelines/ links out": _links({"pipelines": "bait-pipelines"}),
    "pipeline.yaml links out": _links({"pipeline.yaml": "bait-pipelines/evil.yaml"}),
    "a module links to /etc/passwd": _links({"modules/train.py": "/etc/passwd"}),
}


def plant_outside_bait(outside: Path) -> None:
    """Files outside the project that a followed link or '..' name would read."""
    (outside / "bait-configs").mkdir()
    (outside / "bait-configs" / "train.yaml").write_text(f"lr: {OUTSIDE_MARKER}\n", encoding="utf-8")
    (outside / "bait-pipelines").mkdir()
    evil = f"stages:\n  - name: train\n    modul: {OUTSIDE_MARKER}\n"
    (outside / "bait-pipelines" / "evil.yaml").write_text(evil, encoding="utf-8")
    (outside / "evil.yaml").write_text(evil, encoding="utf-8")


def reset_slot(session: Session) -> Path:
    """ws1 mounted in w1 again, holding a valid one-stage pipeline and nothing hostile."""
    session.succeed("mount", workspace="ws1", slot="w1", reason=LONG_REASON)
    slot = session.box.root / "workspaces" / "w1"
    for rel in ("pipeline.yaml", "configs", "pipelines", "modules", "results_spec.yaml"):
        path = slot / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    _files(
        {"pipeline.yaml": VALID_PIPELINE, "configs/train.yaml": "lr: 0.1\n", "modules/train.py": "print(1)\n"}
    )(slot, session.box.outside)
    return slot


def slot_reading_calls() -> list[tuple[str, dict[str, Any]]]:
    """Every tool call that reads or saves the slot's files, plus '..' pipeline names."""
    spec = {"primary_metric": "loss", "direction": "minimize"}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("validate_config", {"workspace": "ws1"}),
        ("validate_config", {"workspace": "w1"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True}),
        ("inspect_workspace", {"name": "ws1", "include": ["pipeline"]}),
        ("diff", {"target": "w1"}),
        ("status", {}),
        ("dashboard", {}),
        ("save_version", {"slot": "w1", "message": "saving whatever the slot holds now"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "results_spec": spec}),
        ("hibernate", {"slot": "w1", "reason": LONG_REASON}),
        ("validate_config", {"workspace": "ws1"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True}),
    ]
    for name in ("../../../../outside/evil", "../../../outside/evil", "../evil", "/etc/passwd", "a/../../b"):
        calls.append(("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True, "pipeline": name}))
    return calls


def test_slot_reading_tools_when_the_slot_holds_hostile_files_answer_structured_and_leak_nothing(
    session: Session,
) -> None:
    box = session.box
    plant_outside_bait(box.outside)
    before, before_outside = box.snapshot(), outside_state()

    for scenario, make_hostile in HOSTILE_SLOTS.items():
        slot = reset_slot(session)
        make_hostile(slot, box.outside)
        for tool, arguments in slot_reading_calls():
            payload = assert_structured(tool, arguments, session.call(tool, arguments))
            assert OUTSIDE_MARKER not in json.dumps(payload), (scenario, tool, arguments)
            assert "bait:x:0:0" not in json.dumps(payload), (scenario, tool, arguments)
        assert structured(session.call("status", {}))["success"] is True, scenario
        assert box.snapshot() == before, scenario
    assert outside_state() == before_outside
    reset_slot(session)  # no link out of the slot stays behind for the database check
