"""CI runs the README's test command, word for word, and that command prints where the time went."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "python -m pip install -e '.[test]' && "


def _command(lines: list[str]) -> str:
    found = [line.strip() for line in lines if line.strip().startswith(INSTALL)]
    assert len(found) == 1, found
    return found[0]


def test_ci_runs_the_readme_test_command_with_durations():
    readme = _command((ROOT / "README.md").read_text("utf-8").splitlines())
    ci = _command((ROOT / ".ci/run").read_text("utf-8").splitlines())
    assert readme == ci
    assert readme.split(" && ")[1].split() == ["python", "-m", "pytest", "-ra", "--durations=30"]
