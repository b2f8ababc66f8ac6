"""The pre-run review (execution.md step 3b): static checks, then optionally a model's review.

``svs.pre_run_review``: ``off`` records nothing; ``static`` runs :func:`static_review`; ``full``
adds a model's review of the stage code, configs and the diff since the workspace's last
successful version, asking each :class:`ModelReviewer` in turn (the client's own model through
MCP sampling first, then the Anthropic API). It fails open but honestly: the result says who
reviewed, or ``none`` and why. Only static errors can stop a run (``svs.block_on: error``); a
model's opinion is recorded, never enforced.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from goldfish.config import Svs
from goldfish.pipelines.models import PipelineDef
from goldfish.pipelines.validator import FileReader, module_path, pipeline_path
from goldfish.svs.static_review import Level, ReviewFinding, static_review

ReviewedBy = Literal["static", "client_sampling", "anthropic_api", "none"]
MAX_REVIEW_FILE_BYTES = 100 * 1024
MAX_MODEL_TEXT = 20_000
SYSTEM_PROMPT = (
    "You review the code of an ML pipeline stage before it runs, looking for bugs that would waste "
    "the run or silently corrupt its results (data leakage, wrong labels, shapes, NaNs, unused "
    "config, outputs never written). Answer with one JSON object only: "
    '{"findings": [{"level": "error" | "warning", "stage": "<stage or null>", "message": "..."}], '
    '"summary": "<one or two sentences>"}. An empty findings list means you found nothing.'
)


class ModelReviewer(Protocol):
    """A model that can review: the client's own (MCP sampling) or an API."""

    @property
    def name(self) -> ReviewedBy:
        """Who this is, as the review records it."""

    def unavailable(self) -> str | None:
        """Why this reviewer cannot be used now, or None when it can."""

    def ask(self, system: str, prompt: str, timeout: float) -> str:
        """The model's answer to ``prompt`` (raises on failure or timeout)."""


@dataclass
class PreRunReview:
    """What the review found and who did it."""

    reviewed_by: ReviewedBy
    why: str | None = None
    findings: list[ReviewFinding] = field(default_factory=list)
    model_text: str | None = None
    blocked: bool = False

    def as_json(self) -> dict[str, Any]:
        """The review as agents read it."""
        return {
            "reviewed_by": self.reviewed_by,
            "why": self.why,
            "findings": [f.as_json() for f in self.findings],
            "model_text": self.model_text,
            "blocked": self.blocked,
        }


def _cut(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_REVIEW_FILE_BYTES:
        return text
    kept = data[:MAX_REVIEW_FILE_BYTES].decode("utf-8", errors="ignore")
    return kept + f"\n[... cut: the file has {len(data)} bytes, the review reads {MAX_REVIEW_FILE_BYTES}]\n"


def review_files(pipeline: PipelineDef, pipeline_name: str | None, stages: list[str]) -> list[str]:
    """The slot files a review reads: the pipeline, each stage's module and config, requirements."""
    by_name = {stage.name: stage for stage in pipeline.stages}
    rels = [pipeline_path(pipeline_name)]
    for name in stages:
        rels += [module_path(by_name[name]), f"configs/{name}.yaml"]
    return [*rels, "requirements.txt"]


def unified_diff(old: FileReader, new: FileReader, rels: list[str]) -> str:
    """A unified diff of ``rels`` between two versions of the files (empty when nothing changed)."""
    chunks = []
    for rel in rels:
        before, after = old.read_text(rel) or "", new.read_text(rel) or ""
        if before != after:
            lines = difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
            )
            chunks.append("".join(lines))
    return "\n".join(chunks)


def review_prompt(
    files: FileReader,
    pipeline: PipelineDef,
    pipeline_name: str | None,
    stages: list[str],
    configs: dict[str, dict[str, Any]],
    diff: str | None,
    static: list[ReviewFinding],
) -> str:
    """What the model reads: slot files only (each cut at 100 KB), configs, the diff, static findings."""
    rel = pipeline_path(pipeline_name)
    parts = [f"## {rel}\n```yaml\n{_cut(files.read_text(rel) or '')}\n```"]
    by_name = {stage.name: stage for stage in pipeline.stages}
    for name in stages:
        module = module_path(by_name[name])
        parts.append(f"## stage {name}: {module}\n```python\n{_cut(files.read_text(module) or '')}\n```")
        parts.append(
            f"config of {name}:\n```json\n{json.dumps(configs.get(name, {}), indent=1)[:20_000]}\n```"
        )
    if diff:
        parts.append(f"## changes since the last successful version\n```diff\n{_cut(diff)}\n```")
    else:
        parts.append("## changes since the last successful version\n(no earlier successful version)")
    if static:
        parts.append("## static checks found\n" + "\n".join(f"- {f.level}: {f.message}" for f in static))
    return "\n\n".join(parts)


def parse_answer(text: str) -> list[ReviewFinding]:
    """Findings in a model's answer (its JSON object); none when it gave no usable JSON."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if start >= 0 and end > start else {}
    except ValueError:
        return []
    raw = data.get("findings") if isinstance(data, dict) else None
    findings = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            continue
        level: Level = "error" if item.get("level") == "error" else "warning"
        stage = item.get("stage") if isinstance(item.get("stage"), str) else None
        findings.append(ReviewFinding(level, stage, item["message"][:2000], by="model"))
    return findings[:50]


def _model_review(
    reviewers: list[ModelReviewer], prompt: str, timeout: float
) -> tuple[ReviewedBy, str | None, list[ReviewFinding], str | None]:
    """Ask each reviewer in turn; (who, why nobody, findings, text)."""
    reasons = []
    for reviewer in reviewers:
        why_not = reviewer.unavailable()
        if why_not:
            reasons.append(f"{reviewer.name}: {why_not}")
            continue
        try:
            text = reviewer.ask(SYSTEM_PROMPT, prompt, timeout)
        except TimeoutError:
            reasons.append(f"{reviewer.name}: no answer within {timeout:g} s")
            continue
        except Exception as exc:
            reasons.append(f"{reviewer.name}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        return reviewer.name, None, parse_answer(text), text[:MAX_MODEL_TEXT]
    if not reasons:
        reasons.append("no reviewer is configured")
    return "none", "; ".join(reasons), [], None


def pre_run_review(
    settings: Svs,
    files: FileReader,
    pipeline: PipelineDef,
    pipeline_name: str | None,
    stages: list[str],
    configs: dict[str, dict[str, Any]],
    diff: Callable[[], str | None] | None = None,
    reviewers: list[ModelReviewer] | None = None,
) -> PreRunReview | None:
    """The review of ``stages`` as the files are now (None when ``svs.pre_run_review`` is off).

    ``diff`` gives the changes since the last successful version (asked only for a model review).
    """
    if not settings.enabled or settings.pre_run_review == "off":
        return None
    static = static_review(files, pipeline, stages, configs)
    blocked = settings.block_on == "error" and any(f.level == "error" for f in static)
    if settings.pre_run_review == "static":
        return PreRunReview("static", None, static, None, blocked)
    changes = diff() if diff is not None else None
    prompt = review_prompt(files, pipeline, pipeline_name, stages, configs, changes, static)
    who, why, model_findings, text = _model_review(reviewers or [], prompt, settings.review_timeout_seconds)
    return PreRunReview(who, why, static + model_findings, text, blocked)
