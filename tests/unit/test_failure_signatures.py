"""Failure signatures: the same failure in different runs groups together; different ones do not."""

from __future__ import annotations

from goldfish.svs.patterns import from_traceback, signature_of

TRACE = """\
loading 1200 rows
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/tmp/run-{run}/code/modules/train.py", line {line}, in <module>
    fit(x)
  File "/tmp/run-{run}/code/modules/train.py", line {inner}, in fit
    raise ValueError(f"learning rate {{lr}} too high for '{{name}}'")
ValueError: learning rate {lr} too high for '{name}' at 0x7f{addr}
"""


def _trace(run: str, line: int, inner: int, lr: str, name: str, addr: str) -> str:
    return TRACE.format(run=run, line=line, inner=inner, lr=lr, name=name, addr=addr)


def test_the_same_failure_in_two_runs_has_one_signature_despite_numbers_paths_and_lines() -> None:
    first = from_traceback(_trace("a1", 10, 4, "0.5", "adam", "abc"))
    second = from_traceback(_trace("b2", 12, 6, "3e-2", "sgd", "def"))
    assert first is not None and second is not None
    assert first == second and first.digest == second.digest
    assert (first.error_type, first.frame) == ("ValueError", "train.py:fit")
    assert first.message == "learning rate <n> too high for <value> at <addr>"


def test_a_different_failing_frame_is_a_different_signature() -> None:
    one = from_traceback(_trace("a", 1, 2, "1", "x", "0"))
    other = from_traceback(_trace("a", 1, 2, "1", "x", "0").replace("in fit", "in predict"))
    assert one is not None and other is not None and one.digest != other.digest


def test_the_last_traceback_counts_and_failures_without_one_use_their_kind() -> None:
    chained = _trace("a", 1, 2, "1", "x", "0") + "\nDuring handling...\nTraceback (most recent call last):\n"
    chained += '  File "m.py", line 3, in g\nKeyError: 7\n'
    found = from_traceback(chained)
    assert found is not None and (found.error_type, found.message, found.frame) == (
        "KeyError",
        "<n>",
        "m.py:g",
    )
    plain = signature_of("svs_violation", "SVS check failed: labels.label: entropy is 0", "")
    assert (plain.error_type, plain.frame) == ("svs_violation", None)
    assert signature_of("stage_error", "exited with code 3", "no traceback here").error_type == "stage_error"
