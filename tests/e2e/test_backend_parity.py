"""One pipeline, three backends: process, docker and the GCE simulator see and produce the same.

pipelines.md promises that "the same module runs unchanged in a process, a container or a VM".
The same two-stage workspace (a dataset registered from one file and one registered from a
folder; npy, csv, file and directory signals; a ``requirements.txt``) runs on each backend; each
stage records what it saw (its working folder, its inputs file by file with content hashes, what
``load_input`` gave it) into its file output. The test compares those records and the content
hashes and SVS statistics of every output across the backends, and checks the record itself.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.context import ServerContext
from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.docker_support import containers_removed_at_exit, require_docker
from tests.e2e.gce_support import RUN_TIMEOUT, GceWorld, gce_config
from tests.integration.docker_backend.backend_support import docker_project
from tests.integration.pipeline_fixtures import (
    by_stage,
    ok,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PIPELINE = """\
name: parity
stages:
  - name: ingest
    inputs:
      table: {type: dataset, dataset: parity_table}
      images: {type: dataset, dataset: parity_images}
    outputs:
      features: {type: npy, checks: {std: {min: 1000, mode: warn}}}
      rows: {type: csv}
      summary: {type: file}
      shards: {type: directory}
  - name: report
    inputs:
      features: {type: npy, from_stage: ingest}
      rows: {type: csv, from_stage: ingest}
      summary: {type: file, from_stage: ingest}
      shards: {type: directory, from_stage: ingest}
    outputs:
      seen: {type: file}
"""

OBSERVE = '''\
"""What a stage sees: its working folder, its code, each input file by file and as loaded."""

import hashlib
import os
from pathlib import Path

import numpy

from goldfish.io import get_input_path, load_input


def _files(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _loaded(value) -> dict:
    if isinstance(value, Path):
        return {"kind": "file", "name": value.name} if value.is_file() else {"kind": "folder"}
    if hasattr(value, "shape"):
        shape, dtype = list(value.shape), str(value.dtype)
        return {"kind": "array", "shape": shape, "dtype": dtype, "sum": float(value.sum())}
    records = value.astype(str).to_dict("records") if hasattr(value, "to_dict") else value
    return {"kind": "table", "rows": [dict(sorted(row.items())) for row in records]}


def observe(inputs: list) -> dict:
    started_with = sorted(os.listdir("."))
    with open("scratch.json", "w") as handle:  # a relative path: the working folder
        handle.write("{}")
    return {
        "cwd_is_work_dir": Path.cwd() == Path(os.environ["GOLDFISH_WORK_DIR"]),
        "cwd_started_with": started_with,
        "wrote_in_cwd": Path("scratch.json").is_file(),
        "code_has_requirements": (Path(os.environ["GOLDFISH_CODE_DIR"]) / "requirements.txt").is_file(),
        "numpy_imported": bool(numpy.__version__),
        "inputs": {
            name: {"files": _files(get_input_path(name)), "loaded": _loaded(load_input(name))}
            for name in inputs
        },
    }
'''

INGEST = """\
import csv
import json

import numpy as np

from goldfish.io import get_output_path, load_input, save_output
from modules.observe import observe

seen = observe(["table", "images"])
table = next(p for p in load_input("table").iterdir() if p.suffix == ".csv")
with table.open(newline="") as handle:
    rows = list(csv.DictReader(handle))
save_output("rows", rows)
np.save(get_output_path("features"), np.arange(12, dtype="float32").reshape(3, 4) * len(rows))
with open(get_output_path("summary"), "w") as handle:
    json.dump(seen, handle, sort_keys=True, indent=1)
shards = get_output_path("shards")
(shards / "sub").mkdir()
(shards / "a.txt").write_text("shard a")
(shards / "sub" / "b.txt").write_text((load_input("images") / "cats" / "tom.txt").read_text())
"""

REPORT = """\
import json

from goldfish.io import get_output_path
from modules.observe import observe

with open(get_output_path("seen", "seen.json"), "w") as handle:
    json.dump(observe(["features", "rows", "summary", "shards"]), handle, sort_keys=True, indent=1)
"""

TABLE = "id,word\n1,alpha\n2,beta\n3,gamma\n"


def write_workspace(slot: Path, configs: dict[str, dict[str, Any]]) -> None:
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "requirements.txt").write_text("numpy\n", encoding="utf-8")
    modules = slot / "modules"
    modules.mkdir(exist_ok=True)
    for name, text in {"observe": OBSERVE, "ingest": INGEST, "report": REPORT}.items():
        (modules / f"{name}.py").write_text(text, encoding="utf-8")
    write_configs(slot, configs)


async def register_datasets(client: Client, root: Path) -> None:
    """``parity_table`` from one CSV file, ``parity_images`` from a folder (with a subfolder)."""
    data = root / "data" / "parity"
    (data / "images" / "cats").mkdir(parents=True)
    (data / "table.csv").write_text(TABLE, encoding="utf-8")
    (data / "images" / "readme.txt").write_text("two cats\n", encoding="utf-8")
    (data / "images" / "cats" / "tom.txt").write_text("tom\n", encoding="utf-8")
    for name, path in (("parity_table", data / "table.csv"), ("parity_images", data / "images")):
        await ok(
            client, "register_source", name=name, uri=str(path), description="parity data", reason=LONG_REASON
        )


def stored_text(root: Path, uri: str) -> str:
    """The one file of a stored output (local storage or the bucket, through the project's storage)."""
    context = ServerContext.open(root)
    try:
        storage = context.storage
        key = storage.key_of(uri)
        assert key is not None, uri
        keys = storage.list_keys(key)
        assert len(keys) == 1, keys
        data = storage.read_bytes(keys[0])
        assert data is not None
        return data.decode("utf-8")
    finally:
        context.close()


async def run_parity(root: Path, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run the workspace on the project at ``root``; what each stage saw and the hash of each output."""
    async with Client(server_for(root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "w1")
        write_workspace(slot, configs)
        await register_datasets(client, root)
        submission = await start_run(client, "w1")
        final = await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
        stages = by_stage(final["stages"])
        for stage in ("ingest", "report"):
            if stages[stage]["status"] != "completed":
                errors = await ok(client, "logs", run_id=stages[stage]["stage_run_id"], stream="stderr")
                pytest.fail(f"{stage} on {root.name}: {stages[stage]}\n" + "\n".join(errors["logs"]["lines"]))
        picture: dict[str, Any] = {}
        for stage, record in (("ingest", "summary"), ("report", "seen")):
            run_id = stages[stage]["stage_run_id"]
            inspected = await ok(client, "inspect_run", run_id=run_id, include=["manifest", "svs"])
            outputs = {o["signal"]: o for o in inspected["inspect"]["manifest"]["outputs"]}
            svs = inspected["inspect"]["svs"]["outputs"]
            picture[stage] = {
                "backend": inspected["inspect"]["run"]["backend"],
                "hashes": {signal: output["content_hash"] for signal, output in outputs.items()},
                "stats": {signal: found["stats"] for signal, found in svs.items()},
                "findings": {signal: found["findings"] for signal, found in svs.items()},
                "seen": json.loads(stored_text(root, outputs[record]["uri"])),
            }
        return picture


def without_backend(picture: dict[str, Any]) -> dict[str, Any]:
    return {stage: {k: v for k, v in part.items() if k != "backend"} for stage, part in picture.items()}


async def test_the_same_pipeline_when_run_on_process_docker_and_gce_sees_and_produces_the_same(
    tmp_path: Path, world: GceWorld
) -> None:
    engine = require_docker()
    process_root = docker_project(tmp_path, "on-process", backend="process")
    docker_root = docker_project(tmp_path, "on-docker")
    pictures: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for root in (process_root, docker_root, world.root):
            stack.enter_context(reaped_at_exit(root))
            stack.enter_context(containers_removed_at_exit(engine, root))
        pictures["process"] = await run_parity(process_root, {})
        pictures["docker"] = await run_parity(docker_root, {})
        pictures["gce"] = await run_parity(world.root, {"ingest": gce_config(), "report": gce_config()})

    assert {name: p["ingest"]["backend"] for name, p in pictures.items()} == {
        "process": "process",
        "docker": "docker",
        "gce": "gce",
    }
    expected = without_backend(pictures["process"])
    ingest = expected["ingest"]["seen"]
    # The record itself is right (so equal records mean equally right, not equally broken).
    assert ingest["cwd_is_work_dir"] and ingest["wrote_in_cwd"] and ingest["code_has_requirements"]
    assert ingest["cwd_started_with"] == []
    assert list(ingest["inputs"]["table"]["files"]) == ["table.csv"]
    assert list(ingest["inputs"]["images"]["files"]) == ["cats/tom.txt", "readme.txt"]
    report = expected["report"]["seen"]
    assert report["inputs"]["features"]["loaded"] == {
        "kind": "array", "shape": [3, 4], "dtype": "float32", "sum": 198.0,
    }  # fmt: skip
    assert report["inputs"]["rows"]["loaded"]["rows"][0] == {"id": "1", "word": "alpha"}
    assert report["inputs"]["summary"]["loaded"] == {"kind": "file", "name": "summary"}
    assert list(report["inputs"]["shards"]["files"]) == ["a.txt", "sub/b.txt"]
    # SVS statistics were computed in each stage environment (container and VM too) and agree.
    stats = expected["ingest"]["stats"]
    assert stats["features"]["count"] == 12 and stats["features"]["mean"] == pytest.approx(198.0 / 12)
    assert stats["rows"]["rows"] >= 1 and stats["shards"]["files"] == 2
    [warning] = expected["ingest"]["findings"]["features"]
    assert (warning["rule"], warning["mode"], warning["bound"]) == ("std", "warn", {"min": 1000.0})
    assert without_backend(pictures["docker"]) == expected
    assert without_backend(pictures["gce"]) == expected
