"""`goldfish doctor` on GCE/GCS projects: what is missing, said exactly; a clean bill on the simulator.

Doctor runs as a person runs it (the venv's ``goldfish`` executable, ``--json`` or text) with the
Docker engine pointed at a socket that does not exist, so only the cloud section decides the exit
code. The simulator tests reach the GCS emulator (``STORAGE_EMULATOR_HOST``, set by ``gcs_bucket``)
and the fake Compute API (``gce.api_endpoint``) only through the contract's overrides.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from goldfish.backends.gce import doctor as cloud_doctor
from goldfish.backends.gce import doctor_checks
from goldfish.config import load_config
from goldfish.project import initialize_project
from goldfish.yamlfile import load_yaml
from tests.fakes.fake_compute import FakeCompute
from tests.fakes.gcs_emulator import GcsBucket

GOLDFISH = Path(sys.executable).parent / "goldfish"
ZONES = ["us-central1-a", "us-central1-b"]
MISSING_KEYS = ["gce.project_id", "gce.zones", "gce.image_registry", "storage.gcs.bucket"]


def new_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    initialize_project(str(root), "proj")
    return root


def edit_config(root: Path, **sections: Any) -> None:
    """Replace top-level sections of the project's goldfish.yaml."""
    path = root / "goldfish.yaml"
    config = load_yaml(path.read_text(encoding="utf-8"), "goldfish.yaml").data
    config.update(sections)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def configure_simulator(root: Path, compute: FakeCompute, bucket: str, **gce: Any) -> None:
    """Every gce/gcs key set, pointing at the simulator (``gce`` entries override)."""
    settings: dict[str, Any] = {
        "project_id": compute.project,
        "zones": ZONES,
        "api_endpoint": compute.endpoint,
        "service_account": f"goldfish-vm@{compute.project}.iam.gserviceaccount.com",
        "image_registry": "127.0.0.1:5000/goldfish",
        "profile_overrides": {"sim-cpu": {"machine_type": "e2-small", "image_family": "debian-12"}},
        "warm_pool": {"enabled": True, "max_instances": 1, "profiles": ["sim-cpu"]},
    }
    settings.update(gce)
    edit_config(root, storage={"backend": "gcs", "gcs": {"bucket": bucket, "prefix": "proj"}}, gce=settings)


def doctor_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GOLDFISH_PROJECT", None)
    env["DOCKER_HOST"] = f"unix://{tmp_path}/absent.sock"
    # No real Google credentials can leak in: application defaults fail at once, without the network.
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "absent-key.json")
    env["NO_GCE_CHECK"] = "true"
    return env


def doctor(tmp_path: Path, root: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GOLDFISH), "doctor", "--project", str(root), *arguments],
        cwd=tmp_path,
        env=doctor_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cloud_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    cloud: dict[str, Any] = report["cloud"]
    return cloud


def checks_by_name(cloud: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in cloud["checks"]}


PROBE = textwrap.dedent(
    """
    import json, sys
    from goldfish.cli.doctor import diagnose

    report = diagnose(sys.argv[1])
    google = sorted(name for name in sys.modules if name == "google" or name.startswith("google."))
    print(json.dumps({"cloud": report["cloud"], "ok": report["ok"], "google": google}))
    """
)


def test_doctor_when_the_project_uses_no_cloud_reports_not_needed_and_imports_no_google_module(
    tmp_path: Path,
) -> None:
    root = new_project(tmp_path)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)],
        env=doctor_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.splitlines()[-1])
    assert found["cloud"] == {"needed": False, "ok": True, "checks": []}
    assert found["ok"] is True
    assert found["google"] == []
    text = doctor(tmp_path, root)
    assert text.returncode == 0, text.stderr
    assert "gce/gcs: not used by this project" in text.stdout


def test_doctor_when_storage_is_gcs_without_gce_keys_lists_each_missing_key_with_its_fix_and_exits_1(
    tmp_path: Path,
) -> None:
    root = new_project(tmp_path)
    edit_config(root, storage={"backend": "gcs"})

    done = doctor(tmp_path, root, "--json")

    assert done.returncode == 1, done.stderr
    cloud = cloud_of(done)
    assert (cloud["needed"], cloud["ok"]) == (True, False)
    checks = checks_by_name(cloud)
    for key in MISSING_KEYS:
        check = checks[f"setting {key}"]
        assert check["ok"] is False
        assert key in check["detail"]
        assert f"Set {key}" in check["fix"]
    assert checks["credentials"]["ok"] is False
    assert "gcloud auth application-default login" in checks["credentials"]["fix"]
    assert checks["bucket"]["skipped"] is True
    assert checks["compute api"]["skipped"] is True
    text = doctor(tmp_path, root)
    assert text.returncode == 1
    assert "gce/gcs: not ready" in text.stdout
    assert "✗ setting gce.project_id: gce.project_id is not set in goldfish.yaml" in text.stdout
    assert "fix: Set gce.project_id in goldfish.yaml" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr


def test_doctor_when_fully_configured_against_the_simulator_passes_every_check(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute
) -> None:
    root = new_project(tmp_path)
    configure_simulator(root, fake_compute, gcs_bucket.name)

    done = doctor(tmp_path, root, "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    cloud = cloud_of(done)
    failed = [check for check in cloud["checks"] if not check["ok"] or check.get("warning")]
    assert failed == []
    assert (cloud["needed"], cloud["ok"]) == (True, True)
    checks = checks_by_name(cloud)
    expected = {"settings", "credentials", "bucket", "compute api", "vm service account", "image families"}
    assert expected | {"image registry", "warm pool"} <= set(checks)
    assert checks["credentials"]["detail"].startswith("anonymous: local endpoints")
    assert f"gs://{gcs_bucket.name}/proj" in checks["bucket"]["detail"]
    assert "zone us-central1-a answered" in checks["compute api"]["detail"]
    text = doctor(tmp_path, root)
    assert "gce/gcs: ready" in text.stdout
    assert "✓ compute api" in text.stdout
    assert "✗" not in text.stdout


def test_doctor_when_the_bucket_does_not_exist_names_it_as_missing(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute
) -> None:
    root = new_project(tmp_path)
    missing = f"goldfish-absent-{uuid.uuid4().hex[:12]}"
    configure_simulator(root, fake_compute, missing)

    done = doctor(tmp_path, root, "--json")

    assert done.returncode == 1
    bucket = checks_by_name(cloud_of(done))["bucket"]
    assert bucket["ok"] is False
    assert bucket["detail"] == f"gs://{missing} does not exist"
    assert f"gcloud storage buckets create gs://{missing}" in bucket["fix"]
    assert "storage.gcs.bucket" in bucket["fix"]
    assert gcs_bucket.name != missing


def test_doctor_when_settings_are_wrong_names_each_setting_to_fix(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute
) -> None:
    root = new_project(tmp_path)
    configure_simulator(
        root,
        fake_compute,
        gcs_bucket.name,
        project_id="someone-elses-project",
        image_registry="https://example.com/goldfish/",
        warm_pool={"enabled": True, "max_instances": 0, "profiles": ["sim-cpu", "no-such-profile"]},
    )

    done = doctor(tmp_path, root, "--json")

    assert done.returncode == 1
    checks = checks_by_name(cloud_of(done))
    assert checks["bucket"]["ok"] is True
    compute = checks["compute api"]
    assert compute["ok"] is False
    assert "someone-elses-project" in compute["detail"]
    assert compute["fix"].startswith("Check gce.project_id in goldfish.yaml")
    registry = checks["image registry"]
    assert registry["ok"] is False
    assert "HOST/PATH" in registry["fix"]
    pool = checks["warm pool"]
    assert pool["ok"] is False
    assert "no-such-profile" in pool["detail"]
    assert "sim-cpu" not in pool["detail"]


def test_doctor_when_the_compute_api_never_answers_reports_it_within_the_bound(
    tmp_path: Path, gcs_bucket: GcsBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = new_project(tmp_path)
    monkeypatch.setattr(doctor_checks, "CHECK_TIMEOUT", 0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers a request
        edit_config(
            root,
            storage={"backend": "gcs", "gcs": {"bucket": gcs_bucket.name}},
            gce={
                "project_id": "fake-project",
                "zones": ZONES,
                "api_endpoint": f"http://127.0.0.1:{silent.getsockname()[1]}",
                "image_registry": "127.0.0.1:5000/goldfish",
            },
        )

        cloud = cloud_doctor.diagnose_cloud(load_config(root), root)

    compute = checks_by_name(cloud)["compute api"]
    assert compute["ok"] is False
    assert compute["detail"].startswith("no answer within")
    assert "gce.api_endpoint" in compute["fix"]
    assert checks_by_name(cloud)["bucket"]["ok"] is True


def test_doctor_when_no_vm_service_account_is_set_names_the_default_one_vms_get(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute
) -> None:
    root = new_project(tmp_path)
    configure_simulator(root, fake_compute, gcs_bucket.name, service_account=None)

    cloud = cloud_doctor.diagnose_cloud(load_config(root), root)

    account = checks_by_name(cloud)["vm service account"]
    assert account["ok"] is True
    assert fake_compute.default_service_account in account["detail"]
    assert "roles/artifactregistry.reader" in account["detail"]
    assert "setting gce.service_account" not in checks_by_name(cloud)


def test_doctor_when_an_image_family_was_retired_names_it_and_the_setting_to_change(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute
) -> None:
    root = new_project(tmp_path)
    configure_simulator(root, fake_compute, gcs_bucket.name)
    fake_compute.retire_image_family("deeplearning-platform-release", "common-cu124-debian-11")

    cloud = cloud_doctor.diagnose_cloud(load_config(root), root)

    images = checks_by_name(cloud)["image families"]
    assert images["ok"] is False
    assert "deeplearning-platform-release/common-cu124-debian-11" in images["detail"]
    assert "h100-spot" in images["detail"]
    assert "gce.profile_overrides.a100-on-demand.image_family" in images["fix"]
    assert cloud["ok"] is False
