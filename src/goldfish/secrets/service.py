"""``list_secrets`` and ``goldfish secrets``: names, where each has a value, which stages use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from goldfish.config import GoldfishConfig
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.secrets.models import SecretInfo, SecretListing
from goldfish.secrets.resolver import SecretResolver
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.files import SlotFiles
from goldfish.yamlfile import YamlFileError, load_yaml

MAX_CONFIG_BYTES = 256 * 1024
EVERY_STAGE = "every stage (defaults.secrets)"


def _declared(text: str) -> list[str]:
    try:
        data: Any = load_yaml(text, "stage config").data
    except (yaml.YAMLError, YamlFileError):
        return []
    names = data.get("secrets") if isinstance(data, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


class SecretService:
    """Lists secret names from the store, goldfish.yaml and the mounted workspaces' stage configs."""

    def __init__(
        self,
        resolver: SecretResolver,
        config: GoldfishConfig,
        core: WorkspaceCore | None,
        rows: WorkspaceRepository | None = None,
    ):
        self._resolver = resolver
        self._config = config
        self._core = core
        self._rows = rows

    def _uses(self) -> dict[str, list[str]]:
        uses: dict[str, list[str]] = {name: [EVERY_STAGE] for name in self._config.defaults.secrets}
        if self._core is None or self._rows is None:
            return uses
        for mount in self._rows.mounts():
            slot = self._core.slot_path(mount.slot)
            configs = slot / "configs"
            if configs.is_symlink() or not configs.is_dir():
                continue
            files = SlotFiles(slot)
            for path in sorted(configs.glob("*.yaml")):
                if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
                    continue
                text = files.read_text(str(Path("configs") / path.name)) or ""
                for name in _declared(text):
                    uses.setdefault(name, []).append(f"{mount.workspace}:{path.stem}")
        return uses

    def listing(self) -> SecretListing:
        """Every secret name stored or used, where it is set and who uses it (no values)."""
        uses = self._uses()
        names = sorted(set(self._resolver.store.names()) | set(uses))
        where = self._resolver.sources(names)
        infos = [
            SecretInfo(name=name, set_in=list(where[name]), used_by=uses.get(name, [])) for name in names
        ]
        return SecretListing(secrets=infos, total=len(infos))
