"""Parse and validate pipeline.yaml: every problem with its file, line, stage and a did-you-mean."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from goldfish.config import key_lines, problems_from_validation, yaml_problem
from goldfish.errors import PipelineInvalidError, suggestion_suffix
from goldfish.pipelines.checks import rule_problems
from goldfish.pipelines.graph import dependencies, find_cycle
from goldfish.pipelines.models import PipelineDef, StageDef
from goldfish.problems import ConfigProblem
from goldfish.yamlfile import load_yaml

DEFAULT_PIPELINE = "pipeline.yaml"


class FileReader(Protocol):
    """Read access to a workspace's files (a slot folder or a saved version)."""

    def read_text(self, rel: str) -> str | None:
        """Text of ``rel``, or None when it does not exist."""

    def exists(self, rel: str) -> bool:
        """True when ``rel`` is a file."""

    def names(self, folder: str, suffix: str) -> list[str]:
        """Names of the files directly in ``folder`` ending in ``suffix``, sorted."""


def pipeline_path(name: str | None) -> str:
    """The file of the default pipeline or of ``pipelines/<name>.yaml``."""
    return DEFAULT_PIPELINE if not name else f"pipelines/{name}.yaml"


def module_path(stage: StageDef) -> str:
    """The module file a stage runs."""
    return f"modules/{(stage.module or stage.name).replace('.', '/')}.py"


class _Checker:
    """Collects problems of one pipeline file."""

    def __init__(self, rel: str, text: str, pipeline: PipelineDef):
        self.rel = rel
        self.pipeline = pipeline
        self.lines = key_lines(text)
        self.problems: list[ConfigProblem] = []
        self.index = {stage.name: i for i, stage in enumerate(pipeline.stages)}

    def add(self, stage: str | None, key: tuple[str, ...], message: str) -> None:
        line = None
        for end in range(len(key), 0, -1):
            line = self.lines.get(key[:end])
            if line is not None:
                break
        prefix = f"stage '{stage}': " if stage else ""
        self.problems.append(
            ConfigProblem(path=self.rel, line=line, key=".".join(key), message=prefix + message, stage=stage)
        )

    def duplicates(self) -> None:
        seen: set[str] = set()
        for i, stage in enumerate(self.pipeline.stages):
            if stage.name in seen:
                self.add(stage.name, ("stages", str(i), "name"), "duplicate stage name")
            seen.add(stage.name)

    def inputs(self, sources: Collection[str] | None) -> None:
        by_name = {stage.name: stage for stage in self.pipeline.stages}
        for i, stage in enumerate(self.pipeline.stages):
            for name, signal in stage.inputs.items():
                key = ("stages", str(i), "inputs", name)
                if signal.type == "dataset":
                    self._dataset_input(stage.name, key, signal.dataset, signal.from_stage, sources)
                    continue
                if signal.from_stage is None:
                    self.add(stage.name, key, f"input '{name}' needs from_stage (or type dataset)")
                    continue
                producer = by_name.get(signal.from_stage)
                if producer is None:
                    hint = suggestion_suffix(signal.from_stage, by_name)
                    self.add(
                        stage.name,
                        key,
                        f"input '{name}': from_stage '{signal.from_stage}' does not exist{hint}",
                    )
                    continue
                if producer.name == stage.name:
                    self.add(stage.name, key, f"input '{name}' reads from its own stage")
                    continue
                self._producer_signal(stage.name, key, name, producer, signal.signal or name, signal.type)

    def _dataset_input(
        self,
        stage: str,
        key: tuple[str, ...],
        dataset: str | None,
        from_stage: str | None,
        sources: Collection[str] | None,
    ) -> None:
        if from_stage is not None:
            self.add(stage, key, f"input '{key[-1]}' of type dataset cannot have from_stage")
        if dataset is None:
            self.add(stage, key, f"input '{key[-1]}' of type dataset needs dataset: <registered source>")
        elif sources is not None and dataset not in sources:
            hint = suggestion_suffix(dataset, sources)
            self.add(stage, key, f"dataset '{dataset}' is not registered{hint} (register_source)")

    def _producer_signal(
        self, stage: str, key: tuple[str, ...], name: str, producer: StageDef, signal: str, kind: str
    ) -> None:
        output = producer.outputs.get(signal)
        if output is None:
            hint = suggestion_suffix(signal, producer.outputs)
            self.add(stage, key, f"input '{name}': stage '{producer.name}' has no output '{signal}'{hint}")
        elif output.type != kind:
            self.add(
                stage,
                key,
                f"input '{name}' expects {kind} but '{producer.name}.{signal}' is {output.type}",
            )

    def modules(self, files: FileReader) -> None:
        for i, stage in enumerate(self.pipeline.stages):
            path = module_path(stage)
            if not files.exists(path):
                self.add(
                    stage.name,
                    ("stages", str(i), "module" if stage.module else "name"),
                    f"module file {path} does not exist",
                )

    def checks(self) -> None:
        for i, stage in enumerate(self.pipeline.stages):
            for signal, output in stage.outputs.items():
                for name, rule in (output.checks or {}).items():
                    for problem in rule_problems(output.type, name, rule):
                        self.add(stage.name, ("stages", str(i), "outputs", signal, "checks", name), problem)

    def cycles(self) -> None:
        cycle = find_cycle(dependencies(self.pipeline))
        if cycle:
            first = cycle[0]
            self.add(first, ("stages", str(self.index.get(first, 0))), f"cycle: {' -> '.join(cycle)}")


def parse_pipeline(text: str, rel: str) -> tuple[PipelineDef | None, list[ConfigProblem]]:
    """Parse pipeline YAML into the model, or return its structural problems.

    Raises:
        YamlFileError: the file is too complex to read or repeats a key (see ``load_yaml``).
    """
    try:
        data: Any = load_yaml(text, rel).data
    except yaml.YAMLError as exc:
        return None, [yaml_problem(exc, rel)]
    if not isinstance(data, dict):
        return None, [
            ConfigProblem(path=rel, line=1, key="(document)", message="must be a mapping with stages")
        ]
    try:
        return PipelineDef.model_validate(data), []
    except ValidationError as exc:
        problems = problems_from_validation(exc, PipelineDef, text, rel)
        raw_stages = data.get("stages")
        stages: list[Any] = raw_stages if isinstance(raw_stages, list) else []
        for problem in problems:
            parts = problem.key.split(".")
            if len(parts) > 1 and parts[0] == "stages" and parts[1].isdigit() and int(parts[1]) < len(stages):
                entry = stages[int(parts[1])]
                problem.stage = entry.get("name") if isinstance(entry, dict) else None
        return None, problems


def check_pipeline(
    files: FileReader,
    name: str | None = None,
    sources: Collection[str] | None = None,
    extra: Callable[[PipelineDef], list[ConfigProblem]] | None = None,
) -> tuple[PipelineDef | None, list[ConfigProblem]]:
    """Parse and validate a workspace's pipeline; ``sources`` (registered names) enables the dataset check."""
    rel = pipeline_path(name)
    text = files.read_text(rel)
    if text is None:
        return None, [ConfigProblem(path=rel, line=None, key="(file)", message=f"{rel} does not exist")]
    pipeline, problems = parse_pipeline(text, rel)
    if pipeline is None:
        return None, problems
    checker = _Checker(rel, text, pipeline)
    checker.duplicates()
    checker.inputs(sources)
    checker.modules(files)
    checker.checks()
    checker.cycles()
    problems = checker.problems + (extra(pipeline) if extra else [])
    return (pipeline if not problems else None), problems


def load_pipeline(files: FileReader, name: str | None, sources: Collection[str] | None) -> PipelineDef:
    """The validated pipeline.

    Raises:
        PipelineInvalidError: listing every problem (file, line, stage, message).
    """
    pipeline, problems = check_pipeline(files, name, sources)
    if pipeline is None:
        summary = "; ".join(p.message for p in problems[:5])
        raise PipelineInvalidError(
            f"{pipeline_path(name)} has {len(problems)} problem(s): {summary}",
            details={"problems": [p.model_dump() for p in problems]},
        )
    return pipeline
