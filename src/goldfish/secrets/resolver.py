"""Where a stage's secret values come from: the project's secret store, then the server's environment.

Values are looked up when a stage launches and go only into that stage's environment (on GCE,
into its job-scoped ``secrets.json``): never into the database, the audit trail, a manifest,
STATE.md, instance metadata, ``job.json`` or a container label.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from goldfish.errors import GoldfishError
from goldfish.secrets.store import SecretStore

Source = Literal["project secrets file", "server environment"]


class SecretNotSetError(GoldfishError):
    """A stage names a secret that has no value anywhere."""

    code = "SECRET_NOT_SET"
    default_remedy = (
        "Set it with `goldfish secrets set NAME` (stored in .goldfish/secrets.env, never versioned) "
        "or export NAME in the environment the Goldfish server starts in, then run again."
    )


class SecretResolver:
    """Looks secret values up by name, in order: the project's secret store, the server's environment."""

    def __init__(self, store: SecretStore, environ: Mapping[str, str] | None = None):
        self.store = store
        self._environ = environ if environ is not None else os.environ

    def sources(self, name: str, stored: Mapping[str, str] | None = None) -> list[Source]:
        """Where ``name`` has a value (``stored``: the store's values, when already read)."""
        found: list[Source] = []
        if name in (stored if stored is not None else self.store.values()):
            found.append("project secrets file")
        if self._environ.get(name):
            found.append("server environment")
        return found

    def missing(self, names: list[str]) -> list[str]:
        """The names among ``names`` that have no value anywhere."""
        stored = self.store.values()
        return [name for name in names if not self.sources(name, stored)]

    def check(self, names: list[str], where: str) -> None:
        """Raise :class:`SecretNotSetError` unless every name has a value.

        Args:
            names: Secret names a stage declares.
            where: Which stage(s) need them, for the message.
        """
        missing = self.missing(names)
        if missing:
            raise SecretNotSetError(
                f"Secret(s) {', '.join(missing)} needed by {where} have no value: not in the project's "
                "secrets file (.goldfish/secrets.env) nor in the server's environment.",
                details={"missing": missing, "where": where},
            )

    def resolve(self, names: list[str], where: str) -> dict[str, str]:
        """``{name: value}`` for ``names`` (store first, then the server's environment).

        Raises:
            SecretNotSetError: naming the missing ones (never a value).
        """
        self.check(names, where)
        stored = self.store.values()
        return {name: stored[name] if name in stored else self._environ[name] for name in names}
