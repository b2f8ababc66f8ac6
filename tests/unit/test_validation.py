"""Validation helpers: names, versions, reasons, free text, paging, paths and redaction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from goldfish.errors import (
    GoldfishError,
    InvalidArgumentError,
    InvalidPathError,
    ReasonRequiredError,
    did_you_mean,
    suggestion_suffix,
)
from goldfish.validation import (
    MAX_LIMIT,
    MAX_REASON_LENGTH,
    REDACTED,
    is_secret_name,
    page,
    path_inside,
    project_name,
    reason,
    redact,
    slot_name,
    tag_name,
    text,
    version_number,
    workspace_name,
)

# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "A", "0", "baseline", "lr-sweep_2", "x" * 64, "9lives"])
def test_workspace_name_when_well_formed_returns_it(name: str) -> None:
    assert workspace_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-lead", "_lead", "has space", "dot.ted", "x" * 65, "../up", "a/b", "ünïcode", "a\x00b", "tab\t"],
)
def test_workspace_name_when_malformed_raises_invalid_argument(name: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        workspace_name(name)
    error = caught.value
    assert error.code == "INVALID_ARGUMENT"
    assert error.details["field"] == "workspace"
    assert "pattern" in error.details
    assert error.remedy


@pytest.mark.parametrize("value", [None, 3, 3.5, ["a"], {"a": 1}, True])
def test_workspace_name_when_not_text_raises_invalid_argument(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        workspace_name(value)


def test_workspace_name_when_field_named_reports_that_field() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        workspace_name("bad name", "from_workspace")
    assert caught.value.details["field"] == "from_workspace"
    assert "from_workspace" in caught.value.message


def test_workspace_name_when_value_huge_previews_it_briefly() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        workspace_name("!" * 10_000)
    assert len(caught.value.details["value"]) < 100
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("tag", ["best", "v1.2", "release_1-rc.3", "x" * 64])
def test_tag_name_when_well_formed_returns_it(tag: str) -> None:
    assert tag_name(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "has space", "x" * 65, "a/b", "a:b"])
def test_tag_name_when_malformed_raises_invalid_argument(tag: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        tag_name(tag)
    assert caught.value.details["field"] == "tag"


@pytest.mark.parametrize("slot", ["w1", "slot_a", "S-2", "x" * 32])
def test_slot_name_when_well_formed_returns_it(slot: str) -> None:
    assert slot_name(slot) == slot


@pytest.mark.parametrize("slot", ["", "x" * 33, "w 1", "../w1", "w1/", "-w"])
def test_slot_name_when_malformed_raises_invalid_argument(slot: str) -> None:
    with pytest.raises(InvalidArgumentError):
        slot_name(slot)


@pytest.mark.parametrize("name", ["My Project", "proj.v2", "a", "x" * 64])
def test_project_name_when_well_formed_returns_it(name: str) -> None:
    assert project_name(name) == name


@pytest.mark.parametrize("name", ["", " leading space", "x" * 65, "semi;colon", "new\nline"])
def test_project_name_when_malformed_raises_invalid_argument(name: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        project_name(name)
    assert caught.value.details["field"] == "project_name"


# -- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"), [("v1", 1), ("v42", 42), ("7", 7), (3, 3), ("v999999999", 999999999)]
)
def test_version_number_when_well_formed_returns_integer(value: object, number: int) -> None:
    assert version_number(value) == number


@pytest.mark.parametrize(
    "value",
    ["v0", "0", "v", "", "vv1", "v01", "V1", "v1.0", "x3", "v-1", -1, 0, True, 3.0, None, "v1000000000"],
)
def test_version_number_when_malformed_raises_invalid_argument(value: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        version_number(value, "to_version")
    assert caught.value.details["field"] == "to_version"
    assert "vN" in caught.value.message


# -- reasons and free text -------------------------------------------------------------------


def test_reason_when_long_enough_returns_it_stripped() -> None:
    assert reason("   because the loss plateaued   ") == "because the loss plateaued"


@pytest.mark.parametrize("value", ["", "too short", "   padded     ", "x" * 14, None, 12345678901234567])
def test_reason_when_too_short_or_not_text_raises_reason_required(value: object) -> None:
    with pytest.raises(ReasonRequiredError) as caught:
        reason(value)
    error = caught.value
    assert error.code == "REASON_REQUIRED"
    assert error.details == {"field": "reason", "minimum_length": 15}
    assert "15" in error.remedy


def test_reason_when_exactly_minimum_length_is_accepted() -> None:
    assert reason("x" * 15) == "x" * 15


def test_reason_when_custom_minimum_applies_it() -> None:
    with pytest.raises(ReasonRequiredError):
        reason("four", minimum=5)
    assert reason("fives", minimum=5) == "fives"


def test_reason_when_longer_than_limit_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        reason("x" * (MAX_REASON_LENGTH + 1))
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.details["maximum"] == MAX_REASON_LENGTH


def test_reason_when_containing_nul_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        reason("a perfectly long reason\x00with a NUL")
    assert caught.value.code == "INVALID_ARGUMENT"


def test_text_when_valid_returns_it_unchanged() -> None:
    assert text("  keep my spaces ", "goal") == "  keep my spaces "


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_text_when_blank_raises_unless_allowed(value: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        text(value, "goal")
    assert caught.value.details["field"] == "goal"
    assert text(value, "goal", allow_empty=True) == value


def test_text_when_too_long_reports_length_and_maximum() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        text("abcdef", "message", maximum=5)
    assert caught.value.details == {"field": "message", "length": 6, "maximum": 5}


@pytest.mark.parametrize("value", [None, 5, ["x"], b"bytes"])
def test_text_when_not_a_string_raises_invalid_argument(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        text(value, "thought")


def test_text_when_containing_nul_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        text("bad\x00byte", "thought")


# -- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "offset"), [(1, 0), (20, 0), (MAX_LIMIT, 0), (5, 10_000)])
def test_page_when_in_bounds_returns_both(limit: int, offset: int) -> None:
    assert page(limit, offset) == (limit, offset)


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 10**9, True, False, "20", 2.0, None])
def test_page_when_limit_out_of_bounds_raises_for_limit(limit: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        page(limit, 0)
    assert caught.value.details["field"] == "limit"
    assert caught.value.details["maximum"] == MAX_LIMIT


@pytest.mark.parametrize("offset", [-1, True, "0", 1.5, None])
def test_page_when_offset_invalid_raises_for_offset(offset: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        page(10, offset)
    assert caught.value.details["field"] == "offset"


# -- paths -----------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "file.txt").write_text("inside\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "candidate", ["sub/file.txt", "sub", "./sub/../sub/file.txt", "new/not/yet.txt", "."]
)
def test_path_inside_when_relative_inside_returns_resolved_path(root: Path, candidate: str) -> None:
    resolved = path_inside(root, candidate)
    assert resolved == (root.resolve() / candidate).resolve()
    assert resolved == root.resolve() or root.resolve() in resolved.parents


def test_path_inside_when_absolute_inside_is_accepted(root: Path) -> None:
    target = root / "sub" / "file.txt"
    assert path_inside(root, str(target)) == target.resolve()
    assert path_inside(root, target) == target.resolve()


@pytest.mark.parametrize(
    "candidate", ["..", "../secret.txt", "sub/../../secret.txt", "sub/../../root2", "/etc/passwd"]
)
def test_path_inside_when_path_leaves_root_raises_invalid_path(root: Path, candidate: str) -> None:
    with pytest.raises(InvalidPathError) as caught:
        path_inside(root, candidate, "output")
    error = caught.value
    assert error.code == "INVALID_PATH"
    assert error.details["field"] == "output"
    assert error.details["root"] == str(root.resolve())
    assert error.remedy


def test_path_inside_when_sibling_shares_the_prefix_refuses(root: Path) -> None:
    sibling = root.parent / (root.name + "-evil")
    sibling.mkdir()
    with pytest.raises(InvalidPathError):
        path_inside(root, str(sibling))


def test_path_inside_when_symlink_points_outside_refuses(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret.txt")
    (root / "escape_dir").symlink_to(root.parent)
    with pytest.raises(InvalidPathError):
        path_inside(root, "escape")
    with pytest.raises(InvalidPathError):
        path_inside(root, "escape_dir/secret.txt")


def test_path_inside_when_symlink_points_inside_accepts_its_target(root: Path) -> None:
    (root / "alias").symlink_to(root / "sub" / "file.txt")
    assert path_inside(root, "alias") == (root / "sub" / "file.txt").resolve()


def test_path_inside_when_root_itself_is_reached_through_a_link_still_works(
    tmp_path: Path, root: Path
) -> None:
    link_root = tmp_path / "link-to-root"
    link_root.symlink_to(root)
    assert path_inside(link_root, "sub/file.txt") == (root / "sub" / "file.txt").resolve()


@pytest.mark.parametrize("candidate", ["", "a\x00b", "x" * 4097])
def test_path_inside_when_malformed_raises_invalid_path(root: Path, candidate: str) -> None:
    with pytest.raises(InvalidPathError) as caught:
        path_inside(root, candidate)
    assert caught.value.details["field"] == "path"


def test_path_inside_when_refusing_touches_nothing_on_disk(root: Path) -> None:
    before = sorted(os.listdir(root.parent))
    with pytest.raises(InvalidPathError):
        path_inside(root, "../new-folder/x")
    assert sorted(os.listdir(root.parent)) == before


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "HF_TOKEN",
        "token",
        "password",
        "db_passwd",
        "client_secret",
        "GOOGLE_CREDENTIALS",
    ],
)
def test_is_secret_name_when_name_looks_like_a_credential_is_true(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["workspace", "reason", "lr", "batch_size", "message", "slot"])
def test_is_secret_name_when_name_is_ordinary_is_false(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_when_nested_replaces_only_secret_named_entries() -> None:
    value: dict[object, Any] = {
        "workspace": "ws",
        "api_key": "sk-123",
        "env": {"HF_TOKEN": "hf_abc", "PATH": "/bin", "nested": [{"password": "p", "user": "u"}]},
        "list": ["plain", {"secret": 1}],
        "tuple": ("a", {"Token": "t"}),
        7: "non-string key",
    }
    redacted = redact(value)
    assert redacted == {
        "workspace": "ws",
        "api_key": REDACTED,
        "env": {"HF_TOKEN": REDACTED, "PATH": "/bin", "nested": [{"password": REDACTED, "user": "u"}]},
        "list": ["plain", {"secret": REDACTED}],
        "tuple": ["a", {"Token": REDACTED}],
        7: "non-string key",
    }


def test_redact_when_called_leaves_the_original_untouched() -> None:
    value = {"api_key": "sk-123", "inner": {"token": "t"}}
    redact(value)
    assert value == {"api_key": "sk-123", "inner": {"token": "t"}}


@pytest.mark.parametrize("value", ["plain text", 3, None, 2.5, True])
def test_redact_when_scalar_returns_it(value: object) -> None:
    assert redact(value) == value


# -- did-you-mean ----------------------------------------------------------------------------


def test_did_you_mean_when_close_match_exists_returns_it() -> None:
    assert did_you_mean("baselin", ["baseline", "sweep"]) == "baseline"
    assert suggestion_suffix("baselin", ["baseline"]) == " (did you mean 'baseline'?)"


def test_did_you_mean_when_nothing_close_returns_none() -> None:
    assert did_you_mean("zzz", ["baseline", "sweep"]) is None
    assert suggestion_suffix("zzz", []) == ""


def test_goldfish_error_to_dict_has_the_four_contract_fields() -> None:
    error = InvalidArgumentError("bad", details={"field": "x"})
    assert error.to_dict() == {
        "code": "INVALID_ARGUMENT",
        "message": "bad",
        "details": {"field": "x"},
        "remedy": InvalidArgumentError.default_remedy,
    }
    assert GoldfishError("m", remedy="do this").to_dict()["remedy"] == "do this"
