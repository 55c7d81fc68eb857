"""``gridhpo server`` itself (steering, API and pilot gateway in one process) SIGKILLed and
restarted while HTTP-only pilots run its task, on PostgreSQL + RabbitMQ: every point
finishes exactly once, and no result is counted twice anywhere in the bookkeeping."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gridhpo.bookkeeping import Repository
from gridhpo.steering.runner import LocalPilots
from tests.helpers import until
from tests.integration.test_gateway_run import NO_BROKER, _finished_once
from tests.service_harness import Service, running_service

pytest.importorskip("fastapi")
pytestmark = pytest.mark.integration
EVALS = Path(__file__).parent / "evals"
POINTS = 24


def _task_file(folder: Path) -> Path:
    shutil.copy(EVALS / "behave.py", folder / "behave.py")
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump({
        "name": "killed", "search_space": {"x": {"type": "float", "low": -2, "high": 2},
                                           "sleep": {"type": "categorical", "choices": [0.4]}},
        "optimiser": {"backend": "random", "seed": 11}, "budget": {"max_points": POINTS, "parallel": 4},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 0.5, "lost_after": 30}}))
    return path


def _counted_once(repo: Repository, tid: int) -> None:
    """No result counted twice: each pilot's tally, the metric rows and the attempts agree."""
    points = repo.points(tid)
    attempts = repo.attempts(task_id=tid)
    finished = [a for a in attempts if a.state == "finished"]
    assert len(finished) == POINTS and len({a.point_id for a in finished}) == POINTS
    # a point's attempt numbers are 1, 2, ... with no number given twice
    numbers = Counter((a.point_id, a.number) for a in attempts)
    assert max(numbers.values()) == 1, numbers
    assert sum(p.points_done for p in repo.pilots(tid)) == POINTS, [(p.id, p.points_done) for p in repo.pilots(tid)]
    metrics = repo.metrics(tid)
    assert len({(m.attempt_id, m.seq) for m in metrics}) == len(metrics)
    # behave.py reports one step per attempt: the finished attempts' metrics, each written once
    of_finished = [m for m in metrics if m.attempt_id in {a.id for a in finished}]
    assert len(of_finished) == POINTS
    assert {p.id for p in points} == {a.point_id for a in finished}


def test_the_server_killed_and_restarted_loses_no_point_and_counts_none_twice(
        pg_url: str, amqp_url: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_service(pg_url, amqp_url, tmp_path / "server") as service:
        service.add_user("alice")
        submitted = service.cli("alice", "submit", str(_task_file(tmp_path)))
        assert submitted.exit_code == 0, submitted.output
        tid = int(submitted.stdout)
        token = service.cli("alice", "token", str(tid)).stdout.strip()
        repo = Repository(pg_url)
        monkeypatch.setenv("SSL_CERT_FILE", str(service.cafile))  # the pilots trust the throw-away certificate
        pilots = LocalPilots(tid, 3, NO_BROKER, tmp_path / "logs", token=token, extra_args=[
            "--server", service.url, "--site", "https-only", "--idle-timeout", "90"])
        pilots.start()
        try:
            until(lambda: repo.counts(tid).get("finished", 0) >= 5, 120, "a few points finished")
            assert repo.counts(tid).get("finished", 0) < POINTS - 4, "the kill lands while points run"
            service.kill()
            service.start()  # the same port: the pilots' gateway URL comes back
            until(lambda: repo.task(tid).state != "active" or not pilots.alive(), 240, "the task's end")
            assert repo.task(tid).state == "finished", pilots.last_errors()
        finally:
            pilots.stop()
        _finished_once(repo, tid, POINTS)
        _counted_once(repo, tid)
        assert {p.site for p in repo.pilots(tid)} == {"https-only"}
        shown = service.cli("alice", "status", str(tid))
        assert shown.exit_code == 0 and shown.stdout == service.local("status", str(tid)).stdout
        _restarted(service)
        repo.close()


def _restarted(service: Service) -> None:
    log = service.log.read_text()
    assert log.count("serving https://127.0.0.1") == 2, "one process killed, a second one served"
