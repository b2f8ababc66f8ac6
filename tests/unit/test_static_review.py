"""The static pre-run review over real files: what reading the modules can prove before launch."""

from __future__ import annotations

from pathlib import Path

import yaml

from goldfish.pipelines.models import PipelineDef
from goldfish.svs.review import parse_answer, unified_diff
from goldfish.svs.static_review import static_review
from goldfish.workspaces.files import SlotFiles

PIPELINE = {
    "stages": [
        {
            "name": "prep",
            "inputs": {
                "raw": {"type": "dataset", "dataset": "raw"},
                "extra": {"type": "dataset", "dataset": "x"},
            },
            "outputs": {"features": {"type": "npy"}, "labels": {"type": "csv"}},
        }
    ]
}


def _slot(tmp_path: Path, module: str, **files: str) -> SlotFiles:
    (tmp_path / "modules").mkdir(exist_ok=True)
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE), encoding="utf-8")
    (tmp_path / "modules" / "prep.py").write_text(module, encoding="utf-8")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return SlotFiles(tmp_path)


def _review(files: SlotFiles, config: dict[str, object] | None = None) -> list[tuple[str, str]]:
    pipeline = PipelineDef.model_validate(PIPELINE)
    return [(f.level, f.message) for f in static_review(files, pipeline, ["prep"], {"prep": config or {}})]


def test_module_that_does_not_parse_is_an_error_with_its_line(tmp_path: Path) -> None:
    files = _slot(tmp_path, "from goldfish.io import save_output\n\ndef broken(:\n")
    pipeline = PipelineDef.model_validate(PIPELINE)
    [finding] = static_review(files, pipeline, ["prep"], {})
    assert finding.level == "error" and "does not parse" in finding.message and finding.line == 3


def test_output_never_saved_is_an_error_and_unloaded_input_a_warning(tmp_path: Path) -> None:
    module = (
        "import numpy as np\nfrom goldfish.io import load_input, save_output, get_output_path\n"
        "x = load_input('raw')\nnp.save(get_output_path('features'), x)\n"
    )
    assert _review(_slot(tmp_path, module)) == [
        ("error", "declared output 'labels' is never saved (no save_output/get_output_path('labels'))"),
        ("warning", "declared input 'extra' is never loaded"),
    ]


def test_undeclared_signal_and_missing_config_key_and_unknown_import_are_named(tmp_path: Path) -> None:
    module = (
        "import surely_not_installed_pkg\nfrom goldfish.io import get_config, load_input, save_output\n"
        "cfg = get_config()\nlr = cfg['lr']\nepochs = cfg['epochs']\nbatch = cfg.get('batch', 1)\n"
        "load_input('raw'); load_input('extra'); load_input('other')\n"
        "save_output('features', 1); save_output('labels', [])\n"
    )
    found = _review(_slot(tmp_path, module), {"lr": 0.1})
    assert found == [
        ("error", "uses input 'other', which pipeline.yaml does not declare for this stage"),
        ("warning", "reads get_config()['epochs'], which configs/prep.yaml does not set"),
        ("warning", "imports 'surely_not_installed_pkg', which is not installed and not in requirements.txt"),
    ]


def test_requirement_listed_import_and_helper_module_that_saves_pass(tmp_path: Path) -> None:
    helper = "from goldfish.io import load_input, save_output\ndef main():\n    save_output('features', 1)\n"
    module = (
        "import surely_not_installed_pkg\nfrom modules.helper import main\n"
        "from goldfish.io import load_input, save_output\nmain()\nsave_output('labels', [])\n"
        "load_input('raw'); load_input('extra')\n"
    )
    files = _slot(tmp_path, module, **{"requirements.txt": "surely-not-installed-pkg>=1\n"})
    (tmp_path / "modules" / "helper.py").write_text(helper, encoding="utf-8")
    assert _review(files) == []


def test_names_built_at_run_time_silence_the_never_saved_check(tmp_path: Path) -> None:
    module = (
        "from goldfish.io import save_output\nfor name in ('features', 'labels'):\n    save_output(name, 1)\n"
    )
    assert _review(_slot(tmp_path, module)) == []


def test_model_answer_parsing_takes_the_json_object_and_ignores_prose() -> None:
    finding_json = '{"level": "error", "stage": "prep", "message": "labels leak"}'
    text = 'Sure.\n{"findings": [' + finding_json + ', 3], "summary": "x"}'
    [finding] = parse_answer(text)
    assert (finding.level, finding.stage, finding.message, finding.by) == (
        "error",
        "prep",
        "labels leak",
        "model",
    )
    assert parse_answer("no json at all") == []


def test_unified_diff_shows_only_changed_files(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "a.py").write_text("x = 1\n")
    (tmp_path / "new" / "a.py").write_text("x = 2\n")
    (tmp_path / "old" / "b.py").write_text("same\n")
    (tmp_path / "new" / "b.py").write_text("same\n")
    diff = unified_diff(SlotFiles(tmp_path / "old"), SlotFiles(tmp_path / "new"), ["a.py", "b.py"])
    assert "-x = 1" in diff and "+x = 2" in diff and "b.py" not in diff


def test_keyword_names_count_and_hand_built_output_paths_are_not_second_guessed(tmp_path: Path) -> None:
    module = (
        "import numpy as np\nfrom goldfish.io import load_input, save_output\n"
        "save_output(name='features', value=1)\nload_input(name='raw'); load_input('extra')\n"
        "np.savetxt('/mnt/outputs/labels/data.csv', [1])\n"
    )
    assert _review(_slot(tmp_path, module)) == []
    keyword_only = "from goldfish.io import save_output, load_input\nsave_output(name='features', value=1)\n"
    assert (
        "error",
        "declared output 'labels' is never saved (no save_output/get_output_path('labels'))",
    ) in (_review(_slot(tmp_path, keyword_only)))


def test_module_that_imports_its_code_by_a_computed_name_is_not_said_to_skip_its_outputs(
    tmp_path: Path,
) -> None:
    # The helper that saves every output is loaded at run time: reading the files proves nothing.
    module = "import importlib\n\nkit = importlib.import_module('modules.' + 'kit')\nkit.main()\n"
    helper = (
        "from goldfish.io import load_input, save_output\n\ndef main():\n"
        "    for name in ('raw', 'extra'):\n        load_input(name)\n"
        "    save_output('features', [1.0])\n    save_output('labels', [{'a': 1}])\n"
    )
    assert _review(_slot(tmp_path, module, **{"modules/kit.py": helper})) == []


def test_helper_imported_by_a_literal_import_module_call_is_read_like_an_import_statement(
    tmp_path: Path,
) -> None:
    # The review and the stage cache key read imports the same way: a literal name is followed.
    module = (
        "import importlib\nfrom goldfish.io import load_input, save_output\n\n"
        "kit = importlib.import_module('modules.kit')\nkit.main()\nsave_output('labels', [])\n"
        "load_input('raw'); load_input('extra')\n"
    )
    helper = "from goldfish.io import save_output\n\ndef main():\n    save_output('features', [1.0])\n"
    assert _review(_slot(tmp_path, module, **{"modules/kit.py": helper})) == []
