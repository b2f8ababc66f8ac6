"""Identifiers: ``stage-``, ``prun-`` and ``build-<12 hex>`` for runs and image builds; records as ULIDs."""

from __future__ import annotations

import re
import secrets

STAGE_RUN_ID = re.compile(r"^stage-[0-9a-f]{12}$")
PIPELINE_RUN_ID = re.compile(r"^prun-[0-9a-f]{12}$")
BUILD_ID = re.compile(r"^build-[0-9a-f]{12}$")
RECORD_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_stage_run_id() -> str:
    """``stage-<12 hex>``."""
    return f"stage-{secrets.token_hex(6)}"


def new_pipeline_run_id() -> str:
    """``prun-<12 hex>``."""
    return f"prun-{secrets.token_hex(6)}"


def new_build_id() -> str:
    """``build-<12 hex>``: one image build."""
    return f"build-{secrets.token_hex(6)}"


def new_record_id() -> str:
    """A ULID: sortable by creation time."""
    from ulid import ULID  # noqa: PLC0415 - loaded at the first record, not with the server's tools

    return str(ULID())
