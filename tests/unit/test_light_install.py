"""A site's light install, ``pip install gridhpo`` (no SQLAlchemy, alembic, numpy, optimiser or
plot library): a pilot evaluates points and the remote commands work without ever importing
them, and a command that needs them says in one line which extra to install.

Each command runs in a subprocess where a meta path finder makes every import of those
libraries fail as it would on such a site, and records it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gridhpo.bookkeeping import Repository
from gridhpo.extras import EXTRAS
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering

# every library an extra brings, and what they bring in turn
ABSENT = sorted({*EXTRAS, "scipy", "pandas", "psycopg_binary", "mako"})

LIGHT = """
import runpy, sys
absent, record = set(sys.argv[1].split(",")), sys.argv[2]

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            with open(record, "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
sys.argv = ["gridhpo", *sys.argv[3:]]
runpy.run_module("gridhpo.cli", run_name="__main__", alter_sys=True)
"""

SQUARE = ("python3 -c \"import json; x = json.load(open('input.json'))['x']; "
          "json.dump({'status': 0, 'loss': x * x}, open('output.json', 'w'))\"")


def light(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``gridhpo ARGS`` as on a light install: (the process, the absent modules it tried)."""
    record = tmp_path / "imported.txt"
    record.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", LIGHT, ",".join(ABSENT), str(record), *args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    return proc, record.read_text().split() if record.exists() else []


def test_a_pilot_of_the_light_install_evaluates_points(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    spec = parse_task({"name": "light", "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
                       "optimiser": {"backend": "random", "seed": 1}, "budget": {"max_points": 3, "parallel": 1},
                       "evaluation": {"command": SQUARE}})
    tid, _ = submit(repo, spec)
    with steering(repo, f"filesystem://{home / 'queue'}", tid):
        proc, tried = light(tmp_path, "pilot", "--task", str(tid), "--token", repo.task(tid).token,
                            "--max-points", "3", "--idle-timeout", "30")
    assert proc.returncode == 0, proc.stderr
    assert tried == [], f"the pilot imported {tried}"
    points = results(repo, repo.task(tid))
    assert [p["state"] for p in points] == ["finished"] * 3
    assert all(p["value"] == p["params"]["x"] ** 2 for p in points)


def test_remote_commands_of_the_light_install(home: Path, tmp_path: Path) -> None:
    proc, tried = light(tmp_path, "pilots", "status")
    assert (proc.returncode, proc.stdout.strip(), tried) == (0, "no pilot submitted", [])
    proc, tried = light(tmp_path, "pilots", "submit", "--task", "1", "--backend", "slurn", "--walltime", "1h",
                        "--token", "tok")
    assert proc.returncode == 1 and "did you mean 'slurm'" in proc.stderr and tried == []
    proc, tried = light(tmp_path, "pilot", "--help")
    assert proc.returncode == 0 and "--walltime" in proc.stdout and tried == []


def test_a_server_command_names_the_extra_to_install_in_one_line(home: Path, tmp_path: Path) -> None:
    for command in (["steer"], ["status"], ["pilots", "submit", "--task", "1", "--backend", "local",
                                            "--walltime", "60"]):
        proc, tried = light(tmp_path, *command)
        name = " ".join(c for c in command if not c.startswith("-") and not c[0].isdigit() and c != "local")
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip() == (f"gridhpo: error: gridhpo {name} needs the server extra: "
                                       "pip install 'gridhpo[server]'")
        assert tried, "the command never reached the bookkeeping"


def test_gridhpo_imports_no_test_library() -> None:
    """``gridhpo.testing`` (the contract suites) imports pytest; gridhpo itself never imports it."""
    code = ("import sys, gridhpo, gridhpo.cli.main, gridhpo.evaluation.pilot, gridhpo.evaluation.backends; "
            "print(sorted(m for m in sys.modules if m.startswith(('pytest', '_pytest', 'gridhpo.testing'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr
