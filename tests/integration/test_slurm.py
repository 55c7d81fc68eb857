"""Pilots submitted with sbatch to a real single-node Slurm cluster (tests/slurm.py).

One pilot learns its walltime from Slurm and stops its evaluation gracefully before the limit;
another is told nothing (GRIDHPO_WALLTIME_END far away) and is killed by Slurm at its time limit
(SIGTERM, KillWait, SIGKILL). Both points are interrupted, re-queued, and finished by a third
pilot job.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridhpo.bookkeeping import Repository
from gridhpo.cli import main
from gridhpo.evaluation import submit as pilots
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering, until
from tests.slurm import slurm_cluster

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

# the first attempt of every point runs until it is stopped, saving its state on SIGTERM
EVAL = """\
import json, os, signal, sys, time
attempt = int(os.environ["GRIDHPO_ATTEMPT"])
def on_term(_s, _f):
    open("checkpoint/term.txt", "w").write(f"saved at attempt {attempt}")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
x = json.load(open("input.json"))["x"]
while attempt == 1:
    time.sleep(0.2)
json.dump({"status": 0, "loss": x * x}, open("output.json", "w"))
"""


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)  # sbatch passes the submitter's environment to the job
        yield env


def state(job: str) -> str:
    return str(next(r["state"] for r in pilots.status() if r["job"] == job))


def test_pilots_in_slurm_jobs_stop_at_their_walltime_and_points_finish_elsewhere(
        home: Path, tmp_path: Path, cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evaluate.py").write_text(EVAL)
    spec = parse_task({
        "name": "slurm", "search_space": {"x": {"type": "float", "low": -2, "high": 2}},
        "optimiser": {"backend": "random", "seed": 5},
        "budget": {"max_points": 2, "parallel": 2, "max_attempts": 3},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/evaluate.py"', "heartbeat": 2, "lost_after": 200,
                       "grace": 3},
    }, base_dir=tmp_path)
    repo = Repository()
    broker = f"filesystem://{home / 'queue'}"
    monkeypatch.setenv("GRIDHPO_BROKER", broker)
    tid, _ = submit(repo, spec)
    with steering(repo, broker, tid):
        [knows] = pilots.submit(tid, "slurm", 1, 60, site="cluster", token=repo.task(tid).token)
        assert str(repo.task(tid).token) not in Path(knows.script).read_text(), "the token is in the .env file"
        [told_nothing] = pilots.submit(tid, "slurm", 1, 60, site="cluster",
                                       extra="--export=ALL,GRIDHPO_WALLTIME_END=99999999999",
                                       token=repo.task(tid).token)
        until(lambda: len([a for a in repo.attempts(task_id=tid) if a.state == "running"]) == 2, 60,
              "both pilot jobs to start a point", every=0.5)
        out = CliRunner().invoke(main, ["pilots", "status", "--task", str(tid)])
        assert out.exit_code == 0, out.output
        assert out.output.count(" running ") == 2 and knows.job_id in out.output

        until(lambda: state(knows.job_id) == state(told_nothing.job_id) == "ended", 150, "both jobs to end", every=0.5)
        assert "CANCELLED" not in Path(knows.log).read_text(), "it stopped before Slurm had to kill it"
        assert "DUE TO TIME LIMIT" in Path(told_nothing.log).read_text()

        [retry] = pilots.submit(tid, "slurm", 1, 600, site="cluster", token=repo.task(tid).token)
        until(lambda: repo.task(tid).state != "active", 90, "the retried points to finish", every=0.5)

    rows = results(repo, repo.task(tid))
    assert [r["state"] for r in rows] == ["finished", "finished"]
    for r in rows:
        assert r["value"] == pytest.approx(r["params"]["x"] ** 2)
    first = {a.pilot_id: a for a in repo.attempts(task_id=tid) if a.number == 1}
    assert set(first) == {f"cluster-slurm-{knows.job_id}", f"cluster-slurm-{told_nothing.job_id}"}
    assert all(a.state == "interrupted" and a.site == "cluster" for a in first.values())
    assert "walltime" in (first[f"cluster-slurm-{knows.job_id}"].message or "")
    assert "SIGTERM" in (first[f"cluster-slurm-{told_nothing.job_id}"].message or "")
    second = [a for a in repo.attempts(task_id=tid) if a.number == 2]
    assert [(a.state, a.pilot_id) for a in second] == [("finished", f"cluster-slurm-{retry.job_id}")] * 2
    for job in (knows, told_nothing):
        saved = list((home / "work" / f"cluster-slurm-{job.job_id}").rglob("checkpoint/term.txt"))
        assert [p.read_text() for p in saved] == ["saved at attempt 1"], "the evaluation got SIGTERM first"
