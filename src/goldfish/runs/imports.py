"""A stage's code as its cache key sees it: the stage module and every workspace file it imports.

The imports are followed statically (AST) from ``modules/<module>.py`` through the saved version:
``import a.b``, ``from a import b``, relative imports, and ``importlib.import_module("a.b")`` or
``__import__("a.b")`` with a literal name. An import whose first name is no file or folder of
the workspace (``numpy``, ``goldfish.io``) lies outside it; the environment key covers those.
Package ``__init__.py`` files on the way count, because Python runs them.

What the analysis cannot follow makes the stage fall back to the whole ``modules/`` tree, and
the reason is kept so ``inspect_run`` can show it: an import with a computed name, code run by
path (``exec``, ``runpy``, ``spec_from_file_location``, ...), a change to ``sys.path``, or a
workspace file that does not parse.

Files under ``modules/`` that are not Python (a vocabulary, a JSON table) count for every stage:
a module may open them by path, which no import shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from goldfish.errors import GoldfishError
from goldfish.pipelines.code_imports import ImportRef, ParsedFile, parse_source
from goldfish.workspaces.dev_repo import DevRepo

MODULES = "modules"
# Parsed files kept per process (by content id: a version never changes).
_PARSED_LIMIT = 4096
_TREES_LIMIT = 8


@dataclass(frozen=True)
class CodeScope:
    """The files a stage's code key covers.

    Attributes:
        files: Workspace path -> content id of every file in the key.
        fallback: Why the whole ``modules/`` tree stands in for the import graph (None: it does not).
        modules_tree: The ``modules/`` tree id, part of the key only on a fallback.
    """

    files: dict[str, str]
    fallback: str | None = None
    modules_tree: str | None = None

    def key_material(self) -> dict[str, Any]:
        """What goes into the cache key."""
        if self.fallback is not None:
            return {"modules_tree": self.modules_tree, "files": self.files}
        return {"files": self.files}

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for ``inspect_run``."""
        return {
            "scope": "modules_tree" if self.fallback else "imports",
            "files": sorted(self.files),
            "fallback_reason": self.fallback,
        }


class CodeScopes:
    """Works out :class:`CodeScope` s of saved versions, reading each version's listing once."""

    # Both are content-addressed (a version and a file never change), so every executor of the
    # process shares them: a long-lived server parses each file once.
    _trees: ClassVar[dict[str, dict[str, str]]] = {}
    _parsed: ClassVar[dict[str, ParsedFile]] = {}

    def __init__(self, repo: DevRepo):
        self._repo = repo

    def of(self, commit: str, module: str) -> CodeScope:
        """The code scope of stage module ``module`` in version ``commit``."""
        tree = self._trees.get(commit)
        if tree is None:
            tree = self._repo.tree_blobs(commit)
            if len(self._trees) >= _TREES_LIMIT:
                self._trees.clear()
            self._trees[commit] = tree
        return follow(tree, module, self._parse_all, self._modules_tree(commit, tree))

    def _modules_tree(self, commit: str, tree: Mapping[str, str]) -> Callable[[], str | None]:
        return lambda: (
            self._repo.object_id(commit, MODULES)
            if any(path.startswith(f"{MODULES}/") for path in tree)
            else None
        )

    def _parse_all(self, files: Mapping[str, str]) -> dict[str, ParsedFile]:
        """Parse ``files`` (path -> content id), reading the ones not parsed before in one batch."""
        missing = [oid for oid in files.values() if oid not in self._parsed]
        if missing:
            if len(self._parsed) > _PARSED_LIMIT:
                self._parsed.clear()
            for oid, data in self._repo.read_blobs(missing).items():
                self._parsed[oid] = parse_source(data)
        unreadable = ParsedFile((), "it could not be read from the saved version")
        return {path: self._parsed.get(oid, unreadable) for path, oid in files.items()}


class WorkspaceFiles(Protocol):
    """What :func:`plan_scopes` reads: a slot's or a version's files."""

    def all_files(self) -> list[str]:
        """Every file path, sorted."""

    def read_text(self, rel: str) -> str | None:
        """Text of ``rel``, or None."""


def plan_scopes(files: WorkspaceFiles) -> Callable[[str], CodeScope]:
    """Code scopes of stage modules among ``files`` before they are saved (a dry run's plan).

    Only which files (and any fallback) are meaningful here: content ids are left empty.
    """
    tree = dict.fromkeys(files.all_files(), "")

    def parse(batch: Mapping[str, str]) -> dict[str, ParsedFile]:
        return {path: _parse_file(files, path) for path in batch}

    return lambda module: follow(tree, module, parse, lambda: None)


def _parse_file(files: WorkspaceFiles, path: str) -> ParsedFile:
    try:
        text = files.read_text(path)
    except GoldfishError as exc:  # too large, or a link out of the slot
        return ParsedFile((), f"it could not be read ({exc.code})")
    return parse_source((text or "").encode())


def follow(
    tree: Mapping[str, str],
    module: str,
    parse: Callable[[Mapping[str, str]], Mapping[str, ParsedFile]],
    modules_tree: Callable[[], str | None],
) -> CodeScope:
    """The code scope of ``module`` among the files of ``tree`` (path -> content id).

    Args:
        tree: Every file of the version with its content id.
        module: The stage's module name (``train`` for ``modules/train.py``).
        parse: Parses a batch of files (path -> content id) into their imports.
        modules_tree: The ``modules/`` tree id, asked for only on a fallback.
    """
    resolver = _Resolver(tree)
    parts = [MODULES, *module.split(".")]
    data_files = {
        path: oid for path, oid in tree.items() if path.startswith(f"{MODULES}/") and not path.endswith(".py")
    }
    if resolver.own_file(parts) is None:
        reason = f"the stage module {'/'.join(parts)}.py is not in the version"
        return _fallback(data_files, reason, modules_tree)
    start = resolver.module_files(parts)
    seen: dict[str, str] = {}
    frontier = set(start)
    while frontier:
        batch = {path: tree[path] for path in sorted(frontier) if path.endswith(".py")}
        seen.update({path: tree[path] for path in frontier})
        parsed = parse(batch)
        found: set[str] = set()
        for path, result in sorted(parsed.items()):
            if result.opaque is not None:
                return _fallback({**data_files, **seen}, f"{path}: {result.opaque}", modules_tree)
            for ref in result.imports:
                found.update(resolver.resolve(path, ref))
        frontier = found - seen.keys()
    return CodeScope(files=dict(sorted({**data_files, **seen}.items())))


def _fallback(files: dict[str, str], reason: str, modules_tree: Callable[[], str | None]) -> CodeScope:
    """The whole ``modules/`` tree (plus what was followed outside it), with the reason."""
    outside = {path: oid for path, oid in files.items() if not path.startswith(f"{MODULES}/")}
    return CodeScope(files=dict(sorted(outside.items())), fallback=reason, modules_tree=modules_tree())


@dataclass
class _Resolver:
    """Maps an import to the workspace files it runs."""

    tree: Mapping[str, str]
    folders: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.folders = {path.rsplit("/", i)[0] for path in self.tree for i in range(1, path.count("/") + 1)}

    def own_file(self, parts: list[str]) -> str | None:
        """The file of the module or package named ``parts``, if the workspace has it."""
        stem = "/".join(parts)
        return next((path for path in (f"{stem}.py", f"{stem}/__init__.py") if path in self.tree), None)

    def module_files(self, parts: list[str]) -> list[str]:
        """Files Python runs to import the dotted name ``parts`` (package inits on the way included)."""
        found = [self.own_file(parts[:depth]) for depth in range(1, len(parts) + 1)]
        return [path for path in found if path is not None]

    def _exists(self, parts: list[str]) -> bool:
        stem = "/".join(parts)
        return f"{stem}.py" in self.tree or stem in self.folders

    def resolve(self, importer: str, ref: ImportRef) -> list[str]:
        """Workspace files run by ``ref`` written in file ``importer`` (none for outside imports)."""
        package = importer.split("/")[:-1]
        name = [part for part in ref.name.split(".") if part]
        if ref.level:
            up = ref.level - 1
            if up > len(package):
                return []
            base = package[: len(package) - up] + name
        elif name and self._exists(name[:1]):
            base = name  # from the code root, as the stage runs
        elif name and package and self._exists([*package, name[0]]):
            base = package + name  # `import helpers` beside it (the module put its folder on the path)
        else:
            return []  # outside the workspace: the environment key covers it
        files = self.module_files(base)
        for item in ref.names:
            own = self.own_file([*base, item]) if item != "*" else None
            if own is not None:
                files.append(own)
        return files
