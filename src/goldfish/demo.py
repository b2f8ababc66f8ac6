"""``goldfish demo``: a small ML project, run end to end through a real MCP client session.

It creates a project (in a temporary folder or the one given), generates a dataset into its
data/ folder and does what an agent does, with the same tools: register the dataset, create and
mount a workspace, copy in ``pipelines/demo`` (preprocess -> train -> evaluate, numpy only),
validate and run it (docker when the engine and base image are there, else the process backend),
print metrics and lineage, lower the learning
rate and run again (a new version), then re-run unchanged (all cache hits); each run's outcome is
recorded with finalize_run before the next, and get_experiment_context ends it. Needs no Docker
and no cloud.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
from mcp import Client

import goldfish
from goldfish import demo_report as report
from goldfish.demo_report import RunOutcome
from goldfish.project import initialize_project
from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml

REASON = "running the Goldfish demo pipeline end to end"
WORKSPACE = "blobs-mlp"
SLOT = "w1"
DATASET = "demo_blobs"
WORKSPACE_FILES = ("pipeline.yaml", "modules", "configs", "README.md")
LR_LINE = re.compile(r"^lr:\s*([0-9.eE+-]+)( *)", re.MULTILINE)
WAIT = 600


class DemoError(RuntimeError):
    """A demo step did not succeed."""


def find_demo_pipeline() -> Path:
    """``pipelines/demo`` of the source checkout (goldfish is installed editable from it)."""
    here, cwd = Path(goldfish.__file__).resolve().parent, Path.cwd().resolve()
    for base in [here, *here.parents, cwd, *cwd.parents]:
        candidate = base / "pipelines" / "demo"
        if (candidate / "pipeline.yaml").is_file() and (candidate / "make_data.py").is_file():
            return candidate
    raise DemoError(
        "the demo pipeline (pipelines/demo) was not found next to the goldfish package or above the "
        "current folder; it ships with the source checkout: clone the repository and run `make demo` there"
    )


async def _call(client: Client, tool: str, progress: Any = None, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments, progress_callback=progress)
    if result.is_error:  # the error JSON travels as the text block (no structured content)
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise DemoError(f"{tool} failed: {text}")
    payload: dict[str, Any] = result.structured_content or {}
    return payload


def _step(text: str) -> None:
    print(f"\n== {text}")


def _generate_data(demo: Path, target: Path) -> None:
    """Run the demo's own generator, as a person would: ``python make_data.py TARGET``."""
    if importlib.util.find_spec("numpy") is None:
        raise DemoError("the demo needs numpy: pip install 'goldfish-mcp[ml]' (or run `make setup`)")
    command = [sys.executable, str(demo / "make_data.py"), str(target)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DemoError(f"make_data.py failed:\n{done.stderr.strip()}")
    print(done.stdout.strip())


def _copy_workspace(demo: Path, slot: Path) -> None:
    for name in WORKSPACE_FILES:
        source = demo / name
        if source.is_dir():
            shutil.copytree(source, slot / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, slot / name)
    files = sorted(str(p.relative_to(slot)) for p in slot.rglob("*") if p.is_file())
    print(f"copied {len(files)} files from {demo} into {slot}: {', '.join(files)}")


def _set_lr(slot: Path, factor: float) -> tuple[str, str]:
    """Scale ``lr`` in configs/train.yaml; return the old and new values."""
    path = slot / "configs" / "train.yaml"
    text = path.read_text(encoding="utf-8")
    match = LR_LINE.search(text)
    if match is None:
        raise DemoError(f"{path} has no 'lr:' line to change")
    old = match.group(1)
    new = f"{float(old) * factor:g}"
    padded = new.ljust(match.end(2) - match.start(1) - 1) + " " if match.group(2) else new
    path.write_text(text[: match.start(1)] + padded + text[match.end(2) :], encoding="utf-8")
    return old, new


async def _run(client: Client, spec: dict[str, Any], label: str, why: str, lr: str) -> RunOutcome:
    """``run`` with wait=true (printing progress), then the last value of every stage's metrics."""
    last: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if message and message not in last:
            last.append(message)
            print(f"   ... {message}")

    started = time.monotonic()
    payload = await _call(
        client, "run", progress, workspace=SLOT, reason=why, results_spec=spec, wait=True, wait_seconds=WAIT
    )
    outcome = RunOutcome(label, payload["run"], lr=lr)
    for stage in outcome.stages:
        series = await _call(client, "get_metrics", run_id=stage["stage_run_id"], summary_only=True)
        outcome.metrics[stage["stage"]] = {m["name"]: m["last"] for m in series["metrics"]}
    run = payload["run"]
    created = "saved as a new version" if run["version_created"] else "unchanged: same version"
    took = f"finished in {time.monotonic() - started:.1f}s" if run["finished"] else f"not finished at {WAIT}s"
    print(f"pipeline run {run['pipeline_run_id']} on {run['version']} ({created}), {took}:")
    print(report.stage_table(outcome))
    for stage in (s for s in outcome.stages if s["status"] != "completed"):
        print(f"\n{stage['stage']}: {stage.get('error') or stage['status']}")
        if stage["status"] == "failed":
            logs = await _call(client, "logs", run_id=stage["stage_run_id"], tail=15, stream="stderr")
            print("\n".join(f"   | {line}" for line in logs["logs"]["lines"]))
    if run["finished"]:  # the finalization gate: record the outcome before the next run
        (entry,) = (await _call(client, "list_unfinalized_runs", workspace=WORKSPACE))["runs"]  # this run
        results = report.results_from(entry["suggestion"])  # value and outcome it suggests
        done = await _call(client, "finalize_run", record_or_run_id=entry["record_id"], results=results)
        print(report.finalization_line(done["finalize"]["record"]))
    return outcome


async def _explain(client: Client, outcome: RunOutcome, spec: dict[str, Any]) -> None:
    """Verdict against the results spec, the lineage of each stage and the evaluate report."""
    value = outcome.primary(spec)
    shown = f"{value:.3f}" if value is not None else "-"
    print(f"\n{spec['primary_metric']} = {shown}: {report.verdict(value, spec)}")
    runs = {s["stage"]: s["stage_run_id"] for s in outcome.stages}
    lineage = [await _call(client, "get_lineage", run_id=r, direction="upstream") for r in runs.values()]
    edges = {stage: found["edges"] for stage, found in zip(runs, lineage, strict=True)}
    print("\nlineage (get_lineage, upstream):")
    print("\n".join(report.lineage_lines(edges, runs)))
    inspected = await _call(client, "inspect_run", run_id=runs["evaluate"], include=["manifest"])
    output = next(o for o in inspected["inspect"]["manifest"]["outputs"] if o["signal"] == "report")
    path = Path(unquote(urlparse(output["uri"]).path)) / "report.json"
    print("\nevaluate report (stored output 'report'):")
    print("\n".join(report.report_lines(json.loads(path.read_text(encoding="utf-8")), path)))


async def _walk(root: Path, demo: Path) -> tuple[list[RunOutcome], str | None]:
    """The session; a failed step ends it with its message (raised inside the client it would be grouped)."""
    outcomes: list[RunOutcome] = []
    async with Client(server_for(root)) as client:
        try:
            await _session(client, demo, outcomes)
        except DemoError as exc:
            return outcomes, str(exc)
    return outcomes, None


async def _session(client: Client, demo: Path, outcomes: list[RunOutcome]) -> None:
    spec: dict[str, Any] = load_yaml(
        (demo / "results_spec.yaml").read_text(encoding="utf-8"), "results_spec.yaml"
    ).data
    _step(f"register_source: data/{DATASET} becomes an immutable, hashed dataset")
    registered = await _call(
        client,
        "register_source",
        name=DATASET,
        uri=f"data/{DATASET}",
        description="Two Gaussian blobs and a ring in 4 dimensions (pipelines/demo/make_data.py)",
        reason="the demo pipeline reads this generated dataset",
        metadata={"rows": 2000, "features": 4, "classes": 3, "generator": "make_data.py --seed 7"},
    )
    source = registered["source"]
    print(f"{source['name']}: {source['uri']} ({source['size_bytes']} bytes, {source['content_hash'][:18]})")

    _step("create_workspace + mount, copy the demo pipeline in, validate_config")
    await _call(client, "create_workspace", name=WORKSPACE, goal="classify the blobs", reason=REASON)
    mounted = await _call(client, "mount", workspace=WORKSPACE, slot=SLOT, reason=REASON)
    slot = Path(mounted["mount"]["slot_path"])
    _copy_workspace(demo, slot)
    check = await _call(client, "validate_config", workspace=WORKSPACE)
    print(f"validate_config: valid={check['valid']}, checked {', '.join(check['checked'])}")
    if not check["valid"]:
        raise DemoError(f"the demo pipeline is invalid: {check['problems']}")

    _step("run: save the slot as a version, then preprocess -> train -> evaluate")
    lr = str(
        load_yaml(
            (slot / "configs" / "train.yaml").read_text(encoding="utf-8"), "configs/train.yaml"
        ).data.get("lr")
    )
    first = await _run(client, spec, "baseline", "first run of the demo pipeline with its default config", lr)
    outcomes.append(first)
    if not first.ok:
        return
    await _explain(client, first, spec)

    _step("change a config value: lower the learning rate tenfold and run again")
    old, new = _set_lr(slot, 0.1)
    diff = await _call(client, "diff", target=SLOT)
    changed = [line for line in diff["diff"]["patch"].splitlines() if line[:2] in ("-l", "+l")]
    print(f"edited {slot / 'configs' / 'train.yaml'}: lr {old} -> {new}; diff(w1) shows:")
    print("\n".join(f"   {line}" for line in changed))
    why = f"does a tenfold smaller learning rate ({new}) still converge in the same epochs?"
    outcomes.append(await _run(client, spec, "lower lr", why, new))

    _step("run again, unchanged: every stage is a cache hit, nothing executes")
    why = "re-running the unchanged workspace to show stage caching"
    outcomes.append(await _run(client, spec, "re-run", why, new))

    _step("compare the runs, then get_experiment_context: best result and recent trend")
    print(report.comparison(outcomes, spec))
    context = await _call(client, "get_experiment_context", workspace=WORKSPACE)
    print(report.context_lines(context["context"]))


def run_demo(folder: Path | None = None) -> int:
    """Run the demo in ``folder``/project (default: a new temporary folder); return an exit code."""
    root = (folder or Path(tempfile.mkdtemp(prefix="goldfish-demo-"))).resolve() / "project"
    try:
        demo = find_demo_pipeline()
        if root.exists() and any(root.iterdir()):
            raise DemoError(f"{root} exists already; give an empty or new folder")
        root.parent.mkdir(parents=True, exist_ok=True)
        initialize_project(str(root), "goldfish-demo")
        print(f"Demo project: {root}\nDemo pipeline: {demo}")
        _step(f"generate the dataset into data/{DATASET}/")
        _generate_data(demo, root / "data" / DATASET)
        outcomes, error = anyio.run(_walk, root, demo)
    except DemoError as exc:
        outcomes, error = [], str(exc)
    if error or not outcomes:
        print(f"\ndemo failed: {error}")
        return 1
    ok = all(outcome.ok for outcome in outcomes)
    if not ok:
        print("\ndemo failed: a stage did not complete (see above)")
    _step("where to look next")
    print(report.next_steps(root, outcomes[0]))
    return 0 if ok else 1
