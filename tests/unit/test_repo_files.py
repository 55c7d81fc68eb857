"""What CI and a new user rely on: README's commands are the ones CI runs; the code is lint-clean."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text())


def test_readme_starts_with_install_and_run_then_the_test_command() -> None:
    first, second = readme_commands()[:2]
    assert "pip install" in first and "gridhpo run examples/" in first
    assert "pytest" in second


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = readme_commands()[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_code_is_lint_and_type_clean(tool: str) -> None:
    exe = Path(sys.executable).parent / tool
    if not exe.exists() and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    args = [str(exe if exe.exists() else tool)] + (["check", "."] if tool == "ruff" else [])
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
