"""The docker backend's part of ``goldfish doctor``, and the readiness ``auto`` is decided on.

Three pieces must be there, checked in this order: the ``docker`` package, an engine that
answers, and the configured base image on it. Each missing piece comes with the one command
that fixes it. The backend factory asks :func:`docker_ready` (cached per process) to resolve
``auto`` and :func:`require_ready` before an explicit ``docker``; ``goldfish doctor`` renders
:func:`diagnose`. Nothing here builds or changes anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from goldfish.backends.docker.adaptor import DockerUnavailableError, connect
from goldfish.backends.docker.images import (
    base_dockerfile,
    base_dockerfile_path,
    dockerfile_arg_base,
    dockerfile_default_base,
    image_info,
)
from goldfish.config import Docker as DockerSettings
from goldfish.errors import GoldfishError, InvalidArgumentError

NOT_READY_RETRY_SECONDS = 30.0
_READY: dict[str, tuple[bool, float]] = {}


@dataclass(frozen=True)
class DockerReadiness:
    """Whether the docker backend can run here; if not, which piece is missing and the fix."""

    missing: Literal["package", "engine", "base_image"] | None
    detail: str
    fix: str | None = None

    @property
    def ready(self) -> bool:
        """True when package, engine and base image are all there."""
        return self.missing is None


def docker_readiness(base_image: str) -> DockerReadiness:
    """Check, in order, the docker package, the engine and ``base_image`` on it (never raises)."""
    try:
        client = connect()
    except DockerUnavailableError as exc:
        return DockerReadiness(exc.details.get("missing", "engine"), exc.message, exc.remedy)
    try:
        present = image_info(client, base_image)["present"] is True
    except (DockerUnavailableError, InvalidArgumentError) as exc:
        return DockerReadiness("engine", exc.message, exc.remedy)
    if present:
        return DockerReadiness(None, f"the engine answers and has {base_image}")
    return DockerReadiness(
        "base_image",
        f"the base image {base_image} does not exist on the Docker engine",
        base_image_fix(client, base_image),
    )


def docker_ready(base_image: str) -> bool:
    """True when :func:`docker_readiness` finds nothing missing (cached in this process).

    A yes is kept for the life of the process; a no is asked again after 30 seconds, so a
    server notices an engine started after it.
    """
    cached = _READY.get(base_image)
    if cached is not None and (cached[0] or time.monotonic() - cached[1] < NOT_READY_RETRY_SECONDS):
        return cached[0]
    ready = docker_readiness(base_image).ready
    _READY[base_image] = (ready, time.monotonic())
    return ready


def forget_readiness(base_image: str) -> None:
    """Drop the cached answer of :func:`docker_ready` (after building ``base_image``)."""
    _READY.pop(base_image, None)


def require_ready(base_image: str) -> None:
    """Refuse a stage that asks for docker explicitly when docker cannot work here.

    Raises:
        DockerUnavailableError: naming the missing piece, with its fix as the remedy.
    """
    if docker_ready(base_image):
        return
    readiness = docker_readiness(base_image)  # what exactly is missing, asked afresh
    if readiness.ready:
        return
    raise DockerUnavailableError(
        f"Backend 'docker' was asked for, but {readiness.detail}",
        details={"backend": "docker", "base_image": base_image, "missing": readiness.missing},
        remedy=f"{readiness.fix} — or use compute.backend: process. `goldfish doctor` shows the rest.",
    )


def base_image_fix(client: Any, base_image: str) -> str:
    """The ``docker build`` that makes ``base_image`` offline from the Dockerfile Goldfish ships."""
    dockerfile = base_dockerfile_path()
    if dockerfile is None:
        return f"docker build -t {base_image} - < Dockerfile  (from the Goldfish repository)"
    default = dockerfile_arg_base(dockerfile.read_text(encoding="utf-8"))
    has_default = default is not None and image_info(client, default)["present"] is True
    base_arg = "" if has_default else "--build-arg BASE=python:3.12-slim "
    return f"docker build {base_arg}-t {base_image} - < {dockerfile}"


def engine_info() -> dict[str, Any]:
    """Whether the engine answers, and its version."""
    try:
        client = connect()
    except DockerUnavailableError as exc:
        return {"reachable": False, "error": exc.message}
    version = client.version()
    return {
        "reachable": True,
        "server_version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "storage_driver": client.info().get("Driver"),
    }


def base_images(settings: DockerSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The engine, and each base image Goldfish uses (configured one, the Dockerfile's FROM) with its role."""
    engine = engine_info()
    if not engine["reachable"]:
        return engine, []
    client = connect()
    names = {settings.base_image: "configured"}
    names.setdefault(dockerfile_default_base(_dockerfile_or_empty()), "dockerfile_base")
    found = [{"role": role, **image_info(client, name)} for name, role in names.items()]
    return engine, [{key: value for key, value in image.items() if value is not None} for image in found]


@dataclass(frozen=True)
class DockerDiagnosis:
    """What ``goldfish doctor`` says about docker: the engine, the base images, what is missing."""

    engine: dict[str, Any]
    base_images: list[dict[str, Any]]
    readiness: DockerReadiness


def diagnose(settings: DockerSettings) -> DockerDiagnosis:
    """Check the engine, the base images and the readiness for ``settings`` (never raises)."""
    engine, images = base_images(settings)
    return DockerDiagnosis(engine, images, docker_readiness(settings.base_image))


def _dockerfile_or_empty() -> str:
    try:
        return base_dockerfile()
    except GoldfishError:
        return ""
