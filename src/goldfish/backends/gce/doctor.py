"""The cloud half of ``goldfish doctor``: is GCE/GCS set up, and if not, exactly what to fix.

:func:`diagnose_cloud` reads goldfish.yaml's ``gce``/``storage`` settings and, when any stage
could run on GCE, checks in order: the required settings, the Google client libraries, the
credentials, the bucket, the Compute API in the first zone, the service account VMs run as, the
image families of the GCE profiles, the image registry and the warm pool.
Each check is a dict ``{"name", "ok", "detail", "fix"}``; ``fix`` names the goldfish.yaml key,
command or IAM role that repairs a failure. Two optional flags refine ``ok``: ``warning`` (true
on a passing check that still deserves attention; its ``fix`` says what to do) and ``skipped``
(true on a check that could not run because an earlier one failed).

Nothing Google is imported when importing this module, nor when the project does not use the
cloud. Every network call runs in a daemon thread bounded by ``doctor_checks.CHECK_TIMEOUT``
seconds, and every exception becomes a failed check: the doctor never prints a traceback. The
Compute checks are in ``doctor_compute.py``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldfish.backends.gce import adaptor
from goldfish.backends.gce.config_check import missing_gce_settings
from goldfish.backends.gce.doctor_checks import (
    ADC_FIX,
    INSTALL_FIX,
    SETTING_FIXES,
    Check,
    Probe,
    check,
    short,
    skipped,
)
from goldfish.backends.gce.doctor_compute import account_probe, compute_probe, images_probe
from goldfish.config import GoldfishConfig

PROBE_FOLDER = "goldfish-doctor"
"""The tiny folder (under storage.gcs.prefix) the bucket check lists; it need not exist."""
LIBRARIES = ("google.cloud.compute_v1", "google.cloud.storage")
_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_REGISTRY_RE = re.compile(r"^(?P<host>[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?)/(?P<path>[a-z0-9._/-]+)$")


# ---------------------------------------------------------------- helpers


def _local_endpoints(config: GoldfishConfig) -> list[str]:
    """The overrides pointing at local simulators (then credentials are anonymous)."""
    found = []
    if adaptor.is_local_endpoint(config.gce.api_endpoint):
        found.append(f"gce.api_endpoint={config.gce.api_endpoint}")
    if os.environ.get(_EMULATOR_ENV):
        found.append(f"{_EMULATOR_ENV}={os.environ[_EMULATOR_ENV]}")
    return found


# ---------------------------------------------------------------- settings and libraries


def cloud_needed(config: GoldfishConfig) -> bool:
    """Whether any stage could use GCE or GCS with this configuration."""
    return config.defaults.backend == "gce" or config.storage.backend == "gcs" or bool(config.gce.project_id)


def _setting_detail(key: str, config: GoldfishConfig) -> str:
    if key == "storage.backend: gcs":
        return f"storage.backend is {config.storage.backend}; stages on GCE need gcs"
    return f"{key} is not set in goldfish.yaml"


def settings_checks(config: GoldfishConfig) -> list[Check]:
    """One failed check per missing required key (or one passing check), plus optional advice."""
    missing = missing_gce_settings(config)
    checks = [
        check(
            f"setting {key.split(':')[0]}",
            False,
            _setting_detail(key, config),
            SETTING_FIXES.get(key, f"Set {key} in goldfish.yaml."),
        )
        for key in missing
    ]
    if not missing:
        checks.append(check("settings", True, "every required gce/storage key is set"))
    return checks


def library_checks() -> tuple[list[Check], set[str]]:
    """Import each Google client library; returns the checks and the modules that imported."""
    checks: list[Check] = []
    present: set[str] = set()
    for module in LIBRARIES:
        problem = adaptor.missing_library(module)
        if problem is not None:
            checks.append(
                check(f"library {module}", False, f"cannot import {module}: {problem}", INSTALL_FIX)
            )
            continue
        present.add(module)
        checks.append(check(f"library {module}", True, "importable"))
    return checks, present


# ---------------------------------------------------------------- credentials


def _describe_credentials(credentials: Any, project: str | None, config: GoldfishConfig) -> str:
    account = getattr(credentials, "service_account_email", None)
    kind = type(credentials).__name__
    who = f"{kind} ({account})" if isinstance(account, str) and "@" in account else kind
    detail = f"application default credentials: {who}, project {project or '(none)'}"
    if project and config.gce.project_id and project != config.gce.project_id:
        detail += f"; VMs go to gce.project_id {config.gce.project_id}"
    return detail


def _adc_fix() -> str:
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file and not Path(key_file).is_file():
        return (
            f"GOOGLE_APPLICATION_CREDENTIALS names {key_file}, which is not a file: point it at a "
            "service-account key file, or unset it and run `gcloud auth application-default login`."
        )
    return ADC_FIX


def _credentials_call(config: GoldfishConfig) -> Callable[[], Check]:
    def call() -> Check:
        try:
            credentials, project = adaptor.default_credentials()
        except adaptor.auth_exceptions().DefaultCredentialsError as error:
            return check("credentials", False, f"no credentials found: {short(error)}", _adc_fix())
        return check("credentials", True, _describe_credentials(credentials, project, config))

    return call


def credentials_probe(config: GoldfishConfig, libraries: set[str]) -> Probe | Check:
    """The credentials check: anonymous against local endpoints, else application defaults."""
    local = _local_endpoints(config)
    if local:
        return check("credentials", True, f"anonymous: local endpoints ({', '.join(local)})")
    if not libraries:
        return skipped("credentials", "no Google client library is importable", INSTALL_FIX)
    return Probe("credentials", _credentials_call(config), ADC_FIX)


# ---------------------------------------------------------------- bucket


def _bucket_failure(error: Any, bucket: str, config: GoldfishConfig) -> Check:
    reason = error.details.get("reason")
    project = config.gce.project_id or "PROJECT"
    fixes = {
        "bucket_not_found": f"Create it (`gcloud storage buckets create gs://{bucket} --project={project} "
        "--location=REGION`) or set storage.gcs.bucket in goldfish.yaml to an existing bucket.",
        "access_denied": f"Grant the account in use roles/storage.objectAdmin on the bucket: `gcloud storage "
        f"buckets add-iam-policy-binding gs://{bucket} --member=user:YOU@EXAMPLE.COM "
        "--role=roles/storage.objectAdmin`.",
        "no_credentials": ADC_FIX,
    }
    detail = f"gs://{bucket} does not exist" if reason == "bucket_not_found" else error.message
    return check("bucket", False, detail, fixes.get(str(reason), error.remedy or None))


def _bucket_call(config: GoldfishConfig) -> Callable[[], Check]:
    def call() -> Check:
        from goldfish.errors import StorageError  # noqa: PLC0415
        from goldfish.storage.gcs import GcsStorage  # noqa: PLC0415

        gcs = config.storage.gcs
        assert gcs is not None
        store = GcsStorage(gcs.bucket, gcs.prefix, config.gce.project_id)
        try:
            store.list_keys(PROBE_FOLDER)
        except StorageError as error:
            return _bucket_failure(error, gcs.bucket, config)
        where = f" (emulator {os.environ[_EMULATOR_ENV]})" if os.environ.get(_EMULATOR_ENV) else ""
        return check("bucket", True, f"{store.uri('')} is reachable and listable{where}")

    return call


def bucket_probe(config: GoldfishConfig, libraries: set[str]) -> Probe | Check:
    """The bucket check: one listing of a tiny folder, through :class:`GcsStorage`."""
    if config.storage.gcs is None:
        return skipped("bucket", "storage.gcs.bucket is not set", SETTING_FIXES["storage.gcs.bucket"])
    if "google.cloud.storage" not in libraries:
        return skipped("bucket", "google.cloud.storage is not importable", INSTALL_FIX)
    fix = "Check the network (and STORAGE_EMULATOR_HOST when using an emulator)."
    return Probe("bucket", _bucket_call(config), fix)


# ---------------------------------------------------------------- registry and warm pool


def _docker_config_hosts() -> set[str]:
    """Registry hosts this machine's docker client has credentials or helpers for."""
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict):
        return set()
    hosts: set[str] = set()
    for key in ("credHelpers", "auths"):
        section = data.get(key)
        if isinstance(section, dict):
            hosts.update(str(host).removeprefix("https://").rstrip("/") for host in section)
    return hosts


def registry_check(config: GoldfishConfig) -> Check:
    """gce.image_registry is set and reads as HOST/PATH (with a docker login hint for Google's)."""
    registry = config.gce.image_registry
    if not registry:
        return skipped("image registry", "gce.image_registry is not set", SETTING_FIXES["gce.image_registry"])
    match = _REGISTRY_RE.match(registry)
    host = match.group("host") if match else ""
    if match is None or not ("." in host or ":" in host or host == "localhost"):
        return check(
            "image registry",
            False,
            f"gce.image_registry {registry!r} is not HOST/PATH (no scheme, lowercase, no trailing '/')",
            "Set gce.image_registry to HOST/PATH, e.g. us-central1-docker.pkg.dev/PROJECT/REPO.",
        )
    from goldfish.backends.gce.jobs import is_google_registry  # noqa: PLC0415

    if is_google_registry(host) and host not in _docker_config_hosts():
        return check(
            "image registry",
            True,
            f"{registry}; docker on this machine has no credentials for {host} yet",
            f"Run `gcloud auth configure-docker {host}` once so stage images can be pushed.",
            warning=True,
        )
    return check("image registry", True, registry)


def warm_pool_check(config: GoldfishConfig) -> Check:
    """gce.warm_pool makes sense: room for instances, and only profiles that exist."""
    from goldfish.backends.profiles import all_profiles  # noqa: PLC0415

    pool = config.gce.warm_pool
    if not pool.enabled:
        return check("warm pool", True, "disabled (every run starts a fresh VM)")
    unknown = [name for name in pool.profiles if name not in all_profiles(config)]
    if unknown:
        return check(
            "warm pool",
            False,
            f"gce.warm_pool.profiles names profiles that do not exist: {', '.join(unknown)}",
            "Remove them from gce.warm_pool.profiles, or define them under gce.profile_overrides.",
        )
    if pool.max_instances == 0:
        return check(
            "warm pool",
            True,
            "enabled with gce.warm_pool.max_instances: 0, so no VM is ever kept",
            "Raise gce.warm_pool.max_instances, or set gce.warm_pool.enabled: false.",
            warning=True,
        )
    served = ", ".join(pool.profiles) or "every profile"
    detail = f"up to {pool.max_instances} idle VM(s) for {served}, {pool.idle_timeout_minutes:g} min idle"
    return check("warm pool", True, detail)


# ---------------------------------------------------------------- the whole diagnosis


def diagnose_cloud(config: GoldfishConfig, project_root: Path | None = None) -> dict[str, Any]:
    """Check everything stages on GCE/GCS need, without changing anything.

    Args:
        config: The project's goldfish.yaml.
        project_root: The project folder (its label filters the Compute API listing), if known.

    Returns:
        ``{"needed": bool, "ok": bool, "checks": [...]}``. When the configuration uses neither
        GCE nor GCS, ``needed`` is false, ``checks`` is empty and nothing is imported or called.
    """
    if not cloud_needed(config):
        return {"needed": False, "ok": True, "checks": []}
    checks = settings_checks(config)
    library_results, libraries = library_checks()
    checks.extend(library_results)
    # The network checks run at once, each bounded by CHECK_TIMEOUT.
    pending = [
        credentials_probe(config, libraries),
        bucket_probe(config, libraries),
        compute_probe(config, libraries, project_root),
        account_probe(config, libraries),
        images_probe(config, libraries),
    ]
    checks.extend(item.result() if isinstance(item, Probe) else item for item in pending)
    checks.append(registry_check(config))
    checks.append(warm_pool_check(config))
    return {"needed": True, "ok": all(check["ok"] for check in checks), "checks": checks}
