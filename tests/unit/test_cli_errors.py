"""Errors as the command line prints them: tool calls become commands, problems become lines."""

from __future__ import annotations

import io

from goldfish.cli.errors import in_cli_terms, render, tool_names
from goldfish.config import parse_config
from goldfish.errors import ConfigError, GoldfishError, ProjectExistsError, VersionNotFoundError
from goldfish.memory.record_models import FinalizationRequiredError

TOOLS = tool_names()


def rendered(error: GoldfishError) -> tuple[int, str]:
    out = io.StringIO()
    code = render(error, out)
    return code, out.getvalue()


def test_a_tool_call_with_arguments_becomes_goldfish_call_with_json_arguments() -> None:
    text = in_cli_terms("Call manage_versions(action='list') to see the workspace's versions.", TOOLS)

    command = 'goldfish call manage_versions --args \'{"action": "list"}\''
    assert text == f"Call `{command}` to see the workspace's versions."


def test_tools_with_a_command_of_their_own_name_that_command() -> None:
    text = in_cli_terms("dataset 'raw' is not registered (register_source); see list_history", TOOLS)

    assert "`goldfish sources add NAME URI --description D`" in text
    assert "`goldfish history`" in text
    assert "register_source" not in text and "list_history" not in text


def test_words_that_are_not_tools_are_left_alone() -> None:
    text = "results_spec.yaml holds primary_metric; run status"

    assert in_cli_terms(text, TOOLS) == text


def test_project_exists_remedy_names_the_flag_not_the_parameter() -> None:
    code, text = rendered(ProjectExistsError("There is a project here."))

    assert code == 2
    assert "--from-existing" in text and "from_existing=true" not in text


def test_gate_error_exits_4_and_lists_a_finalize_command_per_run() -> None:
    error = FinalizationRequiredError(
        "Workspace 'w' has 1 finished run(s) without a recorded outcome.",
        details={
            "runs": [
                {
                    "pipeline_run_id": "prun-0123456789ab",
                    "suggestion": {"primary_metric": "acc", "value": 0.91},
                }
            ]
        },
    )

    code, text = rendered(error)

    assert code == 4
    assert "goldfish finalize prun-0123456789ab --value 0.91" in text
    assert "finalize_run" not in text and "details.runs" not in text


def test_config_problems_are_printed_one_per_line_with_file_and_line() -> None:
    try:
        parse_config("project_name: p\nslots: [w1, w1]\ndefaults:\n  timeout_seconds: -1\n")
    except ConfigError as exc:
        error = exc
    code, text = rendered(error)

    lines = text.splitlines()
    assert code == 2
    assert any(line.startswith("  goldfish.yaml:4 defaults.timeout_seconds:") for line in lines), text
    assert "details.problems" not in text


def test_version_not_found_remedy_becomes_a_call_command() -> None:
    _, text = rendered(VersionNotFoundError("No version v9 in workspace 'w'."))

    assert "goldfish call manage_versions" in text
