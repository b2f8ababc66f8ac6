"""pre_run_review: what the static pre-run review adds to ``run`` on a 3-stage, 50-module workspace.

Each of the three stages imports its share of 47 helper modules (about 60 lines each, with
numpy/json imports, config reads, and a helper that saves an output), so the review parses
every module a stage reaches. ``static_review_ms`` times ``pre_run_review`` itself with the
inputs ``run`` gives it (slot files, the parsed pipeline, the stage configs): that is the time
the review adds. ``dry_run_ms`` is the whole ``run(dry_run=true)`` (validate, plan, review) for scale.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.harness import Figure, median, temp_dir, time_ms
from bench.pipelines import new_workspace, open_project, write_pipeline

NAME = "pre_run_review"
STAGES = ("prepare", "train", "evaluate")
HELPERS = 47
FULL_REPS, QUICK_REPS = 30, 3

PIPELINE = """name: review
stages:
  - name: prepare
    outputs: {features: {type: npy}}
  - name: train
    inputs: {features: {type: npy, from_stage: prepare}}
    outputs: {model: {type: npy}}
  - name: evaluate
    inputs: {model: {type: npy, from_stage: train}}
    outputs: {scores: {type: csv}}
"""
SIGNALS = {"prepare": ("features", None), "train": ("model", "features"), "evaluate": ("scores", "model")}


def _helper(index: int) -> str:
    body = "".join(
        f"def step_{index}_{n}(values, scale={n}):\n    total = 0.0\n    for value in values:\n"
        f"        total += math.sqrt(abs(value)) * scale\n"
        f"    return json.dumps({{'step': {n}, 'total': total}})\n\n"
        for n in range(8)
    )
    return f"import json\nimport math\n\nimport numpy as np\nfrom goldfish.io import get_config\n\n{body}"


def _stage_module(stage: str, helpers: list[int]) -> str:
    output, source = SIGNALS[stage]
    imports = "".join(f"from modules.helper_{i} import step_{i}_0\n" for i in helpers)
    calls = "".join(f"log.append(step_{i}_0([1.0, 2.0]))\n" for i in helpers)
    load = f"x = load_input('{source}')\n" if source else "x = np.zeros((4, 4))\n"
    save = (
        f"save_output('{output}', [{{'score': 1.0}}])\n"
        if output == "scores"
        else f"save_output('{output}', x)\n"
    )
    return (
        "import numpy as np\nfrom goldfish.io import get_config, load_input, save_output\n"
        f"{imports}\ncfg = get_config()\nrate = cfg['rate']\nlog = []\n{calls}{load}{save}"
    )


def run(quick: bool) -> Iterator[Figure]:
    """Milliseconds the static review adds to run, and the whole dry run."""
    from goldfish.pipelines.validator import load_pipeline
    from goldfish.svs.review import pre_run_review
    from goldfish.workspaces.files import SlotFiles

    reps = QUICK_REPS if quick else FULL_REPS
    with temp_dir(NAME) as workdir:
        context = open_project(workdir / "project", "prerunreview")
        try:
            slot = new_workspace(context, "review", "w1")
            shares = [list(range(i, HELPERS, len(STAGES))) for i in range(len(STAGES))]
            modules = {
                stage: _stage_module(stage, share) for stage, share in zip(STAGES, shares, strict=True)
            }
            modules |= {f"helper_{i}": _helper(i) for i in range(HELPERS)}
            write_pipeline(slot, PIPELINE, modules, {stage: "rate: 0.1\n" for stage in STAGES})
            modules_count = len(list((slot / "modules").glob("*.py")))
            files = SlotFiles(slot)
            pipeline = load_pipeline(files, None, None)
            configs = {stage: {"rate": 0.1} for stage in STAGES}
            review = pre_run_review(context.config.svs, files, pipeline, None, list(STAGES), configs)
            if review is None or review.findings:
                raise RuntimeError(f"the benchmark workspace should review clean: {review}")
            settings = context.config.svs
            static = [
                time_ms(lambda: pre_run_review(settings, files, pipeline, None, list(STAGES), configs))
                for _ in range(reps)
            ]
            request = context.run_service.build_request(
                "review",
                None,
                None,
                None,
                None,
                "benchmarking the pre-run review",
                None,
                None,
                True,
                True,
                None,
            )
            dry = [time_ms(lambda: context.run_service.submit(request)) for _ in range(reps)]
        finally:
            context.close()
    yield Figure(NAME, "modules", modules_count, "count", 1)
    yield Figure(NAME, "static_review_ms", median(static), "ms", reps)
    yield Figure(NAME, "dry_run_ms", median(dry), "ms", reps)
