from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gridhpo.cli import main
from tests.helpers import until

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
    # stderr is no terminal here: whole progress lines, no progress bar's label ("points")
    lines = proc.stderr.splitlines()
    assert not [line for line in lines if line.startswith("points")], lines
    assert any(re.fullmatch(r"task 'branin': \d+/30 finished, \d+ failed, \d+ running(, best \S+)?", line)
               for line in lines), lines
    again = subprocess.run([sys.executable, "-m", "gridhpo.cli", "run", str(REPO / "examples/branin/task.yaml")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["task"] == "branin-2"


def test_pilot_refuses_ids_the_bookkeeping_cannot_store(home: Path) -> None:
    code, _, err = invoke("pilot", "--task", "1", "--pilot-id", "p" * 65)
    assert code == 2 and "--pilot-id" in err and "at most 64" in err
    code, _, err = invoke("pilot", "--task", "x")
    assert code == 2 and "give the task id" in err


FAIL_SCRIPT = """
import json, sys
x = json.load(open("input.json"))["x"]
if x < 0.5:
    json.dump({"status": 0, "loss": x}, open("output.json", "w"))
else:
    sys.stderr.write("loading data\\nfatal: the learning rate " + "is far too large " * 8 + "END\\n")
    sys.exit(3)
"""


def _failing_task(tmp_path: Path) -> Path:
    (tmp_path / "evaluate.py").write_text(FAIL_SCRIPT)
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({
        "name": "half-fails", "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "objective": {"metric": "loss", "mode": "min"}, "optimiser": {"backend": "grid"},
        "budget": {"max_points": 4, "parallel": 2, "max_failures": 10, "max_attempts": 1},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/evaluate.py"'}}))
    return task


def test_results_show_why_points_failed(servers: tuple[str, str], tmp_path: Path) -> None:
    """The stderr tail reaches every format: a cut reason in the table, all of it in csv and
    json, and every attempt in full with --point."""
    db, broker = servers
    proc = subprocess.run([sys.executable, "-m", "gridhpo.cli", "run", str(_failing_task(tmp_path)), "--pilots", "1",
                           "--db", db, "--broker", broker], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    tail_line = "fatal: the learning rate " + "is far too large " * 8 + "END"

    code, out, _ = invoke("results", "half-fails", "--db", db, "--format", "json")
    rows = json.loads(out)
    failed = [r for r in rows if r["state"] == "failed"]
    assert code == 0 and len(failed) == 2 and len(rows) == 4
    for r in failed:
        assert "exit" in r["message"] and "3" in r["message"]
        assert tail_line in r["attempts"][0]["stderr_tail"] and "loading data" in r["attempts"][0]["stderr_tail"]

    code, out, _ = invoke("results", "half-fails", "--db", db, "--format", "csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["state"] for r in table].count("failed") == 2
    assert all(tail_line in r["stderr_tail"] for r in table if r["state"] == "failed")
    assert all(r["stderr_tail"] == "" for r in table if r["state"] == "finished")

    code, out, _ = invoke("results", "half-fails", "--db", db)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[-1] == "reason"
    failed_lines = [line for line in lines[2:] if " failed " in line]
    assert len(failed_lines) == 2
    for line in failed_lines:
        assert "fatal: the learning rate is far" in line and tail_line not in line and line.endswith("…")

    number = str(failed[0]["number"])
    code, out, _ = invoke("results", "half-fails", "--db", db, "--point", number)
    assert code == 0 and out.startswith(f"point {number}: failed")
    for field in ("attempt 1: failed", "pilot: ", "site: local", "started: ", "message: ", "stderr tail:",
                  tail_line, "loading data"):
        assert field in out, field
    code, out, _ = invoke("results", "half-fails", "--db", db, "--point", number, "--format", "json")
    assert code == 0 and json.loads(out)["attempts"][0]["stderr_tail"] == failed[0]["attempts"][0]["stderr_tail"]
    code, _, err = invoke("results", "half-fails", "--db", db, "--point", "99")
    assert code == 1 and "has no point 99" in err


WITHOUT_PLOTLY = "import sys; sys.modules['plotly'] = None; from gridhpo.cli import main; main()"


@pytest.mark.parametrize("command", [["dashboard", "--port", "0"], ["plot", "1", "-o", "r.html"]])
def test_plots_without_the_plot_extra_are_a_one_line_error(home: Path, tmp_path: Path, command: list[str]) -> None:
    """An install without plotly: the dashboard must not start serving a page that cannot draw."""
    invoke("submit", str(REPO / "examples/branin/task.yaml"))
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PLOTLY, *command], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "pip install 'gridhpo[plot]'" in proc.stderr
    assert proc.stderr.startswith("gridhpo: error: ") and "needs plotly" in proc.stderr


def _task_file(tmp_path: Path, name: str, command: str, max_points: int = 4) -> Path:
    task = tmp_path / f"{name}.yaml"
    task.write_text(yaml.safe_dump({
        "name": name, "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "objective": {"metric": "loss", "mode": "min"}, "optimiser": {"backend": "grid"},
        "budget": {"max_points": max_points, "parallel": 2, "max_attempts": 1}, "evaluation": {"command": command}}))
    return task


def test_run_whose_pilots_all_die_says_why_and_fails_the_task(servers: tuple[str, str], tmp_path: Path) -> None:
    """Each pilot writes an error to its own log and dies (as a pilot on a full disk would):
    `run` ends at once with their last error lines, and the task is failed with them."""
    db, broker = servers
    die = "echo \"gridhpo: error: the site's disk is full\" >> /proc/$PPID/fd/2; kill -9 $PPID"
    proc = subprocess.run([sys.executable, "-m", "gridhpo.cli", "run", str(_task_file(tmp_path, "dies", die)),
                           "--pilots", "2", "--db", db, "--broker", broker],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "all 2 pilots of task 1 exited, so it is marked failed" in proc.stderr
    for i in (0, 1):
        assert f"pilot {i} (killed by SIGKILL): gridhpo: error: the site's disk is full" in proc.stderr
    code, out, _ = invoke("status", "dies", "--db", db)
    assert code == 0 and " failed " in out
    assert "message: all 2 local pilots exited: gridhpo: error: the site's disk is full" in out


GATED = """
import json, pathlib, time
gate = pathlib.Path({gate!r})
while not gate.exists():  # the test opens the gate once both runs are under way
    time.sleep(0.05)
x = json.load(open("input.json"))["x"]
json.dump({{"status": 0, "loss": x}}, open("output.json", "w"))
"""


def _wait_for(what: str, condition: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> None:
    def check() -> bool:
        for p in procs:
            assert p.poll() is None, f"a run ended early while waiting for {what}: {p.communicate()[1]}"
        return condition()

    until(check, 120, what)


def test_two_runs_of_the_same_file_both_finish(home: Path, tmp_path: Path) -> None:
    """The second run finds the steering lock taken: the first run's steering serves its task
    too (its pilots get points while the first runs), and both runs end with their best point."""
    from gridhpo.bookkeeping import Repository

    gate = tmp_path / "gate"
    (tmp_path / "gated.py").write_text(GATED.format(gate=str(gate)))
    task = _task_file(tmp_path, "twice", 'python "$GRIDHPO_TASK_DIR/gated.py"')
    cmd = [sys.executable, "-m", "gridhpo.cli", "run", str(task), "--pilots", "1"]
    repo = Repository(f"sqlite:///{home / 'gridhpo.db'}")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = [first]
    try:
        _wait_for("point of the first run running", lambda: repo.counts(1).get("running", 0) > 0, runs)
        second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append(second)
        _wait_for("point of the second run running",
                  lambda: repo.find_task("twice-2") is not None and repo.counts(2).get("running", 0) > 0, runs)
        gate.touch()
        outs = [p.communicate(timeout=120) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err
        assert "finished: 4 finished, 0 failed" in err
    assert [json.loads(out)["task"] for out, _ in outs] == ["twice", "twice-2"]


def test_run_whose_pilots_end_cleanly_leaves_the_task_active(home: Path, tmp_path: Path) -> None:
    """Pilots that reached their own limit (here --max-points) did nothing wrong: the run
    says so and the task stays active for other pilots."""
    from gridhpo import config
    from gridhpo.bookkeeping import Repository
    from gridhpo.errors import EvaluationError
    from gridhpo.steering.runner import run_task, submit
    from gridhpo.steering.taskfile import load_task

    (tmp_path / "ok.py").write_text('import json\njson.dump({"status": 0, "loss": 1.0}, open("output.json", "w"))\n')
    repo = Repository()
    tid, _ = submit(repo, load_task(_task_file(tmp_path, "short", 'python "$GRIDHPO_TASK_DIR/ok.py"', 6)))
    with pytest.raises(EvaluationError, match=r"all 1 pilots of task 1 ended; the task stays active") as err:
        run_task(repo, config.broker_url(), tid, pilots=1, pilot_args=["--max-points", "1"])
    assert "pilot 0 (exit 0): " in str(err.value)
    assert repo.task(tid).state == "active" and repo.counts(tid).get("finished") == 1
