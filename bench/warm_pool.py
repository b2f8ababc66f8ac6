"""warm_pool: in the GCE simulator, launch-to-container-start of a warm VM vs a cold launch.

The simulator is the test-suite's (``tests/fakes``): the fake Compute API boots each instance
as a local sandbox running the real startup script and agent, the GCS emulator holds the
bucket, and the stage image travels through a local registry. A one-stage pipeline
(``compute: {profile: sim-cpu}``) runs once cold (the VM joins the pool) and then again on the
same, now idle, VM. For each run the figure is the time from the stage's ``launch`` transition
to the stage's first Python statement in its container (it prints the wall clock). The
container start itself is a plain ``docker run`` of the same image, timed the same way from the
call; the warm overhead is the difference.

Status polls: ``GceBackend.status`` of a finished run's handle (throttle off), with 1 and then
1,000 rows in ``warm_instances``; the ratio should stay near 1 (every lookup is one row).

Needs Docker with ``goldfish-base:latest``, Debian's ``docker-registry`` and the ``gce`` extra;
without them it reports ``skipped`` with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.harness import Figure, median, ratio, temp_dir

NAME = "warm_pool"
ZONES = ["us-central1-a", "us-central1-b"]
PIPELINE = "name: cloud\nstages:\n  - name: train\n    outputs:\n      model: {type: directory}\n"
MODULE = (
    "import time\nprint(f'started-at {time.time()!r}', flush=True)\n"
    "from pathlib import Path\nimport tempfile\nfrom goldfish.io import save_output\n"
    "folder = Path(tempfile.mkdtemp())\n(folder / 'w.txt').write_text('ok')\nsave_output('model', folder)\n"
)
STARTED = "started-at "
POLLS = 20


def _problem() -> str | None:
    if shutil.which("docker-registry") is None or shutil.which("docker") is None:
        return "docker-registry or docker is not installed (scripts/ensure-docker.sh installs both)"
    import importlib.util

    if importlib.util.find_spec("google.cloud.compute_v1") is None:
        return "the gce extra (google-cloud-compute) is not installed"
    images = subprocess.run(
        ["docker", "images", "-q", "goldfish-base:latest"], capture_output=True, text=True, check=False
    )
    if images.returncode != 0 or not images.stdout.strip():
        return "the Docker engine or goldfish-base:latest is missing"
    return None


def _first_line_at(text: str) -> float:
    """The wall-clock time the stage printed first (its first Python statement in the container)."""
    line = next(line for line in text.splitlines() if line.startswith(STARTED))
    return float(line[len(STARTED) :])


def _configure(root: Path, compute: Any, bucket: str, registry: str) -> None:
    from goldfish.yamlfile import load_yaml

    path = root / "goldfish.yaml"
    config = load_yaml(path.read_text(encoding="utf-8"), "goldfish.yaml").data
    config["storage"] = {"backend": "gcs", "gcs": {"bucket": bucket, "prefix": "bench"}}
    config["gce"] = {
        "project_id": compute.project,
        "zones": ZONES,
        "api_endpoint": compute.endpoint,
        "image_registry": f"{registry}/goldfish",
        "registry_login": "token",  # the simulator's registry, like Artifact Registry, wants a login
        "poll_interval_seconds": 0.05,
        "profile_overrides": {"sim-cpu": {"machine_type": "e2-small", "image_family": "debian-12"}},
        "warm_pool": {"enabled": True, "max_instances": 1, "idle_timeout_minutes": 10},
    }
    config["defaults"] = {"backend": "process", "log_sync_interval": 1}
    config["memory"] = {"finalization_gate": False}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _launch_to_start(context: Any, workspace: str) -> tuple[float, str, dict[str, Any]]:
    from bench.pipelines import require_completed, run_request, wait_finished

    done = wait_finished(
        context, context.run_service.submit(run_request(context, workspace, use_cache=False))
    )
    require_completed(done)
    stage_id = done.stages[0].stage_run_id
    launched = next(t for t in context.runs.transitions(stage_id) if t["event"] == "launch")
    from goldfish.timeutil import parse_iso

    started = next(t for t in context.runs.transitions(stage_id) if t["event"] == "started")
    stdout = context.storage.read_text(f"runs/{stage_id}/logs/stdout.log")
    start = _first_line_at(stdout) - parse_iso(launched["at"]).timestamp()
    run = context.runs.stage_run(stage_id)
    handle = dict(run.backend_handle or {})
    handle["server_launch_ms"] = (parse_iso(started["at"]) - parse_iso(launched["at"])).total_seconds() * 1000
    return start * 1000, stage_id, handle


def _docker_run_ms(image: str) -> float:
    """``docker run`` of the stage image up to its first Python statement (the container start itself)."""
    begin = time.time()
    probe = "import time; print(f'started-at {time.time()!r}', flush=True)"
    out = subprocess.run(
        ["docker", "run", "--rm", image, "python3", "-c", probe], capture_output=True, text=True, check=True
    )
    return (_first_line_at(out.stdout) - begin) * 1000


def _poll_ms(context: Any, handle: dict[str, Any]) -> float:
    backend = context.backends.get("gce")
    samples = []
    for _ in range(POLLS):
        backend._checked.clear()  # time the lookups, not the throttle
        start = time.perf_counter()
        backend.status(handle)
        samples.append((time.perf_counter() - start) * 1000)
    return median(samples)


def _fill_pool(context: Any, rows: int) -> None:
    repo = context.warm_pool().repo
    for index in range(rows):
        repo.register(
            f"bench-{index:05d}", ZONES[0], "sim-cpu", spot=False, run_id="stage-0", image=None, cap=10**6
        )


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the ``with`` block, then put back what was there."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _measure(workdir: Path, quick: bool) -> Iterator[Figure]:
    from tests.fakes.fake_compute import FakeCompute
    from tests.fakes.gcs_emulator import create_bucket, start_emulator
    from tests.fakes.registry import LocalRegistry

    from bench.pipelines import new_workspace
    from goldfish.context import ServerContext
    from goldfish.project import initialize_project

    with ExitStack() as stack, start_emulator(workdir / "gcs") as emulator, LocalRegistry() as registry:
        stack.enter_context(_env("STORAGE_EMULATOR_HOST", emulator.host))
        # The server side is logged in to the registry (as after `gcloud auth configure-docker`).
        stack.enter_context(
            _env("DOCKER_CONFIG", str(registry.write_docker_config(workdir / "docker-config")))
        )
        bucket = create_bucket(emulator, "bench-warm-pool")
        with FakeCompute(project="fake-project", storage_emulator_host=emulator.host,
                         sandbox_root=workdir / "sandboxes") as compute:  # fmt: skip
            root = workdir / "project"
            initialize_project(str(root), "warmbench")
            _configure(root, compute, bucket, registry.address)
            context = ServerContext.open(root)
            context.startup()
            try:
                slot = new_workspace(context, "cloud", "w1")
                (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
                (slot / "modules").mkdir(exist_ok=True)
                (slot / "modules" / "train.py").write_text(MODULE, encoding="utf-8")
                (slot / "configs").mkdir(exist_ok=True)
                (slot / "configs" / "train.yaml").write_text(
                    "compute: {profile: sim-cpu}\n", encoding="utf-8"
                )
                cold_ms, _, _ = _launch_to_start(context, "cloud")
                warm = [_launch_to_start(context, "cloud") for _ in range(1 if quick else 3)]
                warm_ms = median([item[0] for item in warm])
                handle = warm[-1][2]
                image = json.loads(context.storage.read_bytes(f"runs/{warm[-1][1]}/job.json") or b"{}")[
                    "image"
                ]
                plain_ms = median([_docker_run_ms(image) for _ in range(1 if quick else 3)])
                yield Figure(NAME, "cold_launch_to_container_start_ms", cold_ms, "ms", 1)
                yield Figure(NAME, "warm_launch_to_container_start_ms", warm_ms, "ms", len(warm))
                yield Figure(NAME, "plain_docker_run_start_ms", plain_ms, "ms", 1 if quick else 3)
                yield Figure(
                    NAME, "warm_overhead_over_container_start_ms", warm_ms - plain_ms, "ms", len(warm)
                )
                yield Figure(NAME, "inserts", len(compute.inserts), "count", 1)
                server = median([item[2]["server_launch_ms"] for item in warm])
                handover = median([float(item[2].get("handover_seconds", 0)) * 1000 for item in warm])
                yield Figure(NAME, "warm_server_launch_ms", server, "ms", len(warm))
                yield Figure(NAME, "warm_claim_to_ack_ms", handover, "ms", len(warm))
                one = _poll_ms(context, handle)
                _fill_pool(context, 999)
                many = _poll_ms(context, handle)
                yield Figure(NAME, "status_poll_ms_1_instance", one, "ms", POLLS)
                yield Figure(NAME, "status_poll_ms_1000_instances", many, "ms", POLLS)
                yield Figure(NAME, "status_poll_ratio_1000_vs_1", ratio(many, one), "ratio", POLLS)
            finally:
                context.close()


def run(quick: bool) -> Iterator[Figure]:
    """Warm vs cold launch-to-container-start, and status poll cost vs pool size."""
    problem = _problem()
    if problem is not None:
        yield Figure(NAME, "skipped", problem, "reason", 0)
        return
    with temp_dir(NAME) as workdir:
        yield from _measure(workdir, quick)
