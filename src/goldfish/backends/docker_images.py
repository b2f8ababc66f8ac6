"""Images for the docker backend: the engine connection, base images and stage images.

A *base image* carries Python, pip and a non-root user (the repository's ``Dockerfile`` builds
one offline from any local image with python3 and pip). A *stage image* is that base plus the
goldfish runtime (``goldfish.io``, standard library only, copied from this installation) plus,
when the workspace has one, a ``requirements.txt`` layer. It is tagged
``goldfish-stage:<hash of base image id, runtime files and requirements>`` and reused while
none of them changes; the runtime layer comes before the requirements layer, so a changed
``requirements.txt`` rebuilds only that layer. Builds are recorded in ``image_builds`` with the
tail of their log.

The docker SDK is imported lazily, here and in ``docker.py`` only.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import goldfish
from goldfish.backends.container import RUNTIME_DIR
from goldfish.db.images import BuildKind, ImageBuildRepository
from goldfish.errors import GoldfishError, InvalidArgumentError
from goldfish.locks import file_lock

STAGE_REPOSITORY = "goldfish-stage"
ENGINE_TIMEOUT_SECONDS = 5
BUILD_TIMEOUT_SECONDS = 1800
PROGRESS_EVERY_SECONDS = 0.5
NOT_READY_RETRY_SECONDS = 30.0
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")

_RUNTIME_INIT = '"""Goldfish stage runtime: only ``goldfish.io`` is installed in stage images."""\n'
_STAGE_DOCKERFILE = """\
FROM {base}
USER root
COPY runtime/ {runtime}/
"""
_REQUIREMENTS_LAYER = """\
COPY requirements.txt /opt/goldfish-stage/requirements.txt
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --disable-pip-version-check \\
    --no-input -r /opt/goldfish-stage/requirements.txt
"""
_NON_ROOT = "USER 1000\n"


class DockerUnavailableError(GoldfishError):
    """The Docker engine cannot be reached (or the docker SDK is not installed)."""

    code = "DOCKER_UNAVAILABLE"
    default_remedy = (
        "Start the Docker engine (goldfish doctor says what is missing) or run on the process backend "
        "(compute.backend: process)."
    )


class BaseImageMissingError(GoldfishError):
    """The configured base image does not exist on this Docker engine."""

    code = "BASE_IMAGE_MISSING"
    default_remedy = (
        "Build it with manage_base_images(action='build') (offline, from the repository's Dockerfile) "
        "or set docker.base_image in goldfish.yaml to a local image with python3 and pip."
    )


class ImageBuildError(GoldfishError):
    """Building an image failed (see the log tail)."""

    code = "IMAGE_BUILD_FAILED"
    default_remedy = "Fix what details.log_tail shows (often requirements.txt) and run again."


# -- the engine ---------------------------------------------------------------------------------


def connect(timeout: int = ENGINE_TIMEOUT_SECONDS) -> Any:
    """A docker SDK client for the engine of ``$DOCKER_HOST`` (or the default socket).

    Raises:
        DockerUnavailableError: when the SDK is missing or the engine does not answer, with the
            one command that fixes it as the remedy.
    """
    try:
        import docker  # noqa: PLC0415 - the SDK loads only when docker is used
    except ImportError:
        raise DockerUnavailableError(
            "The docker Python package is missing from this installation.",
            details={"missing": "package"},
            remedy=package_fix(),
        ) from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        reason, fix = _engine_problem(exc)
        raise DockerUnavailableError(
            f"The Docker engine is not reachable ({reason}): {short_error(exc)}",
            details={"missing": "engine", "docker_host": os.environ.get("DOCKER_HOST")},
            remedy=fix,
        ) from None
    return client


def package_fix() -> str:
    """The command that installs the docker SDK into the interpreter running Goldfish."""
    return f"{sys.executable} -m pip install 'docker>=7.0'"


def _engine_problem(exc: Exception) -> tuple[str, str]:
    """Why the engine did not answer, and the one command that fixes that."""
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return "no permission to use its socket", "sudo usermod -aG docker $USER  (then log in again)"
    if shutil.which("dockerd") is None and shutil.which("docker") is None:
        return "Docker is not installed", (
            "sudo apt-get install -y docker.io"
            if Path("/etc/debian_version").exists()
            else "install Docker Engine (https://docs.docker.com/engine/install/)"
        )
    host = os.environ.get("DOCKER_HOST")
    if host:
        return f"nothing answers at DOCKER_HOST={host}", "unset DOCKER_HOST  (or start the engine it names)"
    if Path("/run/systemd/system").is_dir():
        return "the engine is not running", "sudo systemctl start docker"
    return "the engine is not running", "sudo sh -c 'dockerd > /var/log/dockerd.log 2>&1 &'"


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


def base_dockerfile_path() -> Path | None:
    """The base image Dockerfile: packaged with a wheel, or the source checkout's ``Dockerfile``."""
    packaged = resources.files("goldfish.backends") / "base.Dockerfile"
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(goldfish.__file__).resolve().parents[2] / "Dockerfile"
    return checkout if checkout.is_file() else None


def base_image_fix(client: Any, base_image: str) -> str:
    """The ``docker build`` that makes ``base_image`` offline from the Dockerfile Goldfish ships."""
    dockerfile = base_dockerfile_path()
    if dockerfile is None:
        return f"docker build -t {base_image} - < Dockerfile  (from the Goldfish repository)"
    default = re.search(r"^ARG BASE=(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    has_default = default is not None and image_info(client, default.group(1))["present"] is True
    base_arg = "" if has_default else "--build-arg BASE=python:3.12-slim "
    return f"docker build {base_arg}-t {base_image} - < {dockerfile}"


def engine_info() -> dict[str, Any]:
    """Whether the engine answers, and its version (for ``goldfish doctor``)."""
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


_READY: dict[str, tuple[bool, float]] = {}


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


def image_info(client: Any, name: str) -> dict[str, Any]:
    """Whether image ``name`` exists, with its id, size and creation time."""
    import docker  # noqa: PLC0415

    check_image_name(name)
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return {"name": name, "present": False, "image_id": None, "size_mb": None, "created": None}
    except docker.errors.APIError as exc:
        raise DockerUnavailableError(f"Docker could not look up {name}: {short_error(exc)}") from None
    return {
        "name": name,
        "present": True,
        "image_id": image.id,
        "size_mb": round(int(image.attrs.get("Size", 0)) / 1e6, 1),
        "created": image.attrs.get("Created"),
    }


def check_image_name(name: object) -> str:
    """An image reference we are willing to pass on (no options, no whitespace)."""
    if not isinstance(name, str) or not IMAGE_REF.fullmatch(name):
        raise InvalidArgumentError(
            f"Image name {str(name)[:100]!r} is not allowed.",
            details={"field": "name", "name": str(name)[:100]},
            remedy="Use a plain image reference such as goldfish-base:latest.",
        )
    return name


def short_error(exc: Exception) -> str:
    """The last line of a docker exception's explanation (what went wrong, without the HTTP noise)."""
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[-1][:300] if text.strip() else type(exc).__name__


# -- building -----------------------------------------------------------------------------------


def runtime_files() -> dict[str, bytes]:
    """The goldfish runtime as it lands in stage images: ``goldfish.io`` and a minimal package."""
    package = Path(goldfish.__file__).resolve().parent
    files = {"goldfish/__init__.py": _RUNTIME_INIT.encode()}
    for path in sorted((package / "io").glob("*.py")):
        files[f"goldfish/io/{path.name}"] = path.read_bytes()
    return files


def stage_image_tag(base_image_id: str, runtime: dict[str, bytes], requirements: bytes | None) -> str:
    """``goldfish-stage:<16 hex>`` from everything the stage image is made of."""
    digest = hashlib.sha256(base_image_id.encode())
    digest.update((_STAGE_DOCKERFILE + _REQUIREMENTS_LAYER + _NON_ROOT).encode())  # the recipe itself
    for name, data in sorted(runtime.items()):
        digest.update(f"\0{name}\0{len(data)}\0".encode() + data)
    digest.update(b"\0requirements\0" + (requirements if requirements is not None else b"<none>"))
    return f"{STAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def context_tar(files: dict[str, bytes]) -> io.BytesIO:
    """A build context in memory, with fixed metadata so unchanged files hit the layer cache."""
    import tarfile  # noqa: PLC0415 - only image builds need it

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def stage_context(base: str, runtime: dict[str, bytes], requirements: bytes | None) -> io.BytesIO:
    """The build context of a stage image: Dockerfile, runtime files, requirements.txt."""
    dockerfile = _STAGE_DOCKERFILE.format(base=base, runtime=RUNTIME_DIR)
    files = {f"runtime/{name}": data for name, data in runtime.items()}
    if requirements is not None:
        dockerfile += _REQUIREMENTS_LAYER
        files["requirements.txt"] = requirements
    dockerfile += _NON_ROOT
    files["Dockerfile"] = dockerfile.encode()
    return context_tar(files)


@dataclass
class BuildLog:
    """Lines of a running build, pushed to its ``image_builds`` row every half second."""

    builds: ImageBuildRepository | None
    build_id: str | None
    log_file: Path | None = None
    on_progress: Callable[[int, str], None] | None = None
    lines: int = 0
    text: str = ""
    _pushed: float = 0.0

    def add(self, chunk: str) -> None:
        """Append build output (and mirror it into ``log_file``)."""
        self.text = (self.text + chunk)[-8000:]
        self.lines += chunk.count("\n")
        if self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as handle:
                handle.write(chunk)
        if time.monotonic() - self._pushed > PROGRESS_EVERY_SECONDS:
            if self.builds and self.build_id:
                self.builds.progress(self.build_id, self.text, self.lines)
            if self.on_progress is not None and chunk.strip():
                self.on_progress(self.lines, chunk.strip().splitlines()[-1][:200])
            self._pushed = time.monotonic()

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines."""
        return "\n".join(self.text.splitlines()[-lines:])


def run_build(client: Any, context: io.BytesIO, tag: str, log: BuildLog, **options: Any) -> None:
    """Build ``context`` as ``tag`` with the engine's builder, streaming its output into ``log``.

    Raises:
        ImageBuildError: when the build reports an error (with the log tail).
    """
    import docker  # noqa: PLC0415

    error: str | None = None
    try:
        for event in _events(client, context, tag, options):
            if "stream" in event:
                log.add(str(event["stream"]))
            elif "error" in event:
                error = str(event["error"]).strip()
                log.add(error + "\n")
    except docker.errors.DockerException as exc:
        error = short_error(exc)
    if error is None and not _exists(client, tag):
        error = "the build ended without producing the image"
    if error is not None:
        raise ImageBuildError(
            f"Building {tag} failed: {error[:300]}",
            details={"image": tag, "build_id": log.build_id, "log_tail": log.tail()},
        )


def _events(client: Any, context: io.BytesIO, tag: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stream: Iterator[dict[str, Any]] = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        **options,
    )
    yield from stream


def _exists(client: Any, tag: str) -> bool:
    return bool(image_info(client, tag)["present"])


def recorded_build(
    builds: ImageBuildRepository | None,
    kind: BuildKind,
    tag: str,
    base: str,
    build: Callable[[BuildLog], None],
    log: BuildLog,
    **row: str | None,
) -> str | None:
    """Run ``build`` with an ``image_builds`` row around it; return the build id."""
    if builds is not None:
        log.build_id = builds.start(kind, tag, base, **row)
    try:
        build(log)
    except GoldfishError as exc:
        if builds is not None and log.build_id:
            builds.finish(log.build_id, "failed", log.text, log.lines, exc.message)
        raise
    except Exception as exc:
        if builds is not None and log.build_id:
            builds.finish(log.build_id, "failed", log.text, log.lines, f"internal error: {exc}"[:500])
        raise
    if builds is not None and log.build_id:
        builds.finish(log.build_id, "succeeded", log.text, log.lines)
    return log.build_id


@dataclass(frozen=True)
class StageImageRequest:
    """What a stage image is built from, and who asked."""

    base_image: str
    requirements: bytes | None
    workspace: str
    stage_run_id: str
    log_file: Path


def ensure_stage_image(
    client: Any,
    builds: ImageBuildRepository | None,
    locks: Path,
    request: StageImageRequest,
    on_build: Callable[[str], None],
) -> str:
    """The stage image tag for ``request``, built (and recorded) only when it does not exist yet.

    Raises:
        BaseImageMissingError: when the base image is not on the engine.
        ImageBuildError: when the build fails.
    """
    base = image_info(client, request.base_image)
    if not base["present"]:
        raise BaseImageMissingError(
            f"The base image {request.base_image} does not exist on this Docker engine.",
            details={"base_image": request.base_image},
        )
    runtime = runtime_files()
    tag = stage_image_tag(str(base["image_id"]), runtime, request.requirements)
    if _exists(client, tag):
        return tag
    with file_lock(locks / f"image-{tag.split(':')[1]}.lock", f"Image {tag}", timeout_seconds=1800):
        if _exists(client, tag):  # built by another process while we waited
            return tag
        layers = "runtime + requirements.txt" if request.requirements is not None else "runtime"
        on_build(f"building stage image {tag} ({layers} on {request.base_image})")
        request.log_file.parent.mkdir(parents=True, exist_ok=True)
        context = stage_context(request.base_image, runtime, request.requirements)
        labels = {
            "goldfish.stage-image": "1",
            "goldfish.base": request.base_image,
            "goldfish.requirements": hashlib.sha256(request.requirements).hexdigest()[:16]
            if request.requirements is not None
            else "none",
        }
        recorded_build(
            builds,
            "stage",
            tag,
            request.base_image,
            lambda log: run_build(client, context, tag, log, labels=labels),
            BuildLog(builds, None, request.log_file),
            requirements_hash=labels["goldfish.requirements"],
            workspace=request.workspace,
            stage_run_id=request.stage_run_id,
        )
    return tag


_PUSHED: set[str] = set()


def push_image(client: Any, tag: str, registry: str) -> str:
    """Push the local image ``tag`` to ``registry`` (``HOST[:PORT]/PATH``); return the remote reference.

    Stage image tags are content hashes, so a reference pushed once by this process is not pushed
    again; the registry itself skips layers it already has.

    Raises:
        ImageBuildError: when the engine cannot push (with the registry's message).
    """
    import docker  # noqa: PLC0415

    repository, _, version = tag.rpartition(":")
    remote_repository = f"{registry.rstrip('/')}/{repository.rsplit('/', 1)[-1]}"
    remote = check_image_name(f"{remote_repository}:{version}")
    if remote in _PUSHED:
        return remote
    error: str | None = None
    try:
        client.images.get(tag).tag(remote_repository, version)
        for event in client.api.push(remote_repository, version, stream=True, decode=True):
            if "error" in event:
                error = str(event["error"]).strip()
    except docker.errors.DockerException as exc:
        error = short_error(exc)
    if error is not None:
        raise ImageBuildError(
            f"Pushing {remote} failed: {error[:300]}",
            details={"image": remote, "registry": registry},
            remedy="Check gce.image_registry and that this machine may push there "
            "(gcloud auth configure-docker REGION-docker.pkg.dev).",
        )
    _PUSHED.add(remote)
    return remote
