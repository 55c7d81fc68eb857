"""The user's own steering (optimiser.backend: steering) on the iDDS contract, with real pilots.

The steering script (evals/idds_steering.py) knows only the contract: it reads %IN, writes %OUT.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from gridhpo import config
from gridhpo.bookkeeping import Repository
from gridhpo.steering.reports import results
from gridhpo.steering.runner import run_task, run_tasks, submit
from gridhpo.steering.taskfile import TaskSpec, parse_task
from tests.podman import BUSYBOX_IMAGE, Podman
from tests.podman import podman as podman  # session fixture

EVALS = Path(__file__).parent / "evals"
SPACE = {"x": {"type": "float", "low": -2.0, "high": 2.0}, "k": {"type": "int", "low": 0, "high": 3}}

pytestmark = pytest.mark.integration


def task(tmp_path: Path, name: str, steering_args: str = "", max_points: int = 8,
         **optimiser: Any) -> TaskSpec:
    folder = tmp_path / name  # each task its own copy: crash-once leaves a file beside its script
    folder.mkdir()
    shutil.copy(EVALS / "behave.py", folder / "behave.py")
    shutil.copy(EVALS / "idds_steering.py", folder / "idds_steering.py")
    command = (f"{sys.executable} {folder / 'idds_steering.py'} %IN %OUT %NUM_POINTS %MAX_POINTS --seed 5 "
               f"{steering_args}")
    return parse_task({
        "name": name,
        "search_space": SPACE,
        "optimiser": {"backend": "steering", "command": command, **optimiser},
        "budget": {"max_points": max_points, "parallel": 2},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 1, "lost_after": 10},
    }, base_dir=folder)


def check_points(repo: Repository, tid: int, spec: TaskSpec, count: int) -> None:
    rows = results(repo, repo.task(tid))
    assert len(rows) == count
    assert len({repr(sorted(r["params"].items())) for r in rows}) == count
    for r in rows:
        spec.search_space.validate_point(r["params"])
        assert r["state"] == "finished"
        assert r["value"] == pytest.approx(r["params"]["x"] ** 2)


def test_an_idds_steering_steers_a_task_to_the_end(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    spec = task(tmp_path, "idds", max_points=8)
    tid, _ = submit(repo, spec)
    result = run_task(repo, broker, tid, pilots=2)
    assert result.state == "finished", repo.task(tid).message
    check_points(repo, tid, spec, 8)


def test_invalid_point_fails_its_task_and_the_steering_serves_the_other(home: Path, tmp_path: Path) -> None:
    repo = Repository(config.db_url())
    bad = task(tmp_path, "invalid", "--mode invalid")
    good = task(tmp_path, "good")
    bad_id, _ = submit(repo, bad)
    good_id, _ = submit(repo, good)
    r_bad, r_good = run_tasks(repo, config.broker_url(), [bad_id, good_id], pilots=1)
    assert r_bad.state == "failed"
    message = repo.task(bad_id).message or ""
    assert "outside the search space" in message and "parameter 'x'" in message, message
    assert "\n" not in message
    assert r_good.state == "finished"
    check_points(repo, good_id, good, 8)


def test_crashing_steering_is_retried_then_fails_with_its_stderr(home: Path, tmp_path: Path) -> None:
    repo = Repository(config.db_url())
    crash = task(tmp_path, "crash", "--mode crash")
    once = task(tmp_path, "once", "--mode crash-once")
    garbage = task(tmp_path, "garbage", "--mode garbage", options={"retries": 0})
    ids = [submit(repo, s)[0] for s in (crash, once, garbage)]
    r_crash, r_once, r_garbage = run_tasks(repo, config.broker_url(), ids, pilots=1)
    assert r_crash.state == "failed"
    message = repo.task(ids[0]).message or ""
    assert "failed 4 times in a row (1 run + 3 retries)" in message, message
    assert "exited with code 3" in message and "the optimizer blew up" in message, message
    assert repo.points(ids[0]) == []
    # one crash, then a good run: retried, the task goes on
    assert (tmp_path / "once" / "crashed").exists()
    assert r_once.state == "finished", repo.task(ids[1]).message
    check_points(repo, ids[1], once, 8)
    assert r_garbage.state == "failed"
    assert "failed 1 times in a row" in (repo.task(ids[2]).message or "")
    assert "output.json) is not valid JSON" in (repo.task(ids[2]).message or "")


def test_empty_list_ends_the_search_with_the_points_it_has(home: Path, tmp_path: Path) -> None:
    repo = Repository(config.db_url())
    spec = task(tmp_path, "ends", "--end-after 4", max_points=12)
    tid, _ = submit(repo, spec)
    result = run_task(repo, config.broker_url(), tid, pilots=2)
    assert result.state == "finished", repo.task(tid).message
    check_points(repo, tid, spec, 4)


def test_steering_time_limit(home: Path, tmp_path: Path) -> None:
    repo = Repository(config.db_url())
    spec = task(tmp_path, "slow", max_points=4, timeout=1, options={"retries": 0})
    sleepy = spec.optimiser.command
    assert sleepy is not None
    raw = spec.to_dict()
    raw["optimiser"]["command"] = f"sleep 30; {sleepy}"
    tid, _ = submit(repo, TaskSpec.from_dict(raw))
    result = run_task(repo, config.broker_url(), tid, pilots=1)
    assert result.state == "failed"
    assert "timed out after 1s (optimiser.timeout)" in (repo.task(tid).message or "")


@pytest.mark.parametrize("mount", [None, "/HPOiDDS"])
def test_steering_image_runs_through_the_docker_api(podman: Podman, home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, mount: str | None) -> None:
    """The steering in an image (a static busybox, no gridhpo in it): it reads $PWD/%IN inside the
    container, as phpo's steeringExec does, and writes its point to %OUT; with ``mount`` (phpo's
    ``-v $(pwd):/HPOiDDS``) the folder is /HPOiDDS inside."""
    monkeypatch.setenv("DOCKER_HOST", podman.url)
    repo = Repository(config.db_url())
    shutil.copy(EVALS / "behave.py", tmp_path / "behave.py")
    where = "$PWD" if mount is None else mount
    command = (f"[ \"$PWD\" = \"{where}\" ] && grep -q '\"opt_space\"' {where}/%IN && [ %NUM_POINTS = 1 ] && "
               f"echo '[{{\"x\": 0.5, \"k\": 3.0}}]' > {where}/%OUT")
    spec = parse_task({
        "name": "image",
        "search_space": SPACE,
        "optimiser": {"backend": "steering", "image": BUSYBOX_IMAGE, "command": command,
                      "options": {} if mount is None else {"mount": mount}},
        "budget": {"max_points": 1},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 1, "lost_after": 10},
    }, base_dir=tmp_path)
    tid, _ = submit(repo, spec)
    result = run_task(repo, config.broker_url(), tid, pilots=1)
    assert result.state == "finished", repo.task(tid).message
    [row] = results(repo, repo.task(tid))
    assert row["params"] == {"x": 0.5, "k": 3} and type(row["params"]["k"]) is int  # 3.0 read as the int 3
    assert row["value"] == 0.25
    client = docker.DockerClient(base_url=podman.url)
    assert client.containers.list(all=True, filters={"label": "gridhpo.job"}) == []  # none left behind
