"""Collecting a finished stage: declared outputs exist, are hashed, stored and recorded as lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from goldfish.db.runs import LineageRow
from goldfish.hashing import hash_path
from goldfish.pipelines.models import StageDef
from goldfish.runs.contracts import check_output
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage


@dataclass(frozen=True)
class CollectResult:
    """What collection found."""

    outputs: list[LineageRow]
    missing: list[str]
    unsafe: list[str]
    violations: list[str] = field(default_factory=list)


def _unsafe_links(folder: Path) -> list[str]:
    """Symlinks under ``folder`` that resolve outside it."""
    root = folder.resolve()
    bad = []
    for path in folder.rglob("*"):
        if path.is_symlink():
            target = path.resolve()
            if target != root and root not in target.parents:
                bad.append(str(path.relative_to(folder)))
    return bad


def collect_outputs(
    stage: StageDef, stage_run_id: str, outputs_dir: Path, storage: Storage, *, check_contracts: bool = True
) -> CollectResult:
    """Check, hash and store every declared output; nothing is stored when one is missing or unsafe.

    Outputs that break their declared schema are stored (to inspect them) and reported as violations.
    """
    missing, unsafe = [], []
    for signal in stage.outputs:
        folder = outputs_dir / signal
        if not folder.is_dir() or not any(folder.iterdir()):
            missing.append(signal)
        else:
            unsafe += [f"{signal}/{rel}" for rel in _unsafe_links(folder)]
    if missing or unsafe:
        return CollectResult([], missing, unsafe)
    violations = [
        f"{signal}: {problem}"
        for signal, declared in stage.outputs.items()
        for problem in check_output(declared.type, outputs_dir / signal, declared.schema_)
        if check_contracts
    ]
    paths = RunPaths(stage_run_id)
    rows = []
    for signal, declared in stage.outputs.items():
        digest, size = hash_path(outputs_dir / signal)
        storage.put_dir(outputs_dir / signal, paths.output(signal), move=True)
        rows.append(
            LineageRow(
                stage_run_id,
                "output",
                signal,
                declared.type,
                storage.uri(paths.output(signal)),
                digest,
                size,
                None,
                None,
            )
        )
    return CollectResult(rows, [], [], violations)
