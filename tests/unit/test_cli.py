from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.cli import main

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("command", ["submit", "steer", "pilot", "run", "status", "results", "cancel"])
def test_every_command_has_help(command: str) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0 and "Usage:" in out


def test_submit_prints_the_id_and_names_are_unique(home: Path) -> None:
    code, out, _ = invoke("submit", str(REPO / "examples/branin/task.yaml"))
    assert code == 0 and out.strip() == "1"
    code, out, err = invoke("submit", str(REPO / "examples/branin/task.yaml"))
    assert code == 1 and "a task named 'branin' exists already" in err and "\n" not in err.strip()
    code, out, _ = invoke("submit", str(REPO / "examples/branin/task.yaml"), "--name", "branin-2")
    assert code == 0 and out.strip() == "2"


def test_bad_task_file_is_a_one_line_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "search_space": {"a": {"type": "float", "low": 2, "high": 1}},
                                   "evaluation": {"command": "true"}}))
    code, out, err = invoke("submit", str(bad))
    assert code == 1 and out == ""
    assert err.strip() == f"gridhpo: error: {bad}: search_space.a: low (2.0) must be less than high (1.0)"


def test_status_results_cancel_on_unknown_and_known_tasks(home: Path) -> None:
    code, out, _ = invoke("status")
    assert code == 0 and "no tasks yet" in out
    invoke("submit", str(REPO / "examples/branin/task.yaml"))
    code, out, err = invoke("results", "brainn")
    assert code == 1 and "did you mean 'branin'" in err
    code, out, _ = invoke("status", "branin")
    assert code == 0 and "0/30" in out and "active" in out
    code, out, _ = invoke("cancel", "branin")
    assert code == 0 and "cancelled" in out
    code, out, err = invoke("cancel", "1")
    assert code == 1 and "is cancelled, not active" in err


def test_run_the_readme_example_end_to_end(home: Path) -> None:
    """The README's first command, minus the install: a fresh home, two pilots, the best point."""
    proc = subprocess.run([sys.executable, "-m", "gridhpo.cli", "run", str(REPO / "examples/branin/task.yaml"),
                           "--pilots", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    best = json.loads(proc.stdout)
    assert best["task"] == "branin" and best["loss"] >= 0.397887 - 1e-6
    assert "finished: 30 finished, 0 failed" in proc.stderr
    again = subprocess.run([sys.executable, "-m", "gridhpo.cli", "run", str(REPO / "examples/branin/task.yaml")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["task"] == "branin-2"


def test_pilot_refuses_ids_the_bookkeeping_cannot_store(home: Path) -> None:
    code, _, err = invoke("pilot", "--task", "1", "--pilot-id", "p" * 65)
    assert code == 2 and "--pilot-id" in err and "at most 64" in err
    code, _, err = invoke("pilot", "--task", "x")
    assert code == 2 and "give the task id" in err
