"""The fake Compute server's guests: each instance's startup script in a sandbox, power-off and preemption.

Killing a sandbox also removes the docker containers and job folders of every job the VM was given.
"""

from __future__ import annotations

import shutil
import subprocess

from goldfish.backends.gce.vm.layout import job_dir
from tests.fakes.compute_rules import ATTEMPT_LABEL, CONTAINER_LABEL, DLVM_PROJECT, DRIVER_METADATA, utc_stamp
from tests.fakes.compute_store import FakeInstance, InstanceStore
from tests.fakes.fake_metadata import FakeMetadataServer
from tests.fakes.sandbox import Sandbox

# -- docker clean-up --------------------------------------------------------------------------


def _job_containers(docker: str, job: str, *, stopped_too: bool = False) -> list[str]:
    """Ids of the containers of a ``run_id:attempt`` job: running ones, or every one with ``stopped_too``."""
    run_id, _, attempt = job.partition(":")
    listed = subprocess.run(
        [
            docker,
            "ps",
            "-aq" if stopped_too else "-q",
            "--filter",
            f"label={CONTAINER_LABEL}={run_id}",
            "--filter",
            f"label={ATTEMPT_LABEL}={attempt}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return listed.stdout.split()


def stop_containers(jobs: set[str]) -> None:
    """Send SIGTERM to the running containers of the given jobs (what a guest shutdown does to docker)."""
    docker = shutil.which("docker")
    if docker is None:
        return
    for job in sorted(jobs):
        try:
            ids = _job_containers(docker, job)
            if ids:
                subprocess.run(
                    [docker, "kill", "--signal", "TERM", *ids], capture_output=True, timeout=30, check=False
                )
        except (OSError, subprocess.SubprocessError):
            continue


def remove_containers(jobs: set[str]) -> None:
    """``docker rm -f`` every container of the given ``run_id:attempt`` jobs (best effort)."""
    docker = shutil.which("docker")
    if docker is None:
        return
    for job in sorted(jobs):
        try:
            ids = _job_containers(docker, job, stopped_too=True)
            if ids:
                subprocess.run([docker, "rm", "-f", *ids], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            continue


def remove_job_dirs(jobs: set[str]) -> None:
    """Delete the job folders of the given ``run_id:attempt`` jobs (a deleted VM's disk goes with it).

    Sandboxes share this machine's file system, so the agent's job folders would pile up otherwise.
    """
    for job in jobs:
        run_id, _, attempt = job.partition(":")
        if attempt.isdigit():
            shutil.rmtree(job_dir(run_id, int(attempt)), ignore_errors=True)


class SandboxRunner(InstanceStore):
    """Boots an instance's startup script in a sandbox; powers it off, preempts it."""

    def _boot(self, instance: FakeInstance) -> None:
        accounts = instance.resource.get("serviceAccounts") or []
        server = FakeMetadataServer(
            instance_name=instance.name,
            zone=instance.zone,
            project_id=self.project,
            attributes=instance.metadata,
            service_account=str(accounts[0].get("email")) if accounts else None,
        )
        server.start()
        instance.metadata_server = server
        script = instance.metadata.get("startup-script")
        if script is None:
            return
        directory = self.sandbox_root / f"{instance.zone}-{instance.name}-{next(self._counter)}"
        accelerators = instance.resource.get("guestAccelerators") or []
        gpus = sum(int(acc.get("acceleratorCount", 1)) for acc in accelerators)
        driver = instance.boot_image_project == DLVM_PROJECT and (
            instance.metadata.get(DRIVER_METADATA[0]) == DRIVER_METADATA[1]
        )
        instance.sandbox = Sandbox(
            script,
            gpus=gpus if driver else 0,
            directory=directory,
            metadata_host=server.host,
            storage_emulator_host=self.storage_emulator_host,
            extra_env=self.extra_env,
            on_exit=self._sandbox_exited,
        )
        instance.sandbox.start()

    def _power_off(self, instance: FakeInstance) -> None:
        """Kill the sandbox's process group and the containers it started (never under the lock)."""
        if instance.sandbox is not None:
            instance.sandbox.kill()
        remove_containers(set(instance.run_labels_seen))
        remove_job_dirs(set(instance.run_labels_seen))

    def _sandbox_exited(self, sandbox: Sandbox) -> None:
        """The startup script ended by itself: the VM powered off -> TERMINATED."""
        if sandbox.killed:
            return
        with self._lock:
            instance = next((i for i in self._instances.values() if i.sandbox is sandbox), None)
            run_ids = set(instance.run_labels_seen) if instance is not None else set()
        if instance is None:
            return
        sandbox.kill_leftovers()
        remove_containers(run_ids)
        with self._lock:
            if instance.status == "RUNNING":
                instance.status = "TERMINATED"
                instance.resource["lastStopTimestamp"] = utc_stamp()

    def _finish_preemption(self, instance: FakeInstance, grace_seconds: float) -> None:
        if self._stopping.wait(grace_seconds):
            return
        self._power_off(instance)
        delete = (instance.resource.get("scheduling") or {}).get("instanceTerminationAction") == "DELETE"
        with self._lock:
            key = (instance.zone, instance.name)
            if self._instances.get(key) is not instance:
                return
            if delete:
                del self._instances[key]
            else:
                instance.status = "TERMINATED"
                instance.resource["lastStopTimestamp"] = utc_stamp()
        if delete and instance.metadata_server is not None:
            instance.metadata_server.stop()
