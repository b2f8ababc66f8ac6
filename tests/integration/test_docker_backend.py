"""The docker backend with real containers on the local engine, through real MCP sessions.

The same 3-stage pipeline runs on the process and the docker backend in one test run; the
demo pipeline trains in containers; a stage that writes to an input, forks past the pids limit,
overruns its timeout or is canceled meets the sandbox; a driver that died between starting a
container and recording it is reconciled by label; a changed requirements.txt rebuilds only its
layer of the stage image. Every test removes its project's containers (by label) at the end.

Without a usable engine these tests skip with the reason; under ``CI=true`` they fail
(``make test`` prepares the engine with ``scripts/ensure-docker.sh``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.backends.container import Limits, container_invocation, docker_run_argv, project_label
from goldfish.backends.spec import RunSpec
from goldfish.context import ServerContext
from goldfish.project import initialize_project
from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON, set_finalization_gate, use_backend
from tests.docker_support import containers_removed_at_exit, require_docker, stage_containers
from tests.integration.pipeline_fixtures import (
    by_stage,
    database,
    eventually,
    ok,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    wait_until,
    workspace_in_slot,
    write_configs,
    write_pipeline,
)

REPO = Path(__file__).resolve().parents[2]
DOCKER_RUN_TIMEOUT = 120.0

ONE_STAGE = """\
name: one
stages:
  - name: prep
    outputs:
      features: {type: npy}
"""

TAMPER_PIPELINE = """\
name: tamper
stages:
  - name: prep
    outputs:
      features: {type: npy}
  - name: tamper
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      report: {type: file}
"""

TAMPER = """\
import os
import sys
from pathlib import Path

from goldfish.io import get_input_path

folder = get_input_path("features")
print(f"uid={os.getuid()} inputs={os.environ['GOLDFISH_INPUTS_DIR']} cwd={os.getcwd()}", flush=True)
try:
    (folder / "data.npy").write_bytes(b"overwritten")
except OSError as exc:
    print(f"write refused: {exc.strerror}", file=sys.stderr, flush=True)
    sys.exit(3)
print("the input was writable", flush=True)
"""

FORK_BOMB = """\
import subprocess
import sys

from goldfish.io import get_output_path

children = []
try:
    for _ in range(200):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as exc:
    print(f"pids limit hit after {len(children)} children: {exc.strerror}", file=sys.stderr, flush=True)
    sys.exit(5)
print(f"started all {len(children)} children", flush=True)
get_output_path("features").write_bytes(b"")  # a stage that saves its output (the pre-run review checks)
"""


def docker_project(base: Path, name: str, extra_yaml: str = "", backend: str = "docker") -> Path:
    """A project whose stages run on ``backend`` (gate off, like ``project_root``)."""
    root = base / name
    initialize_project(str(root), name)
    set_finalization_gate(root, enabled=False)
    use_backend(root, backend)
    if extra_yaml:
        with (root / "goldfish.yaml").open("a", encoding="utf-8") as config:
            config.write(extra_yaml)
    return root


@pytest.fixture
def engine() -> Any:
    """A docker client (skips, or fails under CI=true, without a usable engine)."""
    return require_docker()


@pytest.fixture
def docker_root(tmp_path: Path, engine: Any) -> Iterator[Path]:
    """A docker-backed project; its drivers and containers are removed afterwards."""
    root = docker_project(tmp_path, "dockerproj")
    with reaped_at_exit(root), containers_removed_at_exit(engine, root):
        yield root


@pytest.fixture
async def dsession(docker_root: Path) -> AsyncIterator[Client]:
    """One MCP session on the docker-backed project."""
    async with Client(server_for(docker_root), mode="legacy") as client:
        yield client


async def run_and_wait(client: Client, **arguments: Any) -> dict[str, Any]:
    """Start a run and wait (bounded) for its pipeline run to end."""
    submission = await start_run(client, **arguments)
    return await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=DOCKER_RUN_TIMEOUT)


async def stderr_of(client: Client, run_id: str) -> str:
    result = await ok(client, "logs", run_id=run_id, stream="stderr", tail=200)
    return "\n".join(result["logs"]["lines"])


async def stdout_of(client: Client, run_id: str) -> str:
    result = await ok(client, "logs", run_id=run_id, stream="stdout", tail=200)
    return "\n".join(result["logs"]["lines"])


# -- the same pipeline on both backends ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["process", "docker"])
async def test_three_stage_pipeline_when_run_on_each_backend_completes_with_hashed_lineage(
    backend: str, tmp_path: Path
) -> None:
    client_engine = require_docker() if backend == "docker" else None
    root = docker_project(tmp_path, f"{backend}proj", backend=backend)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(reaped_at_exit(root))
        if client_engine is not None:
            cleanup.enter_context(containers_removed_at_exit(client_engine, root))
        async with Client(server_for(root), mode="legacy") as client:
            slot = await workspace_in_slot(client, "alpha")
            write_pipeline(slot, configs={"prep": {"lines": 3, "metrics": 4}})

            final = await run_and_wait(client)

            assert final["state"] == "completed", final
            stages = by_stage(final["stages"])
            assert list(stages) == ["prep", "train", "evaluate"]
            for stage in stages.values():
                assert (stage["status"], stage["exit_code"], stage["backend"]) == ("completed", 0, backend)
            prep = stages["prep"]["stage_run_id"]
            assert "prep line 2" in await stdout_of(client, prep)
            metrics = await ok(client, "get_metrics", run_id=prep, names=["loss"])
            assert metrics["metrics"][0]["count"] == 4
            detail = await ok(client, "inspect_run", run_id=prep, include=["manifest"])
            assert detail["inspect"]["run"]["backend"] == backend
            assert ("container_id" in detail["inspect"]["backend_handle"]) is (backend == "docker")
            train = await ok(
                client, "inspect_run", run_id=stages["train"]["stage_run_id"], include=["manifest"]
            )
            (features,) = train["inspect"]["manifest"]["inputs"]
            (produced,) = detail["inspect"]["manifest"]["outputs"]
            assert features["content_hash"] == produced["content_hash"]
            assert features["producer_run_id"] == prep
        if client_engine is not None:
            assert stage_containers(client_engine, root, prep) == []  # removed after collection


# -- the demo -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_demo_pipeline_when_run_on_docker_trains_and_evaluates_in_containers(
    dsession: Client, docker_root: Path
) -> None:
    demo = REPO / "pipelines" / "demo"
    data = docker_root / "data" / "demo_blobs"
    subprocess.run([sys.executable, str(demo / "make_data.py"), str(data)], check=True, capture_output=True)
    await ok(
        dsession,
        "register_source",
        name="demo_blobs",
        uri="data/demo_blobs",
        description="the demo dataset",
        reason=LONG_REASON,
    )
    slot = await workspace_in_slot(dsession, "blobs")
    for name in ("pipeline.yaml", "modules", "configs"):
        source = demo / name
        if source.is_dir():
            shutil.copytree(source, slot / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (slot / name).write_bytes(source.read_bytes())
    spec = load_yaml((demo / "results_spec.yaml").read_text(encoding="utf-8"), "results_spec.yaml").data

    final = await run_and_wait(dsession, results_spec=spec)

    assert final["state"] == "completed", [(s["stage"], s["status"], s["error"]) for s in final["stages"]]
    stages = by_stage(final["stages"])
    assert [s["backend"] for s in stages.values()] == ["docker"] * 3
    metrics = await ok(dsession, "get_metrics", run_id=stages["train"]["stage_run_id"], summary_only=True)
    names = {m["name"] for m in metrics["metrics"]}
    assert "val_acc" in names, names


# -- the sandbox -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stage_when_it_writes_to_an_input_is_refused_and_runs_as_non_root_on_container_paths(
    dsession: Client,
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, TAMPER_PIPELINE)
    (slot / "modules" / "tamper.py").write_text(TAMPER, encoding="utf-8")

    final = await run_and_wait(dsession)

    stages = by_stage(final["stages"])
    assert stages["prep"]["status"] == "completed"
    tamper = stages["tamper"]
    assert (tamper["status"], tamper["failure_kind"], tamper["exit_code"]) == ("failed", "stage_error", 3)
    assert "write refused: Read-only file system" in await stderr_of(dsession, tamper["stage_run_id"])
    out = await stdout_of(dsession, tamper["stage_run_id"])
    assert "inputs=/mnt/inputs cwd=/mnt/work" in out
    uid = int(out.split("uid=")[1].split()[0])
    assert uid != 0
    # The producer's stored output is intact: same content hash as recorded.
    prep = await ok(dsession, "inspect_run", run_id=stages["prep"]["stage_run_id"], include=["manifest"])
    (output,) = prep["inspect"]["manifest"]["outputs"]
    tampered = await ok(dsession, "inspect_run", run_id=tamper["stage_run_id"], include=["manifest"])
    (seen,) = tampered["inspect"]["manifest"]["inputs"]
    assert seen["content_hash"] == output["content_hash"]
    stored = Path(output["uri"].removeprefix("file://")) / "data.npy"
    assert stored.read_bytes() != b"overwritten"


@pytest.mark.anyio
async def test_stage_when_it_forks_past_the_pids_limit_cannot_start_more_processes(
    tmp_path: Path, engine: Any
) -> None:
    root = docker_project(tmp_path, "pidsproj", "docker:\n  pids_limit: 32\n")
    with reaped_at_exit(root), containers_removed_at_exit(engine, root):
        async with Client(server_for(root), mode="legacy") as client:
            slot = await workspace_in_slot(client, "alpha")
            write_pipeline(slot, ONE_STAGE)
            (slot / "modules" / "prep.py").write_text(FORK_BOMB, encoding="utf-8")

            final = await run_and_wait(client)

            (prep,) = final["stages"]
            assert (prep["status"], prep["exit_code"]) == ("failed", 5), prep
            message = await stderr_of(client, prep["stage_run_id"])
            count = int(message.split("pids limit hit after ")[1].split()[0])
            assert 0 < count < 32
            assert stage_containers(engine, root, prep["stage_run_id"]) == []


@pytest.mark.anyio
async def test_stage_when_it_exceeds_its_timeout_is_timed_out_and_its_container_removed(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 60, "compute": {"timeout_seconds": 2}}})

    final = await run_and_wait(dsession)

    (prep,) = final["stages"]
    assert prep["status"] == "timed_out"
    assert "timeout of 2s" in prep["error"]
    assert stage_containers(engine, docker_root, prep["stage_run_id"]) == []


@pytest.mark.anyio
async def test_cancel_when_a_container_runs_stops_the_stage_and_removes_the_container(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 60, "obey_stop": True}})
    submission = await start_run(dsession)
    prep_id = submission["stages"][0]["stage_run_id"]
    await wait_for_stage(
        dsession, prep_id, lambda run: run["status"] == "running", timeout=DOCKER_RUN_TIMEOUT
    )
    await eventually(lambda: _has_line(dsession, prep_id, "prep tick 1"), timeout=DOCKER_RUN_TIMEOUT)
    assert len(stage_containers(engine, docker_root, prep_id)) == 1

    canceled = await ok(dsession, "cancel", run_id=prep_id, reason=LONG_REASON)

    assert canceled["cancel"]["run"]["status"] == "canceled"
    assert stage_containers(engine, docker_root, prep_id) == []
    final = await wait_for_pipeline(dsession, submission["pipeline_run_id"])
    assert final["state"] == "canceled"
    # The stop file reached the stage through its read-only control mount (or TERM did).
    assert "prep was asked to stop" in await stdout_of(dsession, prep_id)


async def _has_line(client: Client, run_id: str, line: str) -> bool:
    return line in await stdout_of(client, run_id)


# -- reconciliation ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_driver_when_it_died_before_recording_the_container_is_replaced_and_the_container_adopted(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 3}})
    submission = await start_run(dsession)
    run_id, prep_id = submission["pipeline_run_id"], submission["stages"][0]["stage_run_id"]
    await wait_for_stage(
        dsession, prep_id, lambda run: run["status"] == "running", timeout=DOCKER_RUN_TIMEOUT
    )
    (container,) = stage_containers(engine, docker_root, prep_id)
    # Kill the driver, then make the database look as if it died between starting the container
    # and recording its handle (the crash point of quality.md), with its lease expired.
    with contextlib.closing(database(docker_root)) as conn:
        driver = int(
            conn.execute("SELECT driver_pid FROM pipeline_runs WHERE id = ?", (run_id,)).fetchone()[0]
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver, signal.SIGKILL)
        wait_until(lambda: not _alive(driver), 10, "the driver to die")
        conn.execute(
            "UPDATE stage_runs SET state = 'launching', backend_handle = NULL WHERE id = ?", (prep_id,)
        )
        conn.execute("UPDATE stage_attempts SET backend_handle = NULL WHERE stage_run_id = ?", (prep_id,))
        conn.execute("UPDATE pipeline_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))

    context = ServerContext.open(docker_root)  # a restarted server
    try:
        context.startup()
    finally:
        context.close()
    final = await wait_for_pipeline(dsession, run_id, timeout=DOCKER_RUN_TIMEOUT)

    assert final["state"] == "completed", final
    detail = await ok(dsession, "inspect_run", run_id=prep_id, include=["attempts"])
    assert detail["inspect"]["backend_handle"]["container_id"] == container.id
    events = [t["event"] for t in detail["inspect"]["transitions"]]
    assert "adopted" in events
    assert "prep done" in await stdout_of(dsession, prep_id)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


# -- images -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_requirements_when_changed_rebuild_only_their_layer_and_unchanged_reuse_the_image(
    dsession: Client, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE)
    token = secrets.token_hex(4)  # fresh requirements: these images never exist before the test
    built: list[str] = []
    try:
        (slot / "requirements.txt").write_text(f"# {token} first\nnumpy\n", encoding="utf-8")
        first = await run_and_wait(dsession)
        (slot / "requirements.txt").write_text(f"# {token} second\nnumpy>=1.0\n", encoding="utf-8")
        write_configs(slot, {"prep": {"value": 2}})
        second = await run_and_wait(dsession)
        write_configs(slot, {"prep": {"value": 3}})  # same requirements, new code: image reused
        third = await run_and_wait(dsession)

        assert [r["state"] for r in (first, second, third)] == ["completed"] * 3
        status = await ok(dsession, "get_build_status", workspace="alpha")
        builds = [b for b in status["builds"] if b["kind"] == "stage" and b["requirements_hash"] != "none"]
        assert len(builds) == 2, builds  # the third run reused the second image
        newer, older = builds
        built = [older["image"], newer["image"]]
        assert older["state"] == newer["state"] == "succeeded"
        assert older["image"] != newer["image"]
        # The runtime layer (the step before the requirements) came from the cache the second time.
        assert _step_used_cache(newer["log_tail"], "COPY runtime/")
        assert not _step_used_cache(newer["log_tail"], "COPY requirements.txt")
        old_layers = engine.images.get(older["image"]).attrs["RootFS"]["Layers"]
        new_layers = engine.images.get(newer["image"]).attrs["RootFS"]["Layers"]
        base_layers = engine.images.get("goldfish-base:latest").attrs["RootFS"]["Layers"]
        shared = _common_prefix(old_layers, new_layers)
        assert shared == len(base_layers) + 1  # base + runtime shared; requirements layers differ
        one = await ok(dsession, "get_build_status", build_id=newer["build_id"])
        assert one["builds"][0]["build_id"] == newer["build_id"]
    finally:
        for image in built:
            with contextlib.suppress(Exception):
                engine.images.remove(image, force=True)


def _step_used_cache(log: str, instruction: str) -> bool:
    """Whether the build step starting with ``instruction`` was taken from the layer cache."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if instruction in line and line.startswith("Step "):
            following = lines[index + 1 : index + 3]
            return any("Using cache" in item for item in following)
    raise AssertionError(f"no step {instruction!r} in the build log:\n{log}")


def _common_prefix(left: list[str], right: list[str]) -> int:
    count = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        count += 1
    return count


@pytest.mark.anyio
async def test_base_image_tools_when_the_engine_has_the_base_list_and_check_it(dsession: Client) -> None:
    listed = await ok(dsession, "manage_base_images", action="list")
    assert listed["engine"]["reachable"] is True
    configured = next(i for i in listed["images"] if i["role"] == "configured")
    assert (configured["name"], configured["present"]) == ("goldfish-base:latest", True)

    checked = await ok(dsession, "manage_base_images", action="check")

    (image,) = checked["images"]
    assert image["python"].startswith("3.")
    assert image["pip"].startswith("pip ")
    assert image["runs_as_uid"] == 1000


@pytest.mark.anyio
async def test_base_image_build_when_asked_records_the_build_with_its_log(dsession: Client) -> None:
    built = await ok(
        dsession, "manage_base_images", action="build", name="goldfish-base:latest", reason=LONG_REASON
    )

    build = built["build"]
    assert (build["kind"], build["state"], build["image"]) == ("base", "succeeded", "goldfish-base:latest")
    assert "Successfully tagged goldfish-base:latest" in build["log_tail"]
    assert built["images"][0]["present"] is True
    status = await ok(dsession, "get_build_status", build_id=build["build_id"])
    assert status["builds"][0]["state"] == "succeeded"


# -- the builder, rendered for the docker CLI (what the GCE VM agent runs) ----------------------------

CLI_PROBE = """\
import os
from pathlib import Path

inputs, outputs = Path(os.environ["GOLDFISH_INPUTS_DIR"]), Path(os.environ["GOLDFISH_OUTPUTS_DIR"])
print(f"uid={os.getuid()} cwd={os.getcwd()} read={(inputs / 'features' / 'x.txt').read_text()}")
try:
    (inputs / "features" / "x.txt").write_text("changed")
except OSError as exc:
    print(f"input write refused: {exc.strerror}")
(outputs / "report").mkdir()
(outputs / "report" / "r.txt").write_text("written in the container")
"""


def test_docker_run_argv_when_run_by_the_docker_cli_runs_the_stage_in_the_same_sandbox(
    tmp_path: Path, engine: Any
) -> None:
    run_dir = tmp_path / "runs" / "stage-00000000c11a"
    for folder in ("code/modules", "inputs/features", "outputs", "logs", "control", "work"):
        (run_dir / folder).mkdir(parents=True)
    (run_dir / "code" / "modules" / "probe.py").write_text(CLI_PROBE, encoding="utf-8")
    (run_dir / "inputs" / "features" / "x.txt").write_text("original", encoding="utf-8")
    for name in ("config.json", "signals.json"):
        (run_dir / name).write_text("{}", encoding="utf-8")
    for folder in ("outputs", "logs", "work"):
        (run_dir / folder).chmod(0o777)  # the container user owns nothing here
    spec = RunSpec(
        stage_run_id="stage-00000000c11a",
        workspace="alpha",
        stage="probe",
        module="probe",
        code_dir=run_dir / "code",
        run_dir=run_dir,
        inputs={"features": run_dir / "inputs" / "features"},
        outputs_dir=run_dir / "outputs",
        logs_dir=run_dir / "logs",
        config_file=run_dir / "config.json",
        signals_file=run_dir / "signals.json",
        timeout_seconds=60,
        python="python3",
    )
    invocation = container_invocation(
        spec,
        image="goldfish-base:latest",  # no goldfish runtime needed by this probe
        user="1000:1000",
        limits=Limits(memory="256m", cpus=1.0, pids=64, network=False),
        project=project_label(tmp_path),
    )
    argv = docker_run_argv(invocation, detach=False)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    finally:
        with contextlib.suppress(Exception):
            engine.containers.get(invocation.name).remove(force=True)

    assert done.returncode == 0, done.stderr
    out = (run_dir / "logs" / "stdout.log").read_text(encoding="utf-8")
    assert "uid=1000 cwd=/mnt/work read=original" in out
    assert "input write refused: Read-only file system" in out
    assert (run_dir / "logs" / "exit_code.txt").read_text() == "0"
    assert (run_dir / "outputs" / "report" / "r.txt").read_text() == "written in the container"
    assert (run_dir / "inputs" / "features" / "x.txt").read_text() == "original"


@pytest.mark.anyio
async def test_auto_backend_when_the_engine_has_the_base_image_plans_stages_on_docker(
    tmp_path: Path, engine: Any
) -> None:
    root = docker_project(tmp_path, "autoproj", backend="auto")
    async with Client(server_for(root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "alpha")
        write_pipeline(slot, configs={"train": {"compute": {"backend": "process"}}})

        planned = await ok(client, "run", workspace="w1", reason=LONG_REASON, dry_run=True)

    backends = {stage["stage"]: stage["backend"] for stage in planned["run"]["stages"]}
    assert backends == {"prep": "docker", "train": "process", "evaluate": "docker"}
