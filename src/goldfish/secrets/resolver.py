"""Where a stage's secret values come from: the secret store, the server's environment, Secret Manager.

Values are looked up when a stage launches and go only into that stage's environment (on GCE,
into its job-scoped ``secrets.json``): never into the database, the audit trail, a manifest,
STATE.md, instance metadata, ``job.json`` or a container label.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Literal

from goldfish.errors import GoldfishError
from goldfish.secrets.store import SecretStore

Source = Literal["project secrets file", "server environment", "Secret Manager"]
CloudLookup = Callable[[str], str | None]


class SecretStoreUnavailableError(GoldfishError):
    """A stage names secrets, but the process running it was given no secret store."""

    code = "SECRET_STORE_UNAVAILABLE"
    default_remedy = (
        "Run the stage through the Goldfish server or `goldfish run`, which open the project's secrets."
    )


class SecretNotSetError(GoldfishError):
    """A stage names a secret that has no value anywhere."""

    code = "SECRET_NOT_SET"
    default_remedy = (
        "Set it with `goldfish secrets set NAME` (stored in .goldfish/secrets.env, never versioned) "
        "or export NAME in the environment the Goldfish server starts in, then run again."
    )


class SecretResolver:
    """Looks secret values up by name: the secret store, the server's environment, Secret Manager.

    Secret Manager (``cloud``, set when ``gce.secret_manager`` is on) is asked for GCE stages only.
    """

    def __init__(
        self,
        store: SecretStore,
        environ: Mapping[str, str] | None = None,
        cloud: CloudLookup | None = None,
    ):
        self.store = store
        self._environ = environ if environ is not None else os.environ
        self._cloud = cloud

    def _found(self, names: list[str], cloud: bool, every: bool) -> dict[str, list[tuple[Source, str]]]:
        """Per name, the places holding a value (all of them with ``every``, else the first)."""
        stored = self.store.values()
        found: dict[str, list[tuple[Source, str]]] = {}
        for name in names:
            places: list[tuple[Source, str]] = []
            if name in stored:
                places.append(("project secrets file", stored[name]))
            if self._environ.get(name) and (every or not places):
                places.append(("server environment", self._environ[name]))
            if cloud and self._cloud is not None and (every or not places):
                value = self._cloud(name)
                if value:
                    places.append(("Secret Manager", value))
            found[name] = places
        return found

    def sources(self, names: list[str]) -> dict[str, list[Source]]:
        """Where each of ``names`` has a value (Secret Manager too, when it is configured)."""
        return {
            name: [where for where, _ in places] for name, places in self._found(names, True, True).items()
        }

    def resolve(self, names: list[str], where: str, *, cloud: bool = False) -> dict[str, str]:
        """``{name: value}`` for ``names``: store, then server environment, then (``cloud``) Secret Manager.

        Raises:
            SecretNotSetError: naming the missing ones (never a value).
        """
        found = self._found(names, cloud, False)
        missing = [name for name, places in found.items() if not places]
        if missing:
            also = " nor in Secret Manager" if cloud and self._cloud is not None else ""
            raise SecretNotSetError(
                f"Secret(s) {', '.join(missing)} needed by {where} have no value: not in the project's "
                f"secrets file (.goldfish/secrets.env), not in the server's environment{also}.",
                details={"missing": missing, "where": where},
            )
        return {name: places[0][1] for name, places in found.items()}

    def known_values(self, names: list[str], *, cloud: bool = False) -> dict[str, str]:
        """The values of those of ``names`` that have one (never raises for a missing one)."""
        found = self._found(names, cloud, False)
        return {name: places[0][1] for name, places in found.items() if places}

    def check(self, names: list[str], where: str, *, cloud: bool = False) -> None:
        """Raise :class:`SecretNotSetError` unless every name has a value."""
        self.resolve(names, where, cloud=cloud)
