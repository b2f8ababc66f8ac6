"""goldfish.yaml parsing: defaults, unknown keys with did-you-mean and line numbers, invalid values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from goldfish.config import (
    GoldfishConfig,
    config_json_schema,
    load_config,
    parse_config,
    problems_from_validation,
    render_config,
)
from goldfish.errors import ConfigError
from goldfish.paths import CONFIG_FILENAME
from goldfish.pipelines.models import PipelineDef
from goldfish.yamlfile import load_yaml


def problems_of(text: str, path: str = CONFIG_FILENAME) -> list[dict[str, Any]]:
    """The problems parse_config reports for ``text`` (fails the test when it parses)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    assert caught.value.code == "CONFIG_INVALID"
    assert caught.value.remedy
    problems: list[dict[str, Any]] = caught.value.details["problems"]
    assert problems, "a ConfigError must list at least one problem"
    return problems


def only_problem(text: str) -> dict[str, Any]:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# -- defaults --------------------------------------------------------------------------------


def test_parse_config_when_only_project_name_given_fills_documented_defaults() -> None:
    config = parse_config("project_name: demo\n")
    assert config.project_name == "demo"
    assert config.goal == ""
    assert config.slots == ["w1", "w2", "w3"]
    assert config.dev_repo_path == ".goldfish/dev-repo"
    assert config.workspaces_dir == "workspaces"
    assert config.max_file_size_mb == 100
    assert config.defaults.timeout_seconds == 3600
    assert config.defaults.backend == "auto"
    assert config.defaults.max_parallel_stages == 2
    assert config.storage.backend == "local"
    assert config.storage.gcs is None
    assert config.gce.warm_pool.enabled is False
    assert config.gce.profile_overrides == {}
    assert config.docker.memory == "4g"
    assert config.svs.enabled is True


def test_parse_config_when_sections_given_keeps_their_values() -> None:
    text = (
        "project_name: demo\n"
        "goal: beat the baseline\n"
        "slots: [a, b]\n"
        "defaults:\n"
        "  timeout_seconds: 60\n"
        "  backend: process\n"
        "storage:\n"
        "  backend: gcs\n"
        "  gcs:\n"
        "    bucket: my-bucket\n"
        "gce:\n"
        "  profile_overrides:\n"
        "    h100:\n"
        "      gpu_count: 8\n"
    )
    config = parse_config(text)
    assert config.goal == "beat the baseline"
    assert config.slots == ["a", "b"]
    assert config.defaults.timeout_seconds == 60
    assert config.defaults.backend == "process"
    assert config.storage.gcs is not None
    assert config.storage.gcs.bucket == "my-bucket"
    assert config.storage.gcs.prefix == ""  # the contract: objects at the bucket root unless told
    assert config.gce.profile_overrides["h100"].gpu_count == 8


def test_render_config_when_parsed_back_gives_the_same_config() -> None:
    original = parse_config("project_name: demo\nslots: [x1, x2]\ndocker:\n  cpus: 4.5\n")
    rendered = render_config(original)
    assert parse_config(rendered) == original


def test_render_config_when_all_defaults_writes_only_the_project_name() -> None:
    rendered = render_config(GoldfishConfig(project_name="demo"))
    assert rendered.strip() == "project_name: demo"


# -- unknown keys ----------------------------------------------------------------------------


def test_parse_config_when_top_level_key_misspelled_suggests_it_with_line() -> None:
    problem = only_problem("project_name: demo\ngoal: g\nslotz: [w1]\n")
    assert problem["key"] == "slotz"
    assert problem["line"] == 3
    assert problem["path"] == CONFIG_FILENAME
    assert "unknown key 'slotz'" in problem["message"]
    assert "did you mean 'slots'" in problem["message"]


def test_parse_config_when_nested_key_misspelled_names_full_key_and_its_line() -> None:
    problem = only_problem("project_name: demo\ndefaults:\n  backend: process\n  timeout_secnds: 5\n")
    assert problem["key"] == "defaults.timeout_secnds"
    assert problem["line"] == 4
    assert "did you mean 'timeout_seconds'" in problem["message"]


def test_parse_config_when_key_under_a_named_profile_misspelled_still_suggests() -> None:
    text = "project_name: demo\ngce:\n  profile_overrides:\n    h100:\n      gpu_cont: 2\n"
    problem = only_problem(text)
    assert problem["key"] == "gce.profile_overrides.h100.gpu_cont"
    assert problem["line"] == 5
    assert "did you mean 'gpu_count'" in problem["message"]


def test_parse_config_when_unknown_key_resembles_nothing_gives_no_suggestion() -> None:
    problem = only_problem("project_name: demo\nzzzzqqq: 1\n")
    assert problem["message"] == "unknown key 'zzzzqqq'"
    assert problem["line"] == 2


def test_parse_config_when_several_problems_reports_every_one() -> None:
    text = "project_name: demo\nslotz: [w1]\ndocker:\n  memroy: 2g\ndefaults:\n  timeout_seconds: 0\n"
    problems = problems_of(text)
    by_key = {p["key"]: p for p in problems}
    assert set(by_key) == {"slotz", "docker.memroy", "defaults.timeout_seconds"}
    assert by_key["slotz"]["line"] == 2
    assert by_key["docker.memroy"]["line"] == 4
    assert "did you mean 'memory'" in by_key["docker.memroy"]["message"]
    assert by_key["defaults.timeout_seconds"]["line"] == 6


def test_parse_config_when_error_message_summarizes_problems_and_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("project_name: demo\nslotz: [w1]\n", "/p/goldfish.yaml")
    assert "/p/goldfish.yaml" in caught.value.message
    assert "slotz" in caught.value.message
    assert caught.value.details["problems"][0]["path"] == "/p/goldfish.yaml"


def test_problems_from_validation_when_pipeline_stage_key_misspelled_suggests_with_line() -> None:
    text = (
        "stages:\n"
        "  - name: prep\n"
        "  - name: train\n"
        "    modul: trainer\n"
        "    inputs:\n"
        "      features:\n"
        "        type: npy\n"
        "        schema:\n"
        "          shap: [null, 3]\n"
    )
    with pytest.raises(ValidationError) as caught:
        PipelineDef.model_validate(load_yaml(text, "pipeline.yaml").data)
    problems = {p.key: p for p in problems_from_validation(caught.value, PipelineDef, text, "pipeline.yaml")}
    assert set(problems) == {"stages.1.modul", "stages.1.inputs.features.schema.shap"}
    assert problems["stages.1.modul"].line == 4
    assert "did you mean 'module'" in problems["stages.1.modul"].message
    assert problems["stages.1.inputs.features.schema.shap"].line == 9
    assert "did you mean 'shape'" in problems["stages.1.inputs.features.schema.shap"].message
    assert all(p.path == "pipeline.yaml" for p in problems.values())


# -- invalid values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "fragment"),
    [
        ("[w1, w1]", "unique"),
        ("[w1, 'bad slot']", "bad slot"),
        ("['-w1']", "-w1"),
        ("[]", "at least 1"),
        ("[" + ", ".join(f"s{i}" for i in range(33)) + "]", "at most 32"),
    ],
)
def test_parse_config_when_slots_invalid_reports_slots_key_with_line(slots: str, fragment: str) -> None:
    problem = only_problem(f"project_name: demo\nslots: {slots}\n")
    assert problem["key"].startswith("slots")
    assert problem["line"] == 2
    assert fragment in problem["message"]


@pytest.mark.parametrize("value", ["/abs/repo", "../outside", "a/../../b", "''"])
@pytest.mark.parametrize("key", ["dev_repo_path", "workspaces_dir"])
def test_parse_config_when_project_paths_leave_the_project_refuses(key: str, value: str) -> None:
    problem = only_problem(f"project_name: demo\n{key}: {value}\n")
    assert problem["key"] == key
    assert problem["line"] == 2
    assert "relative path" in problem["message"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("defaults:\n  timeout_seconds: abc\n", "defaults.timeout_seconds"),
        ("defaults:\n  backend: kubernetes\n", "defaults.backend"),
        ("docker:\n  memory: lots\n", "docker.memory"),
        ("max_file_size_mb: 0\n", "max_file_size_mb"),
        ("storage:\n  gcs:\n    bucket: ab\n", "storage.gcs.bucket"),
        (
            "gce:\n  profile_overrides:\n    big:\n      gpu_count: 99\n",
            "gce.profile_overrides.big.gpu_count",
        ),
    ],
)
def test_parse_config_when_value_out_of_range_names_key_and_line(body: str, key: str) -> None:
    problem = only_problem("project_name: demo\n" + body)
    assert problem["key"] == key
    assert problem["line"] == body.count("\n") + 1  # the last line holds the offending key


def test_parse_config_when_project_name_missing_says_it_is_required() -> None:
    problem = only_problem("goal: something\n")
    assert problem["key"] == "project_name"
    assert problem["message"] == "required key 'project_name' is missing"


@pytest.mark.parametrize("name", ["", "-leading-dash", "has/slash", "x" * 65])
def test_parse_config_when_project_name_malformed_refuses(name: str) -> None:
    problem = only_problem(f"project_name: '{name}'\n")
    assert problem["key"] == "project_name"


def test_parse_config_when_yaml_is_broken_reports_document_line() -> None:
    problem = only_problem("project_name: demo\nslots: [w1\ngoal: x\n")
    assert problem["key"] == "(document)"
    assert problem["message"].startswith("not valid YAML")
    assert isinstance(problem["line"], int)
    assert problem["line"] >= 2


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_parse_config_when_document_is_not_a_mapping_refuses(text: str) -> None:
    problem = only_problem(text)
    assert problem["key"] == "(document)"
    assert "mapping" in problem["message"]


# -- files and schema ------------------------------------------------------------------------


def test_load_config_when_file_missing_raises_config_invalid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.code == "CONFIG_INVALID"
    assert str(tmp_path / CONFIG_FILENAME) in caught.value.message


def test_load_config_when_file_valid_reads_it(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text("project_name: from disk\nslots: [only]\n", encoding="utf-8")
    config = load_config(tmp_path)
    assert config.project_name == "from disk"
    assert config.slots == ["only"]


def test_load_config_when_file_invalid_problems_carry_its_path(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text("project_name: demo\nslotz: [w1]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.details["problems"][0]["path"] == str(tmp_path / CONFIG_FILENAME)


def test_config_json_schema_forbids_unknown_keys_and_requires_project_name() -> None:
    schema = config_json_schema()
    assert schema["title"] == CONFIG_FILENAME
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["project_name"]
    assert "slots" in schema["properties"]


def test_goldfish_config_when_assigned_invalid_value_refuses() -> None:
    config = GoldfishConfig(project_name="demo")
    with pytest.raises(ValidationError):
        config.slots = ["dup", "dup"]
