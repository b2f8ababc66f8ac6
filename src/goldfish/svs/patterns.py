"""Failure signatures: what makes two failed stage runs "the same failure".

A signature is the exception type, its message with the run-specific parts taken out (numbers,
quoted values, paths, addresses) and the failing frame (file name and function, no line number:
an edit above it must not split the pattern). A failure without a Python traceback (a missing
output, a broken rule) uses its failure kind and normalised message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath

PATTERN_KINDS = frozenset({"stage_error", "missing_output", "contract_violation", "svs_violation"})
TAIL_BYTES = 64 * 1024
_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_NORMALISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"(?:/[^\s/'\"]+)+/?"), "<path>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<value>"),
    (re.compile(r"\b(?:stage|prun)-[0-9a-f]{12}\b"), "<run>"),
    (re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


@dataclass(frozen=True)
class Signature:
    """One failure, reduced to what identifies it."""

    error_type: str
    message: str
    frame: str | None

    @property
    def digest(self) -> str:
        """Stable key of the signature."""
        text = f"{self.error_type}\0{self.message}\0{self.frame or ''}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def normalise(message: str) -> str:
    """``message`` without the parts that differ between runs of the same failure."""
    for pattern, replacement in _NORMALISE:
        message = pattern.sub(replacement, message)
    return message.strip()[:500]


def from_traceback(stderr: str) -> Signature | None:
    """The signature of the last Python traceback in ``stderr``, if there is one."""
    start = stderr.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    lines = stderr[start:].splitlines()[1:]
    frame = None
    for line in lines:
        match = _FRAME.match(line)
        if match:
            frame = f"{PurePath(match.group(1)).name}:{match.group(2)}"
            continue
        if line.startswith((" ", "\t")) or not line.strip():
            continue
        found = _EXCEPTION.match(line.strip())
        if found:
            return Signature(found.group(1).rsplit(".", 1)[-1], normalise(found.group(2) or ""), frame)
    return None


def signature_of(failure_kind: str, error: str | None, stderr: str) -> Signature:
    """The signature of a failed stage run: its traceback when it has one, else its failure kind."""
    if failure_kind == "stage_error":
        found = from_traceback(stderr)
        if found is not None:
            return found
    return Signature(failure_kind, normalise(error or ""), None)
