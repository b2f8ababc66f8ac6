"""Validation of names, reasons, paths and list bounds, shared by every layer.

Every user-supplied value is checked here before anything touches the disk, git or the
database, so a rejected call never leaves a half-written state.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from goldfish.errors import InvalidArgumentError, InvalidPathError, ReasonRequiredError

WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
VERSION_REF = re.compile(r"^v([1-9][0-9]{0,8})$")

MIN_REASON_LENGTH = 15
MAX_REASON_LENGTH = 4000
MAX_TEXT_LENGTH = 20_000
DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer: a bigger offset cannot be bound to a query

_SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# What a stage's env or config_override may not hold (pipelines.md): *_TOKEN, *_KEY, *_SECRET, *PASSWORD*.
_SECRET_LOOKING = re.compile(r"(^|_)(TOKEN|KEY|SECRET)$|PASSWORD", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV_PREFIX = "GOLDFISH_"
GPU_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"})
MAX_ENV_VALUE = 32_768
REDACTED = "***"


def _check_name(value: object, pattern: re.Pattern[str], field: str, shape: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgumentError(
            f"Invalid {field} {_preview(value)}: {shape}.",
            details={"field": field, "value": _preview(value), "pattern": pattern.pattern},
        )
    return value


def _preview(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def workspace_name(value: object, field: str = "workspace") -> str:
    """Return ``value`` if it is a valid workspace name, else raise INVALID_ARGUMENT."""
    return _check_name(
        value, WORKSPACE_NAME, field, "use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )


def tag_name(value: object, field: str = "tag") -> str:
    """Return ``value`` if it is a valid tag name, else raise INVALID_ARGUMENT."""
    return _check_name(
        value, TAG_NAME, field, "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )


def pipeline_name(value: object, field: str = "pipeline") -> str:
    """Return ``value`` if it names a file ``pipelines/<name>.yaml`` (no folders, no ``..``)."""
    return _check_name(
        value,
        PIPELINE_NAME,
        field,
        "use <name> of pipelines/<name>.yaml: 1-64 letters, digits, '.', '_' or '-' (no '/')",
    )


def slot_name(value: object, field: str = "slot") -> str:
    """Return ``value`` if it is shaped like a slot name (w1, w2, ...)."""
    return _check_name(value, SLOT_NAME, field, "use 1-32 letters, digits, '_' or '-'")


def project_name(value: object, field: str = "project_name") -> str:
    """Return ``value`` if it is a valid project name."""
    return _check_name(
        value,
        PROJECT_NAME,
        field,
        "use 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter",
    )


def version_number(value: object, field: str = "version") -> int:
    """Parse ``vN`` (or ``N``) into the integer N."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        match = VERSION_REF.fullmatch(text if text.startswith("v") else f"v{text}")
        if match:
            return int(match.group(1))
    raise InvalidArgumentError(
        f"Invalid {field} {_preview(value)}: versions are written vN, e.g. 'v3'.",
        details={"field": field, "value": _preview(value)},
    )


def reason(value: object, field: str = "reason", minimum: int = MIN_REASON_LENGTH) -> str:
    """Return a stripped reason of at least ``minimum`` characters."""
    if not isinstance(value, str) or len(value.strip()) < minimum:
        raise ReasonRequiredError(
            f"{field} must be a sentence of at least {minimum} characters explaining why.",
            details={"field": field, "minimum_length": minimum},
        )
    return text(value, field, MAX_REASON_LENGTH).strip()


def text(value: object, field: str, maximum: int = MAX_TEXT_LENGTH, *, allow_empty: bool = False) -> str:
    """Return free text after checking type, length and control characters."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{field} must be text.", details={"field": field})
    if not allow_empty and not value.strip():
        raise InvalidArgumentError(f"{field} must not be empty.", details={"field": field})
    if len(value) > maximum:
        raise InvalidArgumentError(
            f"{field} is too long ({len(value)} characters; the limit is {maximum}).",
            details={"field": field, "length": len(value), "maximum": maximum},
        )
    if "\x00" in value:
        raise InvalidArgumentError(f"{field} must not contain NUL characters.", details={"field": field})
    return value


def page(limit: object, offset: object) -> tuple[int, int]:
    """Validate list paging: ``limit`` in 1..200, ``offset`` in 0..2**63-1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError(
            f"limit must be a whole number from 1 to {MAX_LIMIT}.",
            details={"field": "limit", "value": _preview(limit), "maximum": MAX_LIMIT},
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgumentError(
            f"offset must be a whole number from 0 to {MAX_OFFSET}.",
            details={"field": "offset", "value": _preview(offset), "maximum": MAX_OFFSET},
        )
    return limit, offset


def path_inside(root: Path, candidate: str | os.PathLike[str], field: str = "path") -> Path:
    """Resolve ``candidate`` against ``root`` and refuse anything that leaves it.

    Absolute paths are allowed only when they already lie inside ``root``. Symlinks are
    resolved, so a link that points out of the root is refused too.

    Raises:
        InvalidPathError: when the path is malformed or escapes ``root``.
    """
    raw = os.fspath(candidate)
    if not raw or "\x00" in raw or len(raw) > 4096:
        raise InvalidPathError(f"Invalid {field}: empty, too long or contains NUL.", details={"field": field})
    root_resolved = root.resolve()
    resolved = (root_resolved / raw).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise InvalidPathError(
            f"{field} {_preview(raw)} leaves {root_resolved}.",
            details={"field": field, "value": _preview(raw), "root": str(root_resolved)},
        )
    return resolved


def is_secret_name(name: str) -> bool:
    """True when an argument or env name looks like it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def looks_like_secret(name: str) -> bool:
    """True for a name that belongs under ``secrets:`` (*_TOKEN, *_KEY, *_SECRET, *PASSWORD*)."""
    return bool(_SECRET_LOOKING.search(name))


def env_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a stage environment variable or secret name, or None when it can."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        return (
            f"{str(name)[:80]!r} is not an environment variable name "
            "(letters, digits and '_', not starting with a digit, at most 128)"
        )
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        return f"{name} is reserved: GOLDFISH_* variables are set by Goldfish"
    if name in GPU_ENV:
        return f"{name} is set by the backend from compute.gpus"
    return None


def env_problem(name: object, value: object) -> str | None:
    """Why ``name: value`` cannot be a plain (non-secret) stage environment entry, or None."""
    problem = env_name_problem(name)
    if problem is not None:
        return problem
    if looks_like_secret(str(name)):
        return f"{name} looks like a secret; plain env is recorded in the run's manifest"
    if not isinstance(value, str) or "\x00" in value or len(value) > MAX_ENV_VALUE:
        return f"the value of {name} must be text without NUL bytes, at most {MAX_ENV_VALUE} characters"
    return None


SECRET_REMEDY = (
    "List the name under secrets: in configs/<stage>.yaml (or defaults.secrets in goldfish.yaml) and "  # noqa: S105
    "set its value with `goldfish secrets set NAME`; the value then never lands in a manifest."
)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secret-named mapping entries replaced by ``***``."""
    if isinstance(value, dict):
        return {
            key: (REDACTED if isinstance(key, str) and is_secret_name(key) else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
