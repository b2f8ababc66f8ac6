"""Identifiers: stage runs ``stage-<12 hex>``, pipeline runs ``prun-<12 hex>``, records as ULIDs."""

from __future__ import annotations

import re
import secrets

from ulid import ULID

STAGE_RUN_ID = re.compile(r"^stage-[0-9a-f]{12}$")
PIPELINE_RUN_ID = re.compile(r"^prun-[0-9a-f]{12}$")
RECORD_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_stage_run_id() -> str:
    """``stage-<12 hex>``."""
    return f"stage-{secrets.token_hex(6)}"


def new_pipeline_run_id() -> str:
    """``prun-<12 hex>``."""
    return f"prun-{secrets.token_hex(6)}"


def new_record_id() -> str:
    """A ULID: sortable by creation time."""
    return str(ULID())
