"""Stage dependency graph: topological order, cycles, upstream and downstream closures."""

from __future__ import annotations

from collections.abc import Iterable

from goldfish.pipelines.models import PipelineDef


def dependencies(pipeline: PipelineDef) -> dict[str, list[str]]:
    """Stage name → the stages it reads from (in declaration order, no duplicates)."""
    deps: dict[str, list[str]] = {}
    for stage in pipeline.stages:
        producers = [s.from_stage for s in stage.inputs.values() if s.from_stage is not None]
        deps[stage.name] = list(dict.fromkeys(producers))
    return deps


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]`` when the graph has one, else None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for nxt in deps.get(node, []):
            if nxt not in color:
                continue
            if color[nxt] == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if color[nxt] == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for node in deps:
        if color[node] == white:
            cycle = visit(node)
            if cycle:
                return list(reversed(cycle))
    return None


def topological_order(deps: dict[str, list[str]]) -> list[str]:
    """Stages with every producer before its consumers, ties in declaration order."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(deps)
    while remaining:
        ready = [s for s in remaining if all(d in placed or d not in deps for d in deps[s])]
        if not ready:
            raise ValueError(f"cycle among {remaining}")
        for stage in ready:
            order.append(stage)
            placed.add(stage)
        remaining = [s for s in remaining if s not in placed]
    return order


def downstream_closure(deps: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` plus every stage that depends on them, directly or not."""
    consumers: dict[str, list[str]] = {name: [] for name in deps}
    for name, producers in deps.items():
        for producer in producers:
            consumers.setdefault(producer, []).append(name)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(consumers.get(node, []))
    return seen
