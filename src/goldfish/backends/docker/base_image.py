"""Base images and image builds, for ``manage_base_images``, ``get_build_status`` and ``goldfish doctor``.

A base image carries python3, pip and a non-root user; the repository's ``Dockerfile`` builds one
offline ``FROM`` any local image with python3 and pip (nothing is ever pulled). Stage images are
built on top of it by runs (``images.ensure_stage_image``); every build is an
``image_builds`` row with its state and log tail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goldfish.backends.docker.adaptor import connect, sdk, short_error
from goldfish.backends.docker.doctor import base_images, forget_readiness
from goldfish.backends.docker.image_models import BuildInfo, ImageInfo
from goldfish.backends.docker.images import (
    BaseImageMissingError,
    BuildLog,
    base_dockerfile,
    check_image_name,
    context_tar,
    dockerfile_default_base,
    image_info,
    recorded_build,
    run_build,
)
from goldfish.config import Docker as DockerSettings
from goldfish.db.images import ImageBuildRepository
from goldfish.errors import GoldfishError, InvalidArgumentError


class BuildNotFoundError(GoldfishError):
    """No image build has that id."""

    code = "BUILD_NOT_FOUND"
    default_remedy = "Call get_build_status without build_id to list recent builds."


class ImageService:
    """Base images and image builds, for the tools and ``goldfish doctor`` (no engine call until asked)."""

    def __init__(self, settings: DockerSettings, builds: ImageBuildRepository | None):
        self._settings = settings
        self._builds = builds

    def base_images(self) -> tuple[dict[str, Any], list[ImageInfo]]:
        """The engine, and each base image Goldfish uses: configured one, the Dockerfile's FROM."""
        engine, images = base_images(self._settings)
        return engine, [ImageInfo(**image) for image in images]

    def check(self, name: str | None) -> ImageInfo:
        """Whether image ``name`` (default: docker.base_image) exists and runs python3 and pip as non-root."""
        docker = sdk()
        name = check_image_name(name or self._settings.base_image)
        client = connect()
        info = ImageInfo(
            role="configured" if name == self._settings.base_image else "asked", **image_info(client, name)
        )
        if not info.present:
            return info
        probe = "python3 -c 'import sys; print(sys.version.split()[0])' && python3 -m pip --version && id -u"
        try:
            output = client.containers.run(
                name, ["/bin/sh", "-c", probe], remove=True, network_mode="none", user="1000:1000"
            )
        except docker.errors.DockerException as exc:
            raise BaseImageMissingError(
                f"{name} cannot run python3 and pip as a non-root user: {short_error(exc)}",
                details={"image": name},
            ) from None
        lines = output.decode(errors="replace").splitlines()
        if len(lines) >= 3:
            info.python, info.pip, info.runs_as_uid = lines[0], lines[1].split(" from ")[0], int(lines[2])
        return info

    def build_base(
        self, name: str | None, from_image: str | None, on_progress: Callable[[int, str], None] | None = None
    ) -> BuildInfo:
        """Build a base image from the Dockerfile (offline, ``BASE`` = ``from_image``) and record it."""
        name = check_image_name(name or self._settings.base_image)
        if name != self._settings.base_image and not name.startswith("goldfish-"):
            raise InvalidArgumentError(
                f"Goldfish builds base images named goldfish-* or docker.base_image, not {name!r}.",
                details={"field": "name", "name": name, "configured": self._settings.base_image},
                remedy="Leave name out to build docker.base_image, or pick a name starting with goldfish-.",
            )
        dockerfile = base_dockerfile()
        source = check_image_name(from_image or dockerfile_default_base(dockerfile))
        client = connect()
        if not image_info(client, source)["present"]:
            raise BaseImageMissingError(
                f"{source} (the image to build FROM) does not exist on this engine; nothing is pulled.",
                details={"from_image": source},
                remedy="Pass from_image: a local image with python3 and pip (scripts/ensure-docker.sh makes "
                "goldfish-debian-python:bookworm with debootstrap).",
            )
        context = context_tar({"Dockerfile": dockerfile.encode()})
        build_id = recorded_build(
            self._builds,
            "base",
            name,
            source,
            lambda log: run_build(client, context, name, log, buildargs={"BASE": source}),
            BuildLog(self._builds, None, on_progress=on_progress),
        )
        forget_readiness(name)
        return self.build(build_id or "")

    def build(self, build_id: str) -> BuildInfo:
        """One build by id."""
        row = self._builds.get(build_id) if self._builds is not None else None
        if row is None:
            raise BuildNotFoundError(
                f"No image build {build_id[:40]!r}.", details={"build_id": build_id[:40]}
            )
        return BuildInfo.of(row)

    def builds(self, workspace: str | None, limit: int, offset: int) -> tuple[list[BuildInfo], int]:
        """Newest image builds first (of one workspace or all), with the total."""
        if self._builds is None:
            return [], 0
        rows, total = self._builds.page(workspace, limit, offset)
        return [BuildInfo.of(row) for row in rows], total
