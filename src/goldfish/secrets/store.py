"""The project's secret store: ``.goldfish/secrets.env``, mode 0600, one ``NAME="value"`` per line.

Values are JSON strings (any text, newlines included). The file lives beside the database, so it
is never synced into a workspace or a version; backups and exports leave it out. Every write
replaces the whole file through a 0600 temporary file and a rename, under a file lock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from goldfish.errors import InvalidArgumentError
from goldfish.locks import file_lock
from goldfish.validation import MAX_ENV_VALUE, env_name_problem

SECRETS_FILENAME = "secrets.env"


def check_secret_name(name: object) -> str:
    """``name`` when it can name a secret (an environment variable the backend does not own).

    Raises:
        InvalidArgumentError: saying why not.
    """
    problem = env_name_problem(name)
    if problem is not None:
        raise InvalidArgumentError(
            f"Not a secret name: {problem}.",
            details={"field": "name", "name": str(name)[:80]},
            remedy="Use the environment variable name the stage reads, e.g. HF_TOKEN.",
        )
    return str(name)


class SecretStore:
    """Reads and writes ``.goldfish/secrets.env`` of one project."""

    def __init__(self, goldfish_dir: Path):
        self.path = goldfish_dir / SECRETS_FILENAME
        self._lock = goldfish_dir / "locks" / "secrets.lock"

    def values(self) -> dict[str, str]:
        """Every stored secret (an absent file is an empty store)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        found: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, raw = line.partition("=")
            if not sep or line.lstrip().startswith("#") or env_name_problem(name.strip()) is not None:
                continue
            try:
                value = json.loads(raw) if raw.startswith('"') else raw
            except ValueError:
                value = raw
            if isinstance(value, str):
                found[name.strip()] = value
        return found

    def names(self) -> list[str]:
        """Stored secret names, sorted."""
        return sorted(self.values())

    def get(self, name: str) -> str | None:
        """One stored value, or None."""
        return self.values().get(name)

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name`` (replacing an older one).

        Raises:
            InvalidArgumentError: for a bad name or an empty, NUL-holding or oversized value
                (the message never repeats the value).
        """
        check_secret_name(name)
        if not isinstance(value, str) or not value or "\x00" in value or len(value) > MAX_ENV_VALUE:
            raise InvalidArgumentError(
                f"The value for {name} must be 1 to {MAX_ENV_VALUE} characters of text without NUL bytes.",
                details={"field": "value", "name": name},
            )
        with file_lock(self._lock, "The secret store"):
            current = self.values()
            current[name] = value
            self._write(current)

    def remove(self, name: str) -> bool:
        """Forget ``name``; False when it was not stored."""
        check_secret_name(name)
        with file_lock(self._lock, "The secret store"):
            current = self.values()
            if current.pop(name, None) is None:
                return False
            self._write(current)
            return True

    def _write(self, values: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{SECRETS_FILENAME}.{os.getpid()}.tmp")
        text = "".join(f"{name}={json.dumps(values[name])}\n" for name in sorted(values))
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
