"""The catalogue of error codes: every code an agent can see has exactly one owner, listed in errors.py.

Imports every module of the package, so an error class defined anywhere is seen.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import defaultdict

import pytest

import goldfish
from goldfish.errors import CODES, GoldfishError

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def all_error_classes() -> list[type[GoldfishError]]:
    """GoldfishError and every subclass defined in any goldfish module."""
    for module in pkgutil.walk_packages(goldfish.__path__, "goldfish."):
        if not module.name.endswith("__main__"):  # running it would start the CLI
            importlib.import_module(module.name)
    found: list[type[GoldfishError]] = [GoldfishError]
    for cls in found:
        found += [sub for sub in cls.__subclasses__() if sub not in found]
    return found


def owned_codes(cls: type[GoldfishError]) -> list[str]:
    """The codes a class declares itself (not the ones it inherits)."""
    own = [cls.code] if "code" in vars(cls) else []
    return own + list(vars(cls).get("instance_codes", ()))


@pytest.fixture(scope="module")
def owners() -> dict[str, list[str]]:
    """Each code declared anywhere → the names of the classes declaring it."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for cls in all_error_classes():
        for code in owned_codes(cls):
            by_code[code].append(cls.__name__)
    return dict(by_code)


def test_every_error_class_name_is_unique_so_the_catalogue_names_one_class() -> None:
    names = [cls.__name__ for cls in all_error_classes()]
    assert sorted({name for name in names if names.count(name) > 1}) == []


def test_every_code_is_owned_by_exactly_one_class(owners: dict[str, list[str]]) -> None:
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert shared == {}


def test_every_declared_code_is_in_the_catalogue_with_its_owner(owners: dict[str, list[str]]) -> None:
    wrong = {code: names[0] for code, names in owners.items() if CODES.get(code) != names[0]}
    assert wrong == {}, "add these to errors.CODES (code → owning class)"


def test_every_catalogued_code_has_a_class_that_declares_it(owners: dict[str, list[str]]) -> None:
    assert sorted(set(CODES) - set(owners)) == []


def test_codes_are_upper_snake() -> None:
    assert [code for code in CODES if not UPPER_SNAKE.match(code)] == []


def test_gce_launch_failed_belongs_to_the_launch_that_found_no_zone(owners: dict[str, list[str]]) -> None:
    assert owners["GCE_LAUNCH_FAILED"] == ["LaunchError"]
    assert owners["GCE_CAPACITY"] == ["LaunchFailure"]
