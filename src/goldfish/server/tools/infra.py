"""Infrastructure tools: manage_base_images, get_build_status."""

from typing import Annotated, Any, Literal

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.backends.docker.image_models import BuildInfo, ImageInfo
from goldfish.errors import InvalidArgumentError
from goldfish.ids import BUILD_ID
from goldfish.server.toolkit import ChangeReason, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page, workspace_name

ImageAction = Literal["list", "check", "build"]


class BaseImagesResult(ToolResult):
    """Base images and whether the Docker engine has them."""

    action: str
    engine: dict[str, Any] = Field(description="reachable, server_version, api_version (or error).")
    images: list[ImageInfo]
    build: BuildInfo | None = Field(None, description="The build this call made (action=build).")


class BuildStatusResult(ToolResult):
    """Image builds, newest first."""

    builds: list[BuildInfo]
    total: int
    limit: int
    offset: int


def register(reg: ToolRegistry) -> None:
    """Register the infrastructure tools."""

    @reg.tool(
        read_only=False,
        idempotent=True,
        open_world=True,
        title="Manage base images",
        reads_when=lambda args: args.get("action") in ("list", "check"),
    )
    async def manage_base_images(
        ctx: Context,
        action: Annotated[
            ImageAction,
            Field(
                description="list: base images and presence; check: one image runs python3+pip as non-root; "
                "build: build a base image from the Dockerfile, offline."
            ),
        ],
        name: Annotated[
            str | None, Field(description="Image to check or build (default: docker.base_image).")
        ] = None,
        from_image: Annotated[
            str | None,
            Field(
                description="build only: local image with python3 and pip to build FROM (default: the "
                "Dockerfile's BASE). Nothing is pulled."
            ),
        ] = None,
        reason: Annotated[ChangeReason, Field(description="Required for build.")] = None,
    ) -> BaseImagesResult:
        """Base images the docker backend builds stage images on: list them, check one, or build one.

        Stage images (base + requirements.txt layer + goldfish runtime) are built automatically by
        runs; see get_build_status. A build reports progress while it runs.
        """
        images = reg.app.context.images
        if action == "list":
            engine, found = await anyio.to_thread.run_sync(images.base_images)
            return BaseImagesResult(action=action, engine=engine, images=found)
        if action == "check":
            info = await anyio.to_thread.run_sync(images.check, name)
            return BaseImagesResult(action=action, engine={"reachable": True}, images=[info])
        if action != "build":
            raise InvalidArgumentError(
                "action must be list, check or build.",
                details={"field": "action", "action": str(action)[:40]},
            )

        def progress(lines: int, message: str) -> None:
            anyio.from_thread.run(ctx.report_progress, float(lines), None, message)

        build = await anyio.to_thread.run_sync(images.build_base, name, from_image, progress)
        info = await anyio.to_thread.run_sync(images.check, build.image)
        return BaseImagesResult(action=action, engine={"reachable": True}, images=[info], build=build)

    @reg.tool(read_only=True, idempotent=True, title="Image build status")
    def get_build_status(
        build_id: Annotated[
            str | None, Field(description="One build (build-...); default: recent builds.")
        ] = None,
        workspace: Annotated[
            str | None, Field(description="Only the stage image builds of this workspace.")
        ] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Builds to skip.")] = 0,
    ) -> BuildStatusResult:
        """Image builds (stage images made by runs, base images) with state and log tail, newest first."""
        limit, offset = page(limit, offset)
        images = reg.app.context.images
        if build_id is not None:
            if not isinstance(build_id, str) or not BUILD_ID.fullmatch(build_id):
                raise InvalidArgumentError(
                    "build_id looks like build-<12 hex>.", details={"field": "build_id"}
                )
            return BuildStatusResult(builds=[images.build(build_id)], total=1, limit=limit, offset=offset)
        if workspace is not None:
            workspace = workspace_name(workspace)
        builds, total = images.builds(workspace, limit, offset)
        return BuildStatusResult(builds=builds, total=total, limit=limit, offset=offset)
