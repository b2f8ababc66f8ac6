"""The GCE simulator itself, driven by the real ``google-cloud-compute`` client and real scripts.

These prove the fakes behave like the public Compute v1 REST API and the metadata server, so the
GCE backend's tests can rest on them: instances come and go, label filters select, fingerprints
are enforced, capacity faults surface as GCE reports them, startup scripts run with a metadata
server, preemption is announced then enforced, and images travel through a loopback registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1  # noqa: TID251 - the fakes are proven with the real client

from tests.fakes.compute_runner import remove_containers
from tests.fakes.compute_store import FakeInstance
from tests.fakes.fake_compute import FakeCompute
from tests.fakes.fake_metadata import FakeMetadataServer
from tests.fakes.gce_simulator import registry_problem
from tests.fakes.registry import LocalRegistry

PROJECT = "fake-project"
ZONE = "us-central1-a"
OTHER_ZONE = "us-central1-b"

# The VM side reads the metadata server the way the agent does: stdlib only, GCE_METADATA_HOST.
_METADATA_GET = """
import os, time, urllib.request
def get(path):
    url = "http://%s/computeMetadata/v1/%s" % (os.environ["GCE_METADATA_HOST"], path)
    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.read().decode(), response.headers["ETag"]
"""

_READ_ATTRIBUTE = """
open("job.txt", "w").write(get("instance/attributes/goldfish-job")[0])
"""

_WAIT_FOR_JOB_CHANGE = """
first, etag = get("instance/attributes/goldfish-job")
open("ready", "w").write(first)
value, _ = get("instance/attributes/goldfish-job?wait_for_change=true&timeout_sec=15&last_etag=" + etag)
open("job.txt", "w").write(value)
"""

_WATCH_PREEMPTED = """
_, etag = get("instance/preempted")
open("watching", "w").write("")
value, _ = get("instance/preempted?wait_for_change=true&timeout_sec=15&last_etag=" + etag)
with open("preempted.txt", "w") as out:
    out.write(value)
time.sleep(60)
"""


def _python_script(code: str) -> str:
    return f"python3 - <<'PYEOF'\n{_METADATA_GET}{code}\nPYEOF\npoweroff\n"


@pytest.fixture
def client(fake_compute: FakeCompute) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": fake_compute.endpoint},
        transport="rest",
    )


def _instance(
    name: str,
    *,
    zone: str = ZONE,
    labels: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    spot: bool = False,
) -> compute_v1.Instance:
    items = [compute_v1.Items(key=k, value=v) for k, v in (metadata or {}).items()]
    scheduling = compute_v1.Scheduling(
        provisioning_model="SPOT" if spot else "STANDARD",
        instance_termination_action="STOP" if spot else None,
    )
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/n2-standard-4",
        labels=labels or {"goldfish-project": "demo"},
        metadata=compute_v1.Metadata(items=items),
        scheduling=scheduling,
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12", disk_size_gb=20
                ),
            )
        ],
    )


def _done(operation: Any) -> None:
    """Wait for an operation (the fake's are DONE on arrival); raises its error as the client does."""
    operation.result(timeout=10)


def _insert(client: compute_v1.InstancesClient, instance: compute_v1.Instance, zone: str = ZONE) -> None:
    _done(client.insert(project=PROJECT, zone=zone, instance_resource=instance))


def _status(fake: FakeCompute, name: str) -> str | None:
    found = fake.instances.get(name)
    return None if found is None else found.status


def _sandbox_dir(instance: FakeInstance) -> Path:
    assert instance.sandbox is not None, "the instance has no startup script"
    return instance.sandbox.directory


def test_insert_then_get_reports_a_running_instance_in_gce_shape(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    _insert(client, _instance("vm-one", labels={"goldfish-run": "stage-0123456789ab"}, spot=True))

    got = client.get(project=PROJECT, zone=ZONE, instance="vm-one")

    assert got.status == "RUNNING"
    assert got.zone.endswith(f"/projects/{PROJECT}/zones/{ZONE}")
    assert got.machine_type.endswith(f"/zones/{ZONE}/machineTypes/n2-standard-4")
    assert got.scheduling.provisioning_model == "SPOT"
    assert got.labels["goldfish-run"] == "stage-0123456789ab"
    assert got.label_fingerprint and got.metadata.fingerprint
    assert fake_compute.inserts[0]["provisioning_model"] == "SPOT"


def test_list_selects_instances_by_label_filters_joined_with_and(
    client: compute_v1.InstancesClient,
) -> None:
    _insert(client, _instance("vm-a", labels={"goldfish-project": "demo", "goldfish-pool": "warm"}))
    _insert(client, _instance("vm-b", labels={"goldfish-project": "demo", "goldfish-pool": "cold"}))
    _insert(client, _instance("vm-c", labels={"goldfish-project": "other", "goldfish-pool": "warm"}))

    def names(expr: str) -> list[str]:
        request = compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, filter=expr)
        return sorted(i.name for i in client.list(request=request))

    assert names('labels.goldfish-project = "demo"') == ["vm-a", "vm-b"]
    assert names("labels.goldfish-project=demo AND labels.goldfish-pool=warm") == ["vm-a"]
    assert names('(labels.goldfish-pool = "warm") AND (labels.goldfish-project = "other")') == ["vm-c"]
    assert names('labels.goldfish-project = "nobody"') == []


def test_set_metadata_with_a_stale_fingerprint_is_refused_and_a_current_one_applies(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    _insert(client, _instance("vm-md", metadata={"goldfish-job": "old"}))
    current = client.get(project=PROJECT, zone=ZONE, instance="vm-md").metadata.fingerprint
    stale = compute_v1.Metadata(
        fingerprint="c3RhbGU=", items=[compute_v1.Items(key="goldfish-job", value="x")]
    )

    with pytest.raises(exceptions.PreconditionFailed):
        client.set_metadata(project=PROJECT, zone=ZONE, instance="vm-md", metadata_resource=stale)

    fresh = compute_v1.Metadata(
        fingerprint=current, items=[compute_v1.Items(key="goldfish-job", value="new")]
    )
    _done(client.set_metadata(project=PROJECT, zone=ZONE, instance="vm-md", metadata_resource=fresh))
    after = client.get(project=PROJECT, zone=ZONE, instance="vm-md").metadata
    assert [(i.key, i.value) for i in after.items] == [("goldfish-job", "new")]
    assert after.fingerprint != current
    assert [call["ok"] for call in fake_compute.set_metadata_calls] == [False, True]


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ({"goldfish-agent": "a" * (256 * 1024 + 1)}, "exceeds 256 KB"),
        ({"one": "a" * (200 * 1024), "two": "b" * (200 * 1024), "three": "c" * (112 * 1024)}, "512 KB"),
    ],
    ids=["one-value-over-256KiB", "all-values-512KB"],
)
def test_insert_when_metadata_is_over_gce_limits_is_refused_and_leaves_no_instance(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute, metadata: dict[str, str], said: str
) -> None:
    with pytest.raises(exceptions.BadRequest) as refused:
        _insert(client, _instance("vm-big", metadata=metadata))

    assert said in str(refused.value)
    assert "vm-big" not in fake_compute.instances


def test_capacity_fault_is_a_done_operation_with_the_gce_code_and_leaves_no_instance(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    fake_compute.fail_zone(ZONE, "ZONE_RESOURCE_POOL_EXHAUSTED", provisioning="SPOT", times=1)

    op = client.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-spot", spot=True))

    assert op.error_code == 503
    assert op.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert "does not have enough resources" in op.error.errors[0].message
    with pytest.raises(exceptions.ServiceUnavailable) as raised:
        _done(op)
    assert raised.value.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert "vm-spot" not in fake_compute.instances
    _insert(client, _instance("vm-spot", spot=True))  # the fault was for one insert only
    assert fake_compute.instances["vm-spot"].status == "RUNNING"


def test_quota_fault_raises_forbidden_and_a_partial_fault_leaves_a_terminated_instance(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    fake_compute.fail_zone(ZONE, "QUOTA_EXCEEDED")
    fake_compute.fail_zone(OTHER_ZONE, "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", partial=True)

    with pytest.raises(exceptions.Forbidden) as raised:
        _insert(client, _instance("vm-q"))
    assert raised.value.errors[0].code == "QUOTA_EXCEEDED"
    assert raised.value.errors[0].error_details[0].quota_info.limit_name
    with pytest.raises(exceptions.ServiceUnavailable):
        _insert(client, _instance("vm-p", zone=OTHER_ZONE), zone=OTHER_ZONE)
    assert client.get(project=PROJECT, zone=OTHER_ZONE, instance="vm-p").status == "TERMINATED"
    assert [(i["zone"], i["error"]) for i in fake_compute.inserts] == [
        (ZONE, "QUOTA_EXCEEDED"),
        (OTHER_ZONE, "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"),
    ]


def test_http_faults_and_bad_bodies_raise_at_insert(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    fake_compute.fail_insert_http(ZONE, 403, "insufficientPermissions", times=1)

    with pytest.raises(exceptions.Forbidden) as raised:
        client.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-x"))
    assert raised.value.errors[0]["reason"] == "insufficientPermissions"
    with pytest.raises(exceptions.BadRequest):
        client.insert(project=PROJECT, zone=ZONE, instance_resource=compute_v1.Instance(name="vm-x"))
    with pytest.raises(exceptions.BadRequest):  # a machine type of another zone
        client.insert(project=PROJECT, zone=OTHER_ZONE, instance_resource=_instance("vm-x"))
    _insert(client, _instance("vm-x"))
    with pytest.raises(exceptions.Conflict):
        client.insert(project=PROJECT, zone=ZONE, instance_resource=_instance("vm-x"))


def test_delete_kills_the_instance_and_get_then_raises_not_found(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    _insert(client, _instance("vm-del", metadata={"startup-script": "sleep 60"}))
    sandbox = fake_compute.instances["vm-del"].sandbox
    assert sandbox is not None and sandbox.running()

    _done(client.delete(project=PROJECT, zone=ZONE, instance="vm-del"))

    with pytest.raises(exceptions.NotFound):
        client.get(project=PROJECT, zone=ZONE, instance="vm-del")
    assert not sandbox.running()
    assert fake_compute.deletes == ["vm-del"]


def test_startup_script_reads_its_metadata_and_powering_off_terminates_the_instance(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    script = _python_script(_READ_ATTRIBUTE)
    _insert(
        client, _instance("vm-boot", metadata={"startup-script": script, "goldfish-job": '{"attempt": 1}'})
    )

    fake_compute.wait_for(
        lambda: _status(fake_compute, "vm-boot") == "TERMINATED", what="the VM to power off"
    )

    instance = fake_compute.instances["vm-boot"]
    assert (_sandbox_dir(instance) / "job.txt").read_text() == '{"attempt": 1}', instance.console()
    assert instance.sandbox is not None and instance.sandbox.poweroff_calls() == ["poweroff "]
    assert client.get(project=PROJECT, zone=ZONE, instance="vm-boot").status == "TERMINATED"


def test_wait_for_change_returns_when_set_metadata_changes_the_attribute(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    script = _python_script(_WAIT_FOR_JOB_CHANGE)
    _insert(client, _instance("vm-warm", metadata={"startup-script": script, "goldfish-job": "job-1"}))
    instance = fake_compute.instances["vm-warm"]
    fake_compute.wait_for((_sandbox_dir(instance) / "ready").exists, what="the script's first read")

    fingerprint = client.get(project=PROJECT, zone=ZONE, instance="vm-warm").metadata.fingerprint
    items = [
        compute_v1.Items(key="startup-script", value=script),
        compute_v1.Items(key="goldfish-job", value="job-2"),
    ]
    metadata = compute_v1.Metadata(fingerprint=fingerprint, items=items)
    _done(client.set_metadata(project=PROJECT, zone=ZONE, instance="vm-warm", metadata_resource=metadata))

    fake_compute.wait_for(
        lambda: _status(fake_compute, "vm-warm") == "TERMINATED", what="the VM to power off"
    )
    assert (_sandbox_dir(instance) / "job.txt").read_text() == "job-2", instance.console()


def test_preemption_is_announced_on_the_metadata_server_then_terminates_the_instance(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute
) -> None:
    _insert(
        client, _instance("vm-pre", metadata={"startup-script": _python_script(_WATCH_PREEMPTED)}, spot=True)
    )
    instance = fake_compute.instances["vm-pre"]
    fake_compute.wait_for((_sandbox_dir(instance) / "watching").exists, what="the script to watch")

    fake_compute.preempt("vm-pre", grace_seconds=0.5)

    notice = _sandbox_dir(instance) / "preempted.txt"
    fake_compute.wait_for(lambda: notice.exists() and notice.read_text(), what="the notice")
    assert notice.read_text() == "TRUE"
    fake_compute.wait_for(lambda: _status(fake_compute, "vm-pre") == "TERMINATED", what="the preemption")
    assert instance.sandbox is not None and not instance.sandbox.running()
    assert fake_compute.preemptions == ["vm-pre"]


def _metadata_get(server: FakeMetadataServer, path: str, *, flavor: bool = True) -> tuple[int, str, str]:
    headers = {"Metadata-Flavor": "Google"} if flavor else {}
    request = urllib.request.Request(f"http://{server.host}/computeMetadata/v1/{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback http URL
            return response.status, response.read().decode(), response.headers["ETag"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers["ETag"]


@pytest.fixture
def metadata_server() -> Iterator[FakeMetadataServer]:
    server = FakeMetadataServer(instance_name="vm-md", zone=ZONE, attributes={"goldfish-job": "a"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_metadata_server_needs_the_flavor_header_and_serves_gce_paths(
    metadata_server: FakeMetadataServer,
) -> None:
    assert _metadata_get(metadata_server, "instance/attributes/goldfish-job", flavor=False)[0] == 403
    assert _metadata_get(metadata_server, "instance/attributes/goldfish-job")[:2] == (200, "a")
    assert _metadata_get(metadata_server, "instance/attributes/missing")[0] == 404
    assert _metadata_get(metadata_server, "instance/zone")[1] == f"projects/123456/zones/{ZONE}"
    assert _metadata_get(metadata_server, "instance/name")[1] == "vm-md"
    assert _metadata_get(metadata_server, "project/project-id")[1] == PROJECT
    assert _metadata_get(metadata_server, "instance/preempted")[1] == "FALSE"
    token = json.loads(_metadata_get(metadata_server, "instance/service-accounts/default/token")[1])
    assert token["expires_in"] == 3600
    assert set(token) == {"access_token", "expires_in", "token_type"}


def test_metadata_wait_times_out_with_the_current_value_and_stop_ends_waiters(
    metadata_server: FakeMetadataServer,
) -> None:
    _status_code, _value, etag = _metadata_get(metadata_server, "instance/attributes/goldfish-job")
    waited = _metadata_get(
        metadata_server,
        f"instance/attributes/goldfish-job?wait_for_change=true&last_etag={etag}&timeout_sec=0.2",
    )
    assert waited == (200, "a", etag)
    results: list[tuple[int, str, str]] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            _metadata_get(metadata_server, "instance/attributes/absent?wait_for_change=true")
        )
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while metadata_server.waiters == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metadata_server.waiters == 1

    metadata_server.stop()
    waiter.join(timeout=10)

    assert not waiter.is_alive()
    assert results[0][0] == 404


@pytest.fixture
def tiny_image(docker_registry: LocalRegistry, tmp_path: Path) -> Iterator[str]:
    """A one-file local image (docker import of a tiny tar), removed afterwards."""
    payload = tmp_path / "hello.txt"
    payload.write_text("hello from the registry test\n")
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(payload, arcname="hello.txt")
    tag = f"goldfish-registry-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "import", str(archive), tag], check=True, capture_output=True, timeout=60)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60, check=False)


def test_an_image_pushed_to_the_loopback_registry_can_be_pulled_back(
    docker_registry: LocalRegistry, tiny_image: str
) -> None:
    remote = f"{docker_registry.address}/goldfish/{tiny_image}"
    docker = shutil.which("docker") or "docker"
    try:
        subprocess.run([docker, "tag", tiny_image, remote], check=True, capture_output=True, timeout=30)
        pushed = subprocess.run(
            [docker, "push", remote], check=False, capture_output=True, text=True, timeout=120
        )
        assert pushed.returncode == 0, pushed.stderr + docker_registry.log()[-2000:]
        subprocess.run([docker, "rmi", remote], check=True, capture_output=True, timeout=30)

        pulled = subprocess.run(
            [docker, "pull", remote], check=False, capture_output=True, text=True, timeout=120
        )

        assert pulled.returncode == 0, pulled.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", remote], capture_output=True, timeout=30, check=False)


def _labelled_containers(run_id: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=goldfish.stage_run_id={run_id}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return listed.stdout.split()


@pytest.fixture
def container_image() -> str:
    """A local image with ``sleep`` (the stage base image), or skip/fail like the docker tests."""
    problem = registry_problem()
    image = "goldfish-debian-python:bookworm"
    if problem is None:
        inspected = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
        )
        problem = None if inspected.returncode == 0 else f"the image {image} does not exist"
    if problem is not None:
        message = f"Docker is not usable here: {problem}; run `bash scripts/ensure-docker.sh` as root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return image


def test_deleting_an_instance_removes_the_containers_its_run_started(
    client: compute_v1.InstancesClient, fake_compute: FakeCompute, container_image: str
) -> None:
    run_id = f"stage-{uuid.uuid4().hex[:12]}"
    labels_flags = f"--label goldfish.stage_run_id={run_id} --label goldfish.attempt=1"
    docker_run = f"docker run -d {labels_flags} {container_image} sleep 60"
    script = f"{docker_run} > started\nsleep 60\n"
    labels = {"goldfish-project": "demo", "goldfish-run": run_id}
    job = json.dumps({"stage_run_id": run_id, "attempt": 1, "job_uri": "gs://b/job.json"})
    try:
        _insert(
            client,
            _instance("vm-docker", labels=labels, metadata={"startup-script": script, "goldfish-job": job}),
        )
        instance = fake_compute.instances["vm-docker"]
        started = _sandbox_dir(instance) / "started"
        fake_compute.wait_for(
            lambda: started.exists() and started.read_text().strip(), timeout=30, what="docker run"
        )
        assert _labelled_containers(run_id)

        _done(client.delete(project=PROJECT, zone=ZONE, instance="vm-docker"))

        assert _labelled_containers(run_id) == []
    finally:
        remove_containers({f"{run_id}:1"})
