"""The bounded YAML loader: limits, duplicate keys, and what it still accepts."""

from __future__ import annotations

import pytest

from goldfish.yamlfile import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    DuplicateKeyError,
    YamlTooComplexError,
    load_yaml,
)


def nested_lists(depth: int) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


def test_load_yaml_when_aliases_expand_past_the_limit_refuses_while_composing() -> None:
    bomb = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for level, name in enumerate("bcdefg"):
        previous = "abcdefg"[level]
        bomb += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"

    with pytest.raises(YamlTooComplexError) as caught:
        load_yaml(bomb, "pipeline.yaml")

    assert caught.value.code == "YAML_TOO_COMPLEX"
    assert caught.value.details["limit"] == MAX_YAML_NODES
    assert caught.value.details["path"] == "pipeline.yaml"
    assert caught.value.details["line"] is not None


def test_load_yaml_when_aliases_are_used_modestly_reads_them_and_merge_keys() -> None:
    text = "base: &base {lr: 0.1, epochs: 3}\ntrain:\n  <<: *base\n  lr: 0.5\nagain: *base\n"

    document = load_yaml(text, "configs/train.yaml")

    assert document.data == {
        "base": {"lr": 0.1, "epochs": 3},
        "train": {"lr": 0.5, "epochs": 3},
        "again": {"lr": 0.1, "epochs": 3},
    }
    assert document.key_lines()[("train", "lr")] == 4


def test_load_yaml_nesting_at_the_limit_is_read_and_one_deeper_is_refused() -> None:
    # The document's mapping is one level; the lists add the rest.
    assert load_yaml(nested_lists(MAX_YAML_DEPTH - 1), "a.yaml").data is not None
    with pytest.raises(YamlTooComplexError) as caught:
        load_yaml(nested_lists(MAX_YAML_DEPTH), "a.yaml")
    assert caught.value.details["limit"] == MAX_YAML_DEPTH


def test_load_yaml_when_nesting_is_thousands_deep_refuses_without_recursion_error() -> None:
    with pytest.raises(YamlTooComplexError):
        load_yaml(nested_lists(20_000), "a.yaml")
    block = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(3000))
    with pytest.raises(YamlTooComplexError):
        load_yaml(block, "b.yaml")


def test_load_yaml_when_file_is_over_the_size_limit_refuses_before_parsing() -> None:
    with pytest.raises(YamlTooComplexError) as caught:
        load_yaml("a: 1\n" + "#" * MAX_YAML_BYTES, "big.yaml")
    assert caught.value.details["limit"] == MAX_YAML_BYTES


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("a: 1\nb: 2\na: 3\n", "a", [1, 3]),
        ("outer:\n  x: 1\n  y: 2\n  x: 3\n", "x", [2, 4]),
        ("stages:\n  - name: a\n    name: b\n", "name", [2, 3]),
        ("1: a\n1: b\n", "1", [1, 2]),
    ],
)
def test_load_yaml_when_a_mapping_repeats_a_key_names_both_lines(
    text: str, key: str, lines: list[int]
) -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        load_yaml(text, "pipeline.yaml")
    assert caught.value.code == "DUPLICATE_KEY"
    assert caught.value.details["key"] == key
    assert caught.value.details["lines"] == lines
    assert f"lines {lines[0]} and {lines[1]}" in caught.value.message


def test_load_yaml_same_key_in_different_mappings_is_not_a_duplicate() -> None:
    text = "a:\n  x: 1\nb:\n  x: 2\n'1': str\n1: int\n"
    assert load_yaml(text, "ok.yaml").data == {"a": {"x": 1}, "b": {"x": 2}, "1": "str", 1: "int"}
