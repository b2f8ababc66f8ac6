"""The secret store file, the stream masker and the secret-looking-name rule."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from goldfish.config import parse_config
from goldfish.errors import ConfigError, InvalidArgumentError
from goldfish.io.masking import Masker
from goldfish.secrets.resolver import SecretNotSetError, SecretResolver
from goldfish.secrets.store import SecretStore
from goldfish.validation import looks_like_secret


def test_store_when_values_are_set_keeps_them_in_a_0600_file_and_reads_them_back(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.set("HF_TOKEN", "hf_abc")
    store.set("MULTI", 'line one\nline "two" = x')

    assert store.values() == {"HF_TOKEN": "hf_abc", "MULTI": 'line one\nline "two" = x'}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.remove("HF_TOKEN") is True and store.remove("HF_TOKEN") is False
    assert store.names() == ["MULTI"]


@pytest.mark.parametrize("name", ["bad name", "1ABC", "GOLDFISH_X", "CUDA_VISIBLE_DEVICES", ""])
def test_store_when_a_name_is_not_an_env_name_or_reserved_refuses_it(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        SecretStore(tmp_path).set(name, "value")


def test_store_when_a_value_is_empty_refuses_it_without_echoing_anything(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        SecretStore(tmp_path).set("HF_TOKEN", "")
    with pytest.raises(InvalidArgumentError) as raised:
        SecretStore(tmp_path).set("HF_TOKEN", "sec\x00ret")
    assert "sec" not in raised.value.message


def test_resolver_when_a_name_is_in_store_and_environment_prefers_the_store(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.set("A_TOKEN", "from-store")
    resolver = SecretResolver(store, {"A_TOKEN": "from-env", "B_TOKEN": "env-only"})

    assert resolver.resolve(["A_TOKEN", "B_TOKEN"], "stage 'x'") == {
        "A_TOKEN": "from-store",
        "B_TOKEN": "env-only",
    }
    assert resolver.sources(["A_TOKEN"]) == {"A_TOKEN": ["project secrets file", "server environment"]}
    with pytest.raises(SecretNotSetError) as raised:
        resolver.resolve(["C_TOKEN"], "stage 'x'")
    assert raised.value.details["missing"] == ["C_TOKEN"]


def test_masker_when_a_value_arrives_split_across_reads_still_masks_it() -> None:
    masker = Masker(["topsecret-123"])
    stream = b"start topsec", b"ret-123 middle\nand top", b"secret-123", b" end"

    written = b"".join(masker.feed(chunk) for chunk in stream) + masker.finish()

    assert written == b"start *** middle\nand *** end"


def test_masker_when_a_line_is_complete_writes_it_at_once() -> None:
    masker = Masker(["topsecret-123"])
    assert masker.feed(b"epoch 1 done\n") == b"epoch 1 done\n"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("wandb_api_key", True),
        ("CLIENT_SECRET", True),
        ("DB_PASSWORD_FILE", True),
        ("TOKEN", True),
        ("tokenizer", False),
        ("key_dim", False),
        ("OMP_NUM_THREADS", False),
    ],
)
def test_secret_looking_names_follow_the_pipeline_rule(name: str, secret: bool) -> None:
    assert looks_like_secret(name) is secret


@pytest.mark.parametrize(
    ("defaults", "problem"),
    [
        ({"env": {"API_KEY": "sk-live-123"}}, "looks like a secret"),
        ({"env": {"GOLDFISH_STAGE": "x"}}, "reserved"),
        ({"secrets": ["bad name"]}, "not an environment variable name"),
    ],
)
def test_goldfish_yaml_when_defaults_env_or_secrets_are_bad_names_the_key_and_never_the_value(
    defaults: dict[str, object], problem: str
) -> None:
    text = yaml.safe_dump({"project_name": "p", "defaults": defaults})
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert problem in raised.value.message and "sk-live-123" not in str(raised.value.to_dict())
    config = parse_config(yaml.safe_dump({"project_name": "p", "defaults": {"env": {"OMP_NUM_THREADS": 4}}}))
    assert config.defaults.env == {"OMP_NUM_THREADS": "4"}
