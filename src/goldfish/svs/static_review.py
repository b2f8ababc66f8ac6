"""The static half of the pre-run review: what reading the stage modules (AST) can prove before launch.

Per stage: the module parses; each declared output is saved somewhere (``save_output`` or
``get_output_path`` with its name) and each declared input loaded; every signal name the code
uses is declared; ``get_config()["key"]`` reads keys the stage config has; third-party imports
are installed here or listed in ``requirements.txt``. Names built at run time (a variable passed
to ``save_output``) cannot be proven either way, so they silence the "never saved/loaded" checks
for that stage instead of raising false alarms. Local modules the stage imports from the
workspace are read too (a helper that saves the outputs counts).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from goldfish.pipelines.code_imports import read_tree
from goldfish.pipelines.models import PipelineDef, StageDef
from goldfish.pipelines.validator import FileReader, module_path

Level = Literal["error", "warning"]
SAVERS = frozenset({"save_output", "get_output_path"})
LOADERS = frozenset({"load_input", "get_input_path"})
MAX_LOCAL_MODULES = 50
MAX_FILE_BYTES = 100 * 1024 * 1024  # parse anything a slot may hold; the model review cuts at 100 KB
_OWN_PATHS = re.compile(r"GOLDFISH_(?:OUTPUTS|INPUTS)_DIR|/mnt/(?:outputs|inputs)")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Import names whose distribution is called something else (a requirement under either name counts).
_DISTRIBUTIONS = {"sklearn": "scikit_learn", "cv2": "opencv_python", "PIL": "pillow", "yaml": "pyyaml"}


@dataclass(frozen=True)
class ReviewFinding:
    """One thing the review found: ``error`` can stop the run (``svs.block_on``), ``warning`` never does."""

    level: Level
    stage: str | None
    message: str
    file: str | None = None
    line: int | None = None
    by: Literal["static", "model"] = "static"

    def as_json(self) -> dict[str, Any]:
        """The finding as agents read it."""
        return asdict(self)


@dataclass
class _Usage:
    """Signal names and config keys a stage's code uses."""

    saved: set[str] = field(default_factory=set)
    loaded: set[str] = field(default_factory=set)
    dynamic: bool = False
    config_keys: dict[str, tuple[str, int]] = field(default_factory=dict)
    imports: dict[str, tuple[str, int]] = field(default_factory=dict)
    local: list[str] = field(default_factory=list)


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _config_names(tree: ast.AST) -> set[str]:
    """Variables assigned ``get_config()`` (``cfg = get_config()``)."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _call_name(node.value) == "get_config"
        ):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _is_config(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Call) and _call_name(node) == "get_config"


def _signal_call(node: ast.Call, usage: _Usage) -> None:
    name = _call_name(node)
    if name in SAVERS or name in LOADERS:
        target = usage.saved if name in SAVERS else usage.loaded
        named = [k.value for k in node.keywords if k.arg == "name"]
        first = node.args[0] if node.args else (named[0] if named else None)
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            target.add(first.value)
        else:
            usage.dynamic = True


def _scan(tree: ast.AST, rel: str, usage: _Usage) -> None:
    config_names = _config_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            _signal_call(node, usage)
        elif isinstance(node, ast.Subscript) and _is_config(node.value, config_names):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                usage.config_keys.setdefault(key.value, (rel, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _OWN_PATHS.search(node.value):
            usage.dynamic = True  # the stage builds its own paths: nothing to prove
    read = read_tree(tree)
    if read.opaque is not None:
        usage.dynamic = True  # code it loads at run time may save or load the signals
    for ref in read.imports:
        if ref.level == 0 and ref.name:
            usage.imports.setdefault(ref.name, (rel, ref.line))


def _local_module(files: FileReader, dotted: str) -> str | None:
    """The workspace file an import names, if it is one (``modules.helpers`` -> ``modules/helpers.py``)."""
    base = dotted.replace(".", "/")
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        if files.exists(rel):
            return rel
    return None


class _StageReader:
    """Parses one stage's module and the workspace modules it imports (each once, bounded)."""

    def __init__(self, files: FileReader):
        self.files = files
        self.findings: list[ReviewFinding] = []

    def read(self, stage: StageDef) -> _Usage | None:
        usage = _Usage()
        queue, seen = [module_path(stage)], set[str]()
        while queue and len(seen) < MAX_LOCAL_MODULES:
            rel = queue.pop(0)
            if rel in seen:
                continue
            seen.add(rel)
            text = self.files.read_text(rel)
            if text is None:
                continue
            try:
                tree = ast.parse(text[:MAX_FILE_BYTES], filename=rel)
            except SyntaxError as exc:
                message = f"{rel} does not parse: {exc.msg}"
                self.findings.append(ReviewFinding("error", stage.name, message, rel, exc.lineno))
                return None if rel == module_path(stage) else usage
            _scan(tree, rel, usage)
            for dotted in list(usage.imports):
                local = _local_module(self.files, dotted)
                if local is not None:
                    usage.local.append(dotted)
                    queue.append(local)
        return usage


def _requirement_names(files: FileReader) -> set[str]:
    text = files.read_text("requirements.txt") or ""
    names = set()
    for line in text.splitlines():
        match = _REQUIREMENT_NAME.match(line)
        if match and not line.lstrip().startswith(("#", "-")):
            names.add(match.group(1).lower().replace("-", "_").replace(".", "_"))
    return names


def _third_party(top: str, files: FileReader) -> bool:
    if top in sys.stdlib_module_names or top in ("goldfish", "modules", "__future__"):
        return False
    return _local_module(files, top) is None


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _judge_stage(
    stage: StageDef, usage: _Usage, config: dict[str, Any], requirements: set[str], files: FileReader
) -> list[ReviewFinding]:
    rel = module_path(stage)
    found: list[ReviewFinding] = []
    for name in sorted((usage.saved - set(stage.outputs)) | (usage.loaded - set(stage.inputs))):
        kind = "output" if name in usage.saved else "input"
        message = f"uses {kind} '{name}', which pipeline.yaml does not declare for this stage"
        found.append(ReviewFinding("error", stage.name, message, rel))
    if not usage.dynamic:
        for name in sorted(set(stage.outputs) - usage.saved):
            message = f"declared output '{name}' is never saved (no save_output/get_output_path('{name}'))"
            found.append(ReviewFinding("error", stage.name, message, rel))
        for name in sorted(set(stage.inputs) - usage.loaded):
            message = f"declared input '{name}' is never loaded"
            found.append(ReviewFinding("warning", stage.name, message, rel))
    for key, (where, line) in sorted(usage.config_keys.items()):
        if key not in config:
            message = f"reads get_config()['{key}'], which configs/{stage.name}.yaml does not set"
            found.append(ReviewFinding("warning", stage.name, message, where, line))
    for dotted, (where, line) in sorted(usage.imports.items()):
        top = dotted.split(".")[0]
        if not _third_party(top, files):
            continue
        listed = top.lower() in requirements or _DISTRIBUTIONS.get(top, "") in requirements
        if not listed and not _installed(top):
            message = f"imports '{top}', which is not installed and not in requirements.txt"
            found.append(ReviewFinding("warning", stage.name, message, where, line))
    return found


def static_review(
    files: FileReader, pipeline: PipelineDef, stages: list[str], configs: dict[str, dict[str, Any]]
) -> list[ReviewFinding]:
    """Findings of the static checks for the ``stages`` about to run (``configs``: effective, per stage)."""
    reader = _StageReader(files)
    requirements = _requirement_names(files)
    findings: list[ReviewFinding] = []
    by_name = {stage.name: stage for stage in pipeline.stages}
    for name in stages:
        stage = by_name[name]
        usage = reader.read(stage)
        if usage is not None:
            findings += _judge_stage(stage, usage, configs.get(name, {}), requirements, files)
    return reader.findings + findings
