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


def test_the_test_command_shows_why_tests_were_skipped() -> None:
    addopts = re.findall(r'^addopts\s*=\s*"([^"]*)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert re.search(r"-r\w*[sa]", " ".join([readme_commands()[1], *addopts])), "pytest's -rs (or -ra) is missing"


def test_the_repository_cites_no_file_outside_it() -> None:
    """The project's own docs are its reference: nothing points to a design file or shared
    folder that a clone of the repository does not have."""
    outside = [f"DESIGN{'.md'}", f"..{'/shared'}"]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    found = [f"{name}: {word}" for name in tracked.splitlines() if (REPO / name).is_file()
             for word in outside if word in (REPO / name).read_text(errors="replace")]
    assert not found, found


@pytest.mark.heavy
@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_code_is_lint_and_type_clean(tool: str) -> None:
    exe = Path(sys.executable).parent / tool
    if not exe.exists() and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    args = [str(exe if exe.exists() else tool)] + (["check", "."] if tool == "ruff" else [])
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
