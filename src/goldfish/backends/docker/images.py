"""Images for the docker backend: image lookups, the base Dockerfile, stage images and builds.

A *base image* carries Python, pip and a non-root user (the repository's ``Dockerfile`` builds
one offline from any local image with python3 and pip). A *stage image* is that base plus the
goldfish runtime (``goldfish.io``, standard library only, copied from this installation) plus,
when the workspace has one, a ``requirements.txt`` layer. It is tagged
``goldfish-stage:<hash of base image id, runtime files and requirements>`` and reused while
none of them changes; the runtime layer comes before the requirements layer, so a changed
``requirements.txt`` rebuilds only that layer. Builds are recorded in ``image_builds`` with the
tail of their log.

The docker SDK comes from ``adaptor.sdk()`` (imported on first use).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import goldfish
from goldfish.backends.container import IMAGE_REF, RUNTIME_DIR
from goldfish.backends.docker.adaptor import DockerUnavailableError, sdk, short_error
from goldfish.db.images import BuildKind, ImageBuildRepository
from goldfish.errors import GoldfishError, InvalidArgumentError
from goldfish.locks import file_lock

STAGE_REPOSITORY = "goldfish-stage"
DEFAULT_BASE_FROM = "goldfish-debian-python:bookworm"
BUILD_TIMEOUT_SECONDS = 1800
PROGRESS_EVERY_SECONDS = 0.5

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


class BaseDockerfileMissingError(GoldfishError):
    """This installation ships no Dockerfile to build the base image from."""

    code = "BASE_DOCKERFILE_MISSING"


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


# -- lookups ------------------------------------------------------------------------------------


def base_dockerfile_path() -> Path | None:
    """The base image Dockerfile: packaged with a wheel, or the source checkout's ``Dockerfile``."""
    packaged = resources.files("goldfish.backends.docker") / "base.Dockerfile"
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(goldfish.__file__).resolve().parents[2] / "Dockerfile"
    return checkout if checkout.is_file() else None


def base_dockerfile() -> str:
    """The text of the base image Dockerfile.

    Raises:
        BaseDockerfileMissingError: when this installation has neither a packaged nor a checkout Dockerfile.
    """
    path = base_dockerfile_path()
    if path is not None:
        return path.read_text(encoding="utf-8")
    raise BaseDockerfileMissingError(
        "The base image Dockerfile is not part of this installation.",
        remedy="Build the base image from the Goldfish repository: docker build -t goldfish-base:latest - < "
        "Dockerfile",
    )


def dockerfile_arg_base(text: str) -> str | None:
    """The ``ARG BASE=...`` default of a base Dockerfile, or None when it has none."""
    match = re.search(r"^ARG BASE=(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def dockerfile_default_base(text: str) -> str:
    """The image the base Dockerfile builds ``FROM`` unless told otherwise."""
    return dockerfile_arg_base(text) or DEFAULT_BASE_FROM


def image_info(client: Any, name: str) -> dict[str, Any]:
    """Whether image ``name`` exists, with its id, size and creation time."""
    docker = sdk()
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
    docker = sdk()
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
    docker = sdk()
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
