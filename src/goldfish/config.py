"""goldfish.yaml: the pydantic models, loading with precise errors, and the JSON Schema.

Unknown keys are errors (with a did-you-mean), every problem names its file, line and key,
and the JSON Schema in ``schema/`` is generated from these models so the two never drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from goldfish.errors import ConfigError, suggestion_suffix
from goldfish.paths import CONFIG_FILENAME
from goldfish.problems import ConfigProblem
from goldfish.validation import PROJECT_NAME, SLOT_NAME, env_name_problem, env_problem
from goldfish.yamlfile import YamlFileError, load_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class Defaults(_Strict):
    """Defaults that apply to every run unless a stage config overrides them."""

    timeout_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600, description="Stage timeout.")
    log_sync_interval: int = Field(10, ge=1, le=3600, description="Seconds between log/metric syncs.")
    backend: Literal["auto", "process", "docker", "gce"] = Field(
        "auto",
        description="Where stages run: auto picks docker when the engine is reachable and has "
        "docker.base_image, else process.",
    )
    max_parallel_stages: int = Field(2, ge=1, le=64, description="Independent stages run at once.")
    max_attempts: int = Field(3, ge=1, le=10, description="Tries per stage for infra errors and preemption.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Plain environment of every stage (a stage's own env: keys win); recorded in manifests.",
    )
    secrets: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Secret names every stage gets; values from `goldfish secrets set NAME` or the "
        "server's environment, never recorded.",
    )
    telemetry_interval: float = Field(
        10, ge=0, le=3600, description="Seconds between sys/* telemetry samples while a stage runs; 0 = off."
    )
    telemetry_max_points: int = Field(
        2000, ge=10, le=1_000_000, description="Most points per telemetry series and run."
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env_entries(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {key: _env_text(item) for key, item in value.items()}
            for key, item in value.items():
                problem = env_problem(key, item)
                if problem is not None:
                    raise ValueError(problem)
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        for name in names:
            problem = env_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return list(dict.fromkeys(names))


def _env_text(value: Any) -> Any:
    """A number in YAML (``OMP_NUM_THREADS: 4``) is the text it reads as; other types stay and fail."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class GpuCheck(_Strict):
    """GPU readiness before a GPU stage starts (locally and on a VM)."""

    min_free_memory_mb: int = Field(
        1024, ge=0, le=10_000_000, description="Free memory each of the stage's GPUs must have."
    )
    timeout_seconds: float = Field(
        300,
        ge=0,
        le=7200,
        description="How long to wait for the GPUs to be visible with that much free (a VM's driver may "
        "still be loading).",
    )


class GcsStorage(_Strict):
    """Google Cloud Storage location for run artifacts."""

    bucket: str = Field(..., min_length=3, max_length=222, description="Bucket name, without gs://.")
    prefix: str = Field(
        "",
        max_length=512,
        pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$",
        description="Object prefix inside the bucket (no leading or trailing '/').",
    )


class Storage(_Strict):
    """Where run outputs, logs and metrics are kept."""

    backend: Literal["local", "gcs"] = Field("local", description="local (.goldfish/storage) or gcs.")
    gcs: GcsStorage | None = Field(None, description="Required when backend is gcs.")


class ProfileOverride(_Strict):
    """A resource profile: overrides a built-in one or defines a custom one."""

    machine_type: str | None = None
    accelerator: str | None = Field(None, description="e.g. nvidia-h100-80gb")
    gpu_count: int | None = Field(None, ge=0, le=16)
    spot: bool | None = None
    on_demand_fallback: bool | None = None
    zones: list[str] | None = None
    boot_disk_gb: int | None = Field(None, ge=10, le=65536)
    image_family: str | None = None
    boot_disk_type: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9-]{1,62}$",
        description="e.g. pd-ssd; default pd-balanced (hyperdisk-balanced where the series needs it)",
    )
    container_memory: str | None = Field(
        None, pattern=r"^[1-9][0-9]*[kmgKMG]?$", description="Memory cap of a VM's container; default none"
    )
    container_cpus: float | None = Field(None, gt=0, le=1024, description="CPU cap of a VM's container")


class WarmPool(_Strict):
    """Reusable GCE VMs kept idle between runs."""

    enabled: bool = False
    max_instances: int = Field(
        2, ge=0, le=256, description="Most pool instances at once (all states but deleted)."
    )
    idle_timeout_minutes: float = Field(
        30,
        gt=0,
        le=24 * 60,
        description="An idle instance deletes itself (and the server reaps it) after this.",
    )
    profiles: list[str] = Field(default_factory=list, description="Profiles the pool serves; empty = all.")
    ack_timeout_seconds: float = Field(
        60, gt=0, le=600, description="How long a warm handover waits for the VM's ack before a cold launch."
    )


class Gce(_Strict):
    """Google Compute Engine settings for GPU stages."""

    project_id: str | None = Field(None, description="Google Cloud project the VMs run in.")
    zones: list[str] = Field(
        default_factory=list, description="Zones to try, in order (profiles may set their own)."
    )
    api_endpoint: str | None = Field(
        None, description="Compute API base URL override (e.g. http://127.0.0.1:8123 for a local simulator)."
    )
    service_account: str | None = Field(
        None,
        description="Service account email the VMs run as (default: the project's Compute Engine default "
        "service account, with the cloud-platform scope).",
    )
    registry_login: Literal["auto", "token", "none"] = Field(
        "auto",
        description="How a VM logs in to gce.image_registry before pulling: auto = with its service "
        "account's token for Artifact Registry/Container Registry hosts only; token = always; none = never.",
    )
    image_registry: str | None = Field(
        None,
        description="Where stage images are pushed for VMs to pull, e.g. REGION-docker.pkg.dev/PROJECT/REPO",
    )
    poll_interval_seconds: float = Field(
        2.0, gt=0, le=300, description="Least seconds between two status checks of one VM run."
    )
    profile_overrides: dict[str, ProfileOverride] = Field(default_factory=dict)
    warm_pool: WarmPool = Field(default_factory=WarmPool)
    secret_manager: bool = Field(
        False,
        description="GCE stages may also take secret values from Secret Manager "
        "(projects/<project_id>/secrets/<NAME>, latest version) when neither the project's secrets file "
        "nor the server's environment has them.",
    )
    secret_manager_endpoint: str | None = Field(
        None, description="Secret Manager API base URL override (a local fake in tests)."
    )


class Docker(_Strict):
    """Local Docker engine limits for stage containers."""

    base_image: str = Field(
        "goldfish-base:latest",
        description="Local image stage images build on (python3, pip; never pulled): the repository's "
        "Dockerfile builds it, or manage_base_images(action='build').",
    )
    memory: str = Field("4g", pattern=r"^[1-9][0-9]*[kmgKMG]?$", description="Memory limit (no swap).")
    cpus: float = Field(2.0, gt=0, le=256, description="CPU limit (fractions allowed).")
    pids_limit: int = Field(512, ge=16, le=1_000_000, description="Most processes and threads per stage.")
    network: bool = Field(True, description="Give containers network access.")


class Svs(_Strict):
    """Stage validation (SVS): output contracts, statistics with rules, and the pre-run review."""

    enabled: bool = True
    output_stats: bool = Field(True, description="Summarise every output inside the stage's environment.")
    sample_size: int = Field(
        10_000, ge=100, le=10_000_000, description="Reservoir sample for unique_ratio and entropy."
    )
    block_on_contract_violation: bool = True
    default_mode: Literal["warn", "block"] = Field(
        "block", description="Mode of a `checks` rule that names none."
    )
    pre_run_review: Literal["off", "static", "full"] = Field(
        "static", description="Before launch: static checks; `full` adds a model's review of the changes."
    )
    block_on: Literal["error", "never"] = Field(
        "error", description="Whether an error-level review finding stops the run before launch."
    )
    review_timeout_seconds: int = Field(60, ge=5, le=600, description="Longest wait for a model's review.")
    review_model: str = Field(
        "claude-sonnet-4-5", max_length=100, description="Anthropic model when the review uses the API."
    )


class Memory(_Strict):
    """Experiment memory: finalization and context recovery."""

    finalization_gate: bool = Field(
        True, description="Refuse new runs while a finished run of the workspace is not finalized."
    )
    trend_window: int = Field(5, ge=2, le=50, description="Finalized results shown as the recent trend.")


class Backup(_Strict):
    """Project backups (create_backup, ``goldfish backup``) and when to take them on their own."""

    destination: str = Field(
        ".goldfish/backups",
        min_length=1,
        max_length=1000,
        description="A folder (relative to the project, or absolute) or gs://bucket/prefix.",
    )
    every_runs: int | None = Field(None, ge=1, le=1_000_000, description="Back up after every N runs.")
    every_minutes: float | None = Field(
        None, ge=1, le=525_600, description="Back up when the newest backup is this old and work changed."
    )

    @property
    def automatic(self) -> bool:
        """Whether backups are also taken on their own (after runs or on a clock)."""
        return self.every_runs is not None or self.every_minutes is not None

    keep: int | None = Field(None, ge=1, le=10_000, description="Keep the newest N backups; unset keeps all.")


class GoldfishConfig(_Strict):
    """The whole goldfish.yaml."""

    project_name: str = Field(..., pattern=PROJECT_NAME.pattern, description="Human name of the project.")
    goal: str = Field("", max_length=2000, description="What the project is trying to achieve.")
    dev_repo_path: str = Field(
        ".goldfish/dev-repo", description="Hidden git repository holding all versions."
    )
    workspaces_dir: str = Field("workspaces", description="Folder holding the editing slots.")
    slots: list[str] = Field(default_factory=lambda: ["w1", "w2", "w3"], min_length=1, max_length=32)
    max_file_size_mb: int = Field(100, ge=1, le=10_000, description="Largest file a slot may version.")
    data_roots: list[str] = Field(
        default_factory=list,
        description="Extra folders (absolute) local sources may come from, besides data/.",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    storage: Storage = Field(default_factory=Storage)
    gce: Gce = Field(default_factory=Gce)
    docker: Docker = Field(default_factory=Docker)
    svs: Svs = Field(default_factory=Svs)
    memory: Memory = Field(default_factory=Memory)
    backup: Backup = Field(default_factory=Backup)
    gpu_check: GpuCheck = Field(default_factory=GpuCheck)

    @field_validator("slots")
    @classmethod
    def _slots_are_names(cls, slots: list[str]) -> list[str]:
        for slot in slots:
            if not SLOT_NAME.fullmatch(slot):
                raise ValueError(f"slot {slot!r} must be 1-32 letters, digits, '_' or '-'")
        if len(set(slots)) != len(slots):
            raise ValueError("slot names must be unique")
        return slots

    @field_validator("dev_repo_path", "workspaces_dir")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        parts = Path(value).parts
        if not value or Path(value).is_absolute() or ".." in parts or "\x00" in value:
            raise ValueError("must be a relative path inside the project, without '..'")
        return value


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML mapping document to its 1-based line number."""
    try:
        return load_yaml(text, "(document)").key_lines()
    except (yaml.YAMLError, YamlFileError):
        return {}


def yaml_problem(exc: yaml.YAMLError | YamlFileError, path: str) -> ConfigProblem:
    """The problem a file that :func:`load_yaml` refused is reported as."""
    if isinstance(exc, YamlFileError):
        return ConfigProblem(path=path, line=exc.details.get("line"), key="(document)", message=exc.message)
    mark = getattr(exc, "problem_mark", None)
    return ConfigProblem(
        path=path,
        line=mark.line + 1 if mark is not None else None,
        key="(document)",
        message=f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
    )


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model inside an annotation, and whether it sits in a list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    for arg in get_args(annotation):
        found, nested = _model_in(arg)
        if found is not None:
            return found, nested or origin in (list, dict)
    return None, False


def _fields_by_key(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _allowed_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Return the keys allowed at ``loc`` (a path of keys, list indexes and dict keys)."""
    current: type[BaseModel] | None = model
    skip_container_key = False
    for part in loc:
        if skip_container_key:
            skip_container_key = False
            continue
        field = _fields_by_key(current).get(part) if current is not None else None
        if field is None:
            return []
        current, skip_container_key = _model_in(field.annotation)
    return list(_fields_by_key(current)) if current is not None else []


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], text: str, path: str
) -> list[ConfigProblem]:
    """Turn a pydantic error into file/line/key problems with did-you-mean hints."""
    lines = key_lines(text)
    problems = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc) or "(document)"
        if item["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'{suggestion_suffix(loc[-1], _allowed_keys(model, loc[:-1]))}"
        elif item["type"] == "missing":
            message = f"required key '{loc[-1]}' is missing"
        else:
            message = item["msg"]
        line = lines.get(loc) or lines.get(loc[:-1]) if loc else None
        problems.append(ConfigProblem(path=path, line=line, key=key, message=message))
    return problems


def parse_config(text: str, path: str = CONFIG_FILENAME) -> GoldfishConfig:
    """Parse goldfish.yaml text.

    Raises:
        ConfigError: with ``details.problems`` listing every problem found.
        YamlFileError: too large, too deep or too many aliases (``YAML_TOO_COMPLEX``), or a
            key written twice (``DUPLICATE_KEY``).
    """
    try:
        data = load_yaml(text, path).data
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc, path)
        raise ConfigError(
            f"{path} is not valid YAML.", details={"problems": [problem.model_dump()]}
        ) from None
    if not isinstance(data, dict):
        problem = ConfigProblem(path=path, line=1, key="(document)", message="must be a mapping of keys")
        raise ConfigError(f"{path} must be a mapping.", details={"problems": [problem.model_dump()]})
    try:
        return GoldfishConfig.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, GoldfishConfig, text, path)
        summary = "; ".join(f"{p.key}: {p.message}" for p in problems[:5])
        raise ConfigError(
            f"{path} has {len(problems)} problem(s): {summary}",
            details={"problems": [p.model_dump() for p in problems]},
        ) from None


def load_config(project_root: Path) -> GoldfishConfig:
    """Load and validate ``goldfish.yaml`` in ``project_root``."""
    path = project_root / CONFIG_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.", details={"path": str(path)}) from None
    return parse_config(text, str(path))


def render_config(config: GoldfishConfig) -> str:
    """Render a config as YAML with only the keys that differ from the defaults."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["project_name"] = config.project_name
    ordered = {"project_name": data.pop("project_name"), **data}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of goldfish.yaml, generated from :class:`GoldfishConfig`."""
    schema = GoldfishConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "goldfish.yaml"
    return schema
