"""Secret values replaced by ``***`` in what a stage prints and logs (standard library only).

The backend names the stage's secrets in ``GOLDFISH_SECRET_NAMES``; their values are in the
stage's own environment. Output is masked as a stream: a value split across two reads is still
caught, because the last ``len(longest value) - 1`` bytes are held back until more arrives (or
up to the last newline, when no value holds one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SECRET_NAMES_ENV = "GOLDFISH_SECRET_NAMES"  # noqa: S105 - a variable name
MASK = b"***"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the secrets named in ``GOLDFISH_SECRET_NAMES`` (empty ones left out)."""
    env = environ if environ is not None else os.environ
    names = [name for name in env.get(SECRET_NAMES_ENV, "").split(",") if name]
    return [env[name] for name in names if env.get(name)]


class Masker:
    """Masks a byte stream fed in pieces; :meth:`finish` returns what was held back."""

    def __init__(self, values: list[str]):
        encoded = {value.encode("utf-8") for value in values if value}
        self._values = sorted(encoded, key=len, reverse=True)
        self._hold = max((len(value) for value in self._values), default=1) - 1
        self._multiline = any(b"\n" in value for value in self._values)
        self._pending = b""

    @property
    def active(self) -> bool:
        """Whether there is anything to mask."""
        return bool(self._values)

    def mask(self, data: bytes) -> bytes:
        """``data`` with every value replaced (longest first, so a value inside another is not split)."""
        for value in self._values:
            data = data.replace(value, MASK)
        return data

    def mask_text(self, text: str) -> str:
        """:meth:`mask` for text."""
        return self.mask(text.encode("utf-8")).decode("utf-8", errors="replace") if self._values else text

    def feed(self, data: bytes) -> bytes:
        """What can be written now of everything fed so far, masked."""
        masked = self.mask(self._pending + data)
        cut = max(0, len(masked) - self._hold)
        if not self._multiline:
            cut = max(cut, masked.rfind(b"\n") + 1)
        self._pending = masked[cut:]
        return masked[:cut]

    def finish(self) -> bytes:
        """The held-back rest, masked (at the end of the stream)."""
        rest, self._pending = self.mask(self._pending), b""
        return rest


def mask_file_in_place(path: Path, values: list[str], chunk: int = 1 << 20) -> None:
    """Rewrite ``path`` with ``values`` masked, streaming through a temporary file (absent: nothing)."""
    masker = Masker(values)
    if not masker.active or not path.is_file() or path.is_symlink():
        return
    temporary = path.with_name(f".{path.name}.masking")
    with path.open("rb") as source, temporary.open("wb") as target:
        while data := source.read(chunk):
            target.write(masker.feed(data))
        target.write(masker.finish())
    os.replace(temporary, path)
