"""The one way Goldfish reads YAML: bounded in size, nesting and alias expansion, no duplicate keys.

Every YAML file an agent can write (goldfish.yaml, pipeline.yaml, pipelines/*.yaml,
configs/*.yaml, results specs) is read through :func:`load_yaml`. A file over the limits is
refused while it is parsed, before anything expands it: a few hundred bytes of nested aliases
(a "billion laughs" bomb) or thousands of nested brackets answer with ``YAML_TOO_COMPLEX`` in
bounded time and memory instead of exhausting the server. A key written twice in one mapping
(where YAML silently keeps the last) answers ``DUPLICATE_KEY`` with both lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from goldfish.errors import GoldfishError

MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 100
# Nodes counted with every alias expanded: what a reader of the loaded value would walk.
MAX_YAML_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFileError(GoldfishError):
    """A YAML file Goldfish refuses to read; ``details`` has ``path`` and ``line``."""


class YamlTooComplexError(YamlFileError):
    """A YAML file is too large, too deeply nested, or expands (through aliases) too far."""

    code = "YAML_TOO_COMPLEX"
    default_remedy = (
        f"Simplify the file named in details: under {MAX_YAML_BYTES // 1024} KiB, at most "
        f"{MAX_YAML_DEPTH} levels deep and {MAX_YAML_NODES} values with aliases expanded."
    )


class DuplicateKeyError(YamlFileError):
    """A mapping in a YAML file has the same key twice."""

    code = "DUPLICATE_KEY"
    default_remedy = "Keep one of the two entries at the lines in details and remove the other."


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and expanded nodes while composing and rejects duplicate keys."""

    def __init__(self, stream: str, path: str):
        super().__init__(stream)
        self.path = path
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def _too_complex(self, what: str, mark: Any, limit: int) -> YamlTooComplexError:
        return YamlTooComplexError(
            f"{self.path} is too complex to read: {what} (line {_line(mark)}).",
            details={"path": self.path, "line": _line(mark), "limit": limit},
        )

    def _count(self, nodes: int, mark: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_YAML_NODES:
            raise self._too_complex(
                f"more than {MAX_YAML_NODES} values with aliases expanded", mark, MAX_YAML_NODES
            )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise self._too_complex(
                f"nested more than {MAX_YAML_DEPTH} levels", event.start_mark, MAX_YAML_DEPTH
            )
        before = self._expanded
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1, event.start_mark)
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int | None] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = _line(key_node.start_mark)
                if key in seen:
                    first = seen[key]
                    raise DuplicateKeyError(
                        f"{self.path}: key '{key}' appears twice (lines {first} and {line}).",
                        details={
                            "path": self.path,
                            "key": str(key),
                            "lines": [seen[key], line],
                            "line": line,
                        },
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML document: its value and its node tree (for line numbers)."""

    data: Any
    root: yaml.Node | None

    def key_lines(self) -> dict[tuple[str, ...], int]:
        """Map each key path (mapping keys and list indexes) to its 1-based line.

        A node shared through an alias is walked once, so the walk costs what the file holds.
        """
        lines: dict[tuple[str, ...], int] = {}
        visited: set[int] = set()

        def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
            if id(node) in visited:
                return
            visited.add(id(node))
            children: list[tuple[str, yaml.Node, yaml.Node]] = []
            if isinstance(node, yaml.MappingNode):
                children = [(str(k.value), k, v) for k, v in node.value]
            elif isinstance(node, yaml.SequenceNode):
                children = [(str(i), item, item) for i, item in enumerate(node.value)]
            for part, marker, child in children:
                key = (*prefix, part)
                lines[key] = marker.start_mark.line + 1  # keys merged in (<<) come first: written ones win
                walk(child, key)

        if self.root is not None:
            walk(self.root, ())
        return lines


def load_yaml(text: str, path: str) -> YamlDocument:
    """Parse one YAML document within the limits.

    Args:
        text: The file's text.
        path: The file's name, used in error messages.

    Raises:
        YamlTooComplexError: over the size, depth or expansion limit.
        DuplicateKeyError: a mapping repeats a key.
        yaml.YAMLError: the text is not valid YAML (callers report it with its line).
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_YAML_BYTES:
        raise YamlTooComplexError(
            f"{path} is too large to read: {size} bytes (the limit is {MAX_YAML_BYTES}).",
            details={"path": path, "size": size, "limit": MAX_YAML_BYTES},
        )
    loader = _BoundedLoader(text, path)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return YamlDocument(data=data, root=root)
