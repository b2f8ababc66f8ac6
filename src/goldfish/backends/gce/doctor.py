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
cloud. Every network call runs in a daemon thread bounded by :data:`CHECK_TIMEOUT` seconds, and
every exception becomes a failed check: the doctor never prints a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldfish.backends.gce.config_check import missing_gce_settings
from goldfish.config import GoldfishConfig

Check = dict[str, Any]

CHECK_TIMEOUT = 10.0
"""Most seconds any one network check may take (credentials, bucket, Compute API)."""
RPC_TIMEOUT = 8.0
"""Seconds one Compute API request may take inside a check."""
PROBE_FOLDER = "goldfish-doctor"
"""The tiny folder (under storage.gcs.prefix) the bucket check lists; it need not exist."""
LIBRARIES = ("google.cloud.compute_v1", "google.cloud.storage")
INSTALL_FIX = "pip install 'goldfish-mcp[gce]'"
ADC_FIX = (
    "Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file."
)
_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_REGISTRY_RE = re.compile(r"^(?P<host>[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?)/(?P<path>[a-z0-9._/-]+)$")

_SETTING_FIXES: dict[str, str] = {
    "gce.project_id": "Set gce.project_id in goldfish.yaml to your Google Cloud project ID "
    "(`gcloud config get-value project` prints the current one).",
    "gce.zones": "Set gce.zones in goldfish.yaml to the zones to try, in order, e.g. "
    "[us-central1-a, us-central1-b] (zones that offer your GPU type and where you have quota).",
    "gce.image_registry": "Set gce.image_registry in goldfish.yaml to HOST/PATH of a Docker repository, "
    "e.g. us-central1-docker.pkg.dev/PROJECT/goldfish (`gcloud artifacts repositories create goldfish "
    "--repository-format=docker --location=us-central1` creates one).",
    "storage.backend: gcs": "Set storage.backend: gcs in goldfish.yaml: VMs read inputs and write "
    "outputs, logs and exit codes through the bucket.",
    "storage.gcs.bucket": "Set storage.gcs.bucket (and optionally storage.gcs.prefix) in goldfish.yaml "
    "(`gcloud storage buckets create gs://NAME --location=REGION` creates a bucket).",
}


# ---------------------------------------------------------------- helpers


def _check(
    name: str,
    ok: bool,
    detail: str,
    fix: str | None = None,
    *,
    warning: bool = False,
    skipped: bool = False,
) -> Check:
    """One check result (``warning``/``skipped`` only appear when true)."""
    check: Check = {"name": name, "ok": ok, "detail": detail, "fix": fix}
    if warning:
        check["warning"] = True
    if skipped:
        check["skipped"] = True
    return check


def _skipped(name: str, why: str, fix: str) -> Check:
    return _check(name, False, f"not checked: {why}", fix, skipped=True)


def _short(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:400]


class _Probe:
    """Runs ``call`` (which returns a check) in a daemon thread, started at once.

    A call still running after its deadline is left behind (daemon threads never delay the exit)
    and reported as a failed check; an exception it raises becomes a failed check too.
    """

    def __init__(self, name: str, call: Callable[[], Check], fix: str):
        self.name = name
        self.fix = fix
        self._call = call
        self._result: Check | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"goldfish-doctor-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._call()
        except Exception as error:
            self._result = _check(self.name, False, f"{type(error).__name__}: {_short(error)}", self.fix)

    def result(self) -> Check:
        """The check, waiting at most what is left of :data:`CHECK_TIMEOUT` since the start."""
        self._thread.join(max(0.0, CHECK_TIMEOUT - (time.monotonic() - self._started)))
        if self._thread.is_alive() or self._result is None:
            detail = f"no answer within {CHECK_TIMEOUT:g} s"
            return _check(self.name, False, detail, f"Check the network connection. {self.fix}")
        return self._result


def _local_endpoints(config: GoldfishConfig) -> list[str]:
    """The overrides pointing at local simulators (then credentials are anonymous)."""
    from goldfish.backends.gce.compute import is_local_endpoint  # noqa: PLC0415

    found = []
    if is_local_endpoint(config.gce.api_endpoint):
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
        _check(
            f"setting {key.split(':')[0]}",
            False,
            _setting_detail(key, config),
            _SETTING_FIXES.get(key, f"Set {key} in goldfish.yaml."),
        )
        for key in missing
    ]
    if not missing:
        checks.append(_check("settings", True, "every required gce/storage key is set"))
    return checks


def library_checks() -> tuple[list[Check], set[str]]:
    """Import each Google client library; returns the checks and the modules that imported."""
    checks: list[Check] = []
    present: set[str] = set()
    for module in LIBRARIES:
        try:
            importlib.import_module(module)
        except Exception as error:
            detail = f"cannot import {module}: {_short(error)}"
            checks.append(_check(f"library {module}", False, detail, INSTALL_FIX))
            continue
        present.add(module)
        checks.append(_check(f"library {module}", True, "importable"))
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
        import google.auth  # noqa: PLC0415
        from google.auth import exceptions as auth_exc  # noqa: PLC0415

        try:
            credentials, project = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except auth_exc.DefaultCredentialsError as error:
            return _check("credentials", False, f"no credentials found: {_short(error)}", _adc_fix())
        return _check("credentials", True, _describe_credentials(credentials, project, config))

    return call


def credentials_probe(config: GoldfishConfig, libraries: set[str]) -> _Probe | Check:
    """The credentials check: anonymous against local endpoints, else application defaults."""
    local = _local_endpoints(config)
    if local:
        return _check("credentials", True, f"anonymous: local endpoints ({', '.join(local)})")
    if not libraries:
        return _skipped("credentials", "no Google client library is importable", INSTALL_FIX)
    return _Probe("credentials", _credentials_call(config), ADC_FIX)


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
    return _check("bucket", False, detail, fixes.get(str(reason), error.remedy or None))


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
        return _check("bucket", True, f"{store.uri('')} is reachable and listable{where}")

    return call


def bucket_probe(config: GoldfishConfig, libraries: set[str]) -> _Probe | Check:
    """The bucket check: one listing of a tiny folder, through :class:`GcsStorage`."""
    if config.storage.gcs is None:
        return _skipped("bucket", "storage.gcs.bucket is not set", _SETTING_FIXES["storage.gcs.bucket"])
    if "google.cloud.storage" not in libraries:
        return _skipped("bucket", "google.cloud.storage is not importable", INSTALL_FIX)
    fix = "Check the network (and STORAGE_EMULATOR_HOST when using an emulator)."
    return _Probe("bucket", _bucket_call(config), fix)


# ---------------------------------------------------------------- compute


def _compute_fix(failure: Any, project: str, zone: str) -> str:
    """The fix for a failed listing: the setting or command it points at, else the failure's remedy."""
    text = f"{failure.reason_code} {failure.message}"
    if any(marker in text for marker in ("accessNotConfigured", "SERVICE_DISABLED", "has not been used")):
        return f"Enable the Compute API: `gcloud services enable compute.googleapis.com --project={project}`."
    if "not found" in text and f"zones/{zone}'" in text:
        return f"Check gce.zones in goldfish.yaml: zone {zone} does not exist (`gcloud compute zones list`)."
    if "not found" in text and f"projects/{project}'" in text:
        return (
            f"Check gce.project_id in goldfish.yaml: project {project} was not found "
            "(`gcloud projects list` shows the IDs your account can see)."
        )
    return str(failure.remedy)


def _compute_call(config: GoldfishConfig, project_root: Path | None) -> Callable[[], Check]:
    def call() -> Check:
        from goldfish.backends.container import project_label  # noqa: PLC0415
        from goldfish.backends.gce.compute import ComputeApi  # noqa: PLC0415
        from goldfish.backends.gce.failures import LaunchFailure  # noqa: PLC0415

        project, zone = str(config.gce.project_id), config.gce.zones[0]
        labels = (
            {"goldfish-project": project_label(project_root)} if project_root else {"goldfish-pool": "warm"}
        )
        api = ComputeApi(project, config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        try:
            found = api.list(zone, labels)
        except LaunchFailure as failure:
            return _check("compute api", False, failure.message, _compute_fix(failure, project, zone))
        detail = f"project {project}, zone {zone} answered; {len(found)} goldfish instance(s) there"
        return _check("compute api", True, detail)

    return call


def compute_probe(config: GoldfishConfig, libraries: set[str], project_root: Path | None) -> _Probe | Check:
    """The Compute API check: list this project's instances in the first zone (label filter)."""
    for key in ("gce.project_id", "gce.zones"):
        if key in missing_gce_settings(config):
            return _skipped("compute api", f"{key} is not set", _SETTING_FIXES[key])
    if "google.cloud.compute_v1" not in libraries:
        return _skipped("compute api", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    fix = "Check the connection to the Compute API (and gce.api_endpoint when set)."
    return _Probe("compute api", _compute_call(config, project_root), fix)


# ---------------------------------------------------------------- VM service account and images

_ACCOUNT_ROLES = (
    "it needs roles/storage.objectAdmin on the bucket and roles/artifactregistry.reader on the "
    "repository (docs/gce-setup.md, steps 4 and 5)"
)


def _account_call(config: GoldfishConfig) -> Callable[[], Check]:
    def call() -> Check:
        from goldfish.backends.gce.compute import ComputeApi  # noqa: PLC0415
        from goldfish.backends.gce.failures import LaunchFailure  # noqa: PLC0415

        api = ComputeApi(str(config.gce.project_id), config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        try:
            email = api.default_service_account()
        except LaunchFailure as failure:
            if failure.reason_code == "NO_DEFAULT_SERVICE_ACCOUNT":
                return _check("vm service account", False, failure.message, failure.remedy)
            detail = (
                f"gce.service_account is not set and the project's default account could not be looked "
                f"up (projects.get: {failure.message}); VMs would run without an account"
            )
            fix = "Set gce.service_account in goldfish.yaml, or let this account read the project."
            return _check("vm service account", True, detail, fix, warning=True)
        detail = (
            f"gce.service_account is not set: VMs run as the project's default Compute Engine account "
            f"{email} (cloud-platform scope); {_ACCOUNT_ROLES}"
        )
        return _check("vm service account", True, detail)

    return call


def account_probe(config: GoldfishConfig, libraries: set[str]) -> _Probe | Check:
    """Which account VMs run as: gce.service_account, else the project's default (``projects.get``).

    A VM without a service account gets no token: it could not read its job from the bucket.
    """
    if config.gce.service_account:
        detail = f"VMs run as {config.gce.service_account} (cloud-platform scope); {_ACCOUNT_ROLES}"
        return _check("vm service account", True, detail)
    if "gce.project_id" in missing_gce_settings(config):
        return _skipped("vm service account", "gce.project_id is not set", _SETTING_FIXES["gce.project_id"])
    if "google.cloud.compute_v1" not in libraries:
        return _skipped("vm service account", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    fix = "Set gce.service_account in goldfish.yaml to the account the VMs should run as."
    return _Probe("vm service account", _account_call(config), fix)


def _image_sources(config: GoldfishConfig) -> dict[tuple[str, str], list[str]]:
    """``(image project, family)`` → the GCE profiles booting from it."""
    from goldfish.backends.gce.instances import image_source  # noqa: PLC0415
    from goldfish.backends.profiles import all_profiles  # noqa: PLC0415

    sources: dict[tuple[str, str], list[str]] = {}
    for name, profile in sorted(all_profiles(config).items()):
        if profile.backend != "gce":
            continue
        gpu = bool(profile.accelerator) and profile.gpu_count > 0
        sources.setdefault(image_source(profile.image_family, gpu=gpu), []).append(name)
    return sources


def _images_call(config: GoldfishConfig, sources: dict[tuple[str, str], list[str]]) -> Callable[[], Check]:
    def call() -> Check:
        from goldfish.backends.gce.compute import ComputeApi  # noqa: PLC0415
        from goldfish.backends.gce.failures import LaunchFailure  # noqa: PLC0415

        api = ComputeApi(str(config.gce.project_id), config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        found, missing = [], []
        for (project, family), profiles in sources.items():
            try:
                found.append(f"{project}/{family} → {api.image_from_family(project, family)}")
            except LaunchFailure as failure:
                if f"images/family/{family}" not in failure.message:  # not GCE saying "no such family"
                    detail = f"could not look up {project}/{family}: {failure.message}"
                    return _check("image families", True, detail, failure.remedy, warning=True)
                missing.append((f"{project}/{family}", profiles))
        if missing:
            named = "; ".join(f"{source} (profiles {', '.join(names)})" for source, names in missing)
            first = missing[0][1][0]
            project = missing[0][0].split("/", 1)[0]
            fix = (
                f"Set gce.profile_overrides.{first}.image_family (and the other profiles named) to a "
                f"family that exists: `gcloud compute images list --project={project} "
                "--no-standard-images` lists them (for GPUs, a Deep Learning VM family with CUDA)."
            )
            return _check("image families", False, f"no such image family: {named}", fix)
        return _check("image families", True, "; ".join(found))

    return call


def images_probe(config: GoldfishConfig, libraries: set[str]) -> _Probe | Check:
    """Every GCE profile's image family resolves (``images.getFromFamily``): families get renamed."""
    from goldfish.errors import ConfigError  # noqa: PLC0415

    if "gce.project_id" in missing_gce_settings(config):
        return _skipped("image families", "gce.project_id is not set", _SETTING_FIXES["gce.project_id"])
    if "google.cloud.compute_v1" not in libraries:
        return _skipped("image families", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    try:
        sources = _image_sources(config)
    except ConfigError as error:
        return _check("image families", False, error.message, error.remedy)
    fix = "Check the connection to the Compute API (and gce.api_endpoint when set)."
    return _Probe("image families", _images_call(config, sources), fix)


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
        return _skipped(
            "image registry", "gce.image_registry is not set", _SETTING_FIXES["gce.image_registry"]
        )
    match = _REGISTRY_RE.match(registry)
    host = match.group("host") if match else ""
    if match is None or not ("." in host or ":" in host or host == "localhost"):
        return _check(
            "image registry",
            False,
            f"gce.image_registry {registry!r} is not HOST/PATH (no scheme, lowercase, no trailing '/')",
            "Set gce.image_registry to HOST/PATH, e.g. us-central1-docker.pkg.dev/PROJECT/REPO.",
        )
    from goldfish.backends.gce.jobs import is_google_registry  # noqa: PLC0415

    if is_google_registry(host) and host not in _docker_config_hosts():
        return _check(
            "image registry",
            True,
            f"{registry}; docker on this machine has no credentials for {host} yet",
            f"Run `gcloud auth configure-docker {host}` once so stage images can be pushed.",
            warning=True,
        )
    return _check("image registry", True, registry)


def warm_pool_check(config: GoldfishConfig) -> Check:
    """gce.warm_pool makes sense: room for instances, and only profiles that exist."""
    from goldfish.backends.profiles import all_profiles  # noqa: PLC0415

    pool = config.gce.warm_pool
    if not pool.enabled:
        return _check("warm pool", True, "disabled (every run starts a fresh VM)")
    unknown = [name for name in pool.profiles if name not in all_profiles(config)]
    if unknown:
        return _check(
            "warm pool",
            False,
            f"gce.warm_pool.profiles names profiles that do not exist: {', '.join(unknown)}",
            "Remove them from gce.warm_pool.profiles, or define them under gce.profile_overrides.",
        )
    if pool.max_instances == 0:
        return _check(
            "warm pool",
            True,
            "enabled with gce.warm_pool.max_instances: 0, so no VM is ever kept",
            "Raise gce.warm_pool.max_instances, or set gce.warm_pool.enabled: false.",
            warning=True,
        )
    served = ", ".join(pool.profiles) or "every profile"
    detail = f"up to {pool.max_instances} idle VM(s) for {served}, {pool.idle_timeout_minutes:g} min idle"
    return _check("warm pool", True, detail)


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
    checks.extend(item.result() if isinstance(item, _Probe) else item for item in pending)
    checks.append(registry_check(config))
    checks.append(warm_pool_check(config))
    return {"needed": True, "ok": all(check["ok"] for check in checks), "checks": checks}
