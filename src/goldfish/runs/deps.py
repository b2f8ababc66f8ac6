"""What executing stages needs, built once by the composition root (``ServerContext.executor_deps``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from goldfish.backends.factory import BackendRegistry
from goldfish.backends.gpus import HostGpus, discover
from goldfish.config import Svs
from goldfish.data.sources import SourceService
from goldfish.db.metrics import MetricRepository
from goldfish.db.runs import RunRepository
from goldfish.db.svs import SvsRepository
from goldfish.runs.planner import InputResolver
from goldfish.secrets.resolver import SecretResolver
from goldfish.storage.protocol import Storage
from goldfish.svs.pattern_service import PatternService
from goldfish.workspaces.code_cache import CodeCache
from goldfish.workspaces.dev_repo import DevRepo


@dataclass(frozen=True)
class StageRuntime:
    """How stages run beyond their spec: GPU discovery and readiness, telemetry."""

    host_gpus: Callable[[], HostGpus] = discover
    gpu_min_free_mb: float = 1024
    gpu_timeout_seconds: float = 300
    telemetry_interval: float = 10
    telemetry_max_points: int = 2000


@dataclass
class ExecutorDeps:
    """What executing a stage needs (built from a ServerContext)."""

    runs: RunRepository
    metrics: MetricRepository
    sources: SourceService
    storage: Storage
    repo: DevRepo
    backends: BackendRegistry
    scratch: Path
    code: CodeCache
    inputs: InputResolver
    max_attempts: int
    contracts: Literal["off", "warn", "block"] = "block"
    svs: Svs = field(default_factory=Svs)
    svs_store: SvsRepository | None = None
    patterns: PatternService | None = None
    secrets: SecretResolver | None = None
    runtime: StageRuntime = field(default_factory=StageRuntime)
