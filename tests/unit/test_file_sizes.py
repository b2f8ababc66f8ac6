"""Every Python file of the project stays small enough to read in one sitting (architecture.md)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 500
CHECKED = ("src", "tests", "bench", "scripts")


def python_files(root: Path) -> list[Path]:
    """The project's Python files under the checked folders of ``root`` (virtual envs left out)."""
    return sorted(
        path
        for folder in CHECKED
        for path in (root / folder).rglob("*.py")
        if not {".venv", "node_modules"} & set(path.parts)
    )


def over_limit(root: Path, limit: int) -> dict[str, int]:
    """Files longer than ``limit`` lines, with their line counts, by path relative to ``root``."""
    found = {}
    for path in python_files(root):
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > limit:
            found[str(path.relative_to(root))] = count
    return found


def test_source_when_measured_has_no_python_file_over_500_lines() -> None:
    assert len(python_files(REPO)) > 100, "the scan found too few files: is REPO right?"
    assert over_limit(REPO, LIMIT) == {}


def test_over_limit_when_a_file_is_one_line_too_long_names_it_with_its_count(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "long.py").write_text("x = 1\n" * (LIMIT + 1), encoding="utf-8")
    (tmp_path / "src" / "short.py").write_text("x = 1\n" * LIMIT, encoding="utf-8")
    assert over_limit(tmp_path, LIMIT) == {"src/long.py": LIMIT + 1}
