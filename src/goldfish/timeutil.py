"""UTC timestamps in ISO-8601 and the human ``age`` strings shown in lists."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """Current UTC time, ISO-8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """Parse a timestamp written by :func:`now_iso`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def age(value: str | None, now: datetime | None = None) -> str | None:
    """Return how long ago ``value`` was, e.g. ``"3m ago"``; None for None."""
    if value is None:
        return None
    seconds = int(((now or datetime.now(UTC)) - parse_iso(value)).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s ago"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"
