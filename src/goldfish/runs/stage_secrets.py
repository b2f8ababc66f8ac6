"""A stage's secret values as the executor needs them: for its spec, and to mask logs and metrics."""

from __future__ import annotations

from collections.abc import Callable

from goldfish.db.runs import StageRunRow
from goldfish.io.masking import Masker
from goldfish.secrets.resolver import SecretResolver, SecretStoreUnavailableError


class StageSecrets:
    """Looks a stage's secrets up through the resolver (known values once per run and process)."""

    def __init__(self, resolver: SecretResolver | None):
        self._resolver = resolver
        self._known: dict[str, list[str]] = {}

    def known(self, run: StageRunRow) -> list[str]:
        """The stage's secret values as far as they are known (what to mask)."""
        if not run.secrets or self._resolver is None:
            return []
        if run.id not in self._known:
            found = self._resolver.known_values(run.secrets, cloud=run.backend == "gce")
            self._known[run.id] = list(found.values())
        return self._known[run.id]

    def masker(self, run: StageRunRow) -> Callable[[str], str] | None:
        """Masks the stage's secret values in metric names (a stage may bypass goldfish.io)."""
        values = self.known(run)
        return Masker(values).mask_text if values else None

    def resolve(self, run: StageRunRow) -> dict[str, str]:
        """The stage's secret values, looked up now (raises SECRET_NOT_SET when one has none)."""
        if not run.secrets:
            return {}
        if self._resolver is None:
            raise SecretStoreUnavailableError(
                "This server has no secret store to read the stage's secrets from."
            )
        return self._resolver.resolve(run.secrets, f"stage '{run.stage}'", cloud=run.backend == "gce")
