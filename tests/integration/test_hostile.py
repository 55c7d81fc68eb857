"""A pilot survives any one evaluation (issue 12, items 5-8): hostile output files, results too
large for a message, metric floods, and what an evaluation leaves behind. Real pilot processes
with the process runtime, on the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.protocol import Broker
from gridhpo.protocol.messages import DEAD_LETTER_QUEUE
from gridhpo.steering.reports import results
from gridhpo.steering.runner import RunResult, run_task, submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import process_ended, until

pytestmark = pytest.mark.integration
EVALS = Path(__file__).parent / "evals"


def hostile(tmp_path: Path, space: dict[str, Any], points: int, **evaluation: Any) -> Any:
    shutil.copy(EVALS / "hostile.py", tmp_path / "hostile.py")
    (tmp_path / "outside.json").write_text(json.dumps({"status": 0, "loss": 42.0, "message": "not yours"}))
    (tmp_path / "outside.jsonl").write_text('{"step": 1, "secret": 42}\n')
    return parse_task({
        "name": "hostile",
        "search_space": space,
        "optimiser": {"backend": "grid"},
        "budget": {"max_points": points, "parallel": 2, "max_failures": 1000},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/hostile.py"', "heartbeat": 1, "lost_after": 30,
                       **evaluation},
    }, base_dir=tmp_path)


def modes(*names: str) -> dict[str, Any]:
    return {"mode": {"type": "categorical", "choices": list(names)}}


def run(repo: Repository, broker: str, tid: int, pilots: int = 2, pilot_args: list[str] | None = None,
        deadline: float = 240.0) -> RunResult:
    """run_task, stopped after ``deadline`` seconds (a hung pilot must fail the test, not hang it)."""
    stop = threading.Event()
    timer = threading.Timer(deadline, stop.set)
    timer.start()
    try:
        result = run_task(repo, broker, tid, pilots=pilots, pilot_args=pilot_args, stop=stop)
    finally:
        timer.cancel()
    assert not stop.is_set(), f"task {tid} did not end within {deadline:g}s"
    return result


def by_mode(repo: Repository, tid: int) -> dict[str, dict[str, Any]]:
    rows = results(repo, repo.task(tid))
    return {r["params"]["mode"]: r for r in rows}


def no_dead_letters(broker: str) -> None:
    with Broker(broker) as b:
        assert b.size(DEAD_LETTER_QUEUE) == 0, "an event was set aside as malformed or oversized"


def test_hostile_output_files_fail_their_point_and_the_pilot_goes_on(servers: tuple[str, str],
                                                                     tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    names = ["ok", "bigint", "bigextra", "deep", "deepmetric", "fifo", "zero", "outside", "hardlink",
             "metricslink"]
    tid, _ = submit(repo, hostile(tmp_path, modes(*names), len(names)))
    assert run(repo, broker, tid).state == "finished"
    rows = by_mode(repo, tid)
    assert set(rows) == set(names)
    expected_failures = {
        "bigint": "objective metric 'loss' is a 1329-bit integer, beyond a float",
        "deep": "output.json is nested more than 32 levels deep",
        "fifo": "output.json is not a regular file (a FIFO)",
        "zero": "output.json is a symbolic link (to '/dev/zero')",
        "outside": "output.json is a symbolic link",
        "hardlink": "output.json has 2 hard links",
        "metricslink": "metrics.jsonl is a symbolic link",
    }
    for mode, reason in expected_failures.items():
        r = rows[mode]
        assert r["state"] == "failed" and reason in r["message"], (mode, r)
        # one attempt: the pilot reported it, it was neither lost nor retried
        assert [a["state"] for a in r["attempts"]] == ["failed"], (mode, r["attempts"])
    for mode in ("ok", "deepmetric"):
        assert rows[mode]["state"] == "finished" and rows[mode]["value"] == 1.5
    big = rows["bigextra"]
    assert big["state"] == "finished" and big["value"] == 2.5
    assert "huge: a 1329-bit integer, replaced by null" in big["message"]
    assert all(r["value"] != 42.0 for r in rows.values()), "a file outside the work directory was read"
    deep_metrics = [m for m in repo.metrics(tid) if m.point_id == rows["deepmetric"]["id"]]
    assert [m.step for m in deep_metrics] == [2.0], "the nested line is skipped, the next one forwarded"
    assert not any("secret" in m.values for m in repo.metrics(tid))
    no_dead_letters(broker)


def test_results_too_large_for_a_message_are_cut_with_a_note(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, hostile(tmp_path, modes("bigmessage", "bigstatus"), 2))
    assert run(repo, broker, tid).state == "finished"
    rows = by_mode(repo, tid)
    ok = rows["bigmessage"]
    assert ok["state"] == "finished" and ok["value"] == 1.5
    assert ok["message"].startswith("m" * 1000) and len(ok["message"]) < 40_000
    assert "message truncated from 2000000 to 16384 characters" in ok["message"]
    assert "blob: truncated from 2000000 characters" in ok["message"]
    assert "a key of 300000 characters cut to 256" in ok["message"]
    failed = rows["bigstatus"]
    assert failed["state"] == "failed" and "status 3: eeee" in failed["message"]
    assert len(failed["message"]) < 40_000
    no_dead_letters(broker)


def test_a_flood_of_metric_lines_never_starves_the_heartbeats(servers: tuple[str, str], tmp_path: Path) -> None:
    """100,000 metric lines at once, and a point lost after 3 s without a heartbeat: forwarding
    even a thinned flood takes longer than that, and the point must still finish on its first
    attempt, with the latest metric line among those recorded."""
    db, broker = servers
    repo = Repository(db)
    tid, _ = submit(repo, hostile(tmp_path, {"mode": {"type": "categorical", "choices": ["flood"]},
                                             "lines": {"type": "categorical", "choices": [100_000]}},
                                  1, heartbeat=0.5, lost_after=3))
    assert run(repo, broker, tid, pilots=1, deadline=240).state == "finished"
    (row,) = results(repo, repo.task(tid))
    assert row["state"] == "finished" and row["value"] == 1.5
    assert [a["state"] for a in row["attempts"]] == ["finished"], "the point was declared lost"
    steps = sorted(m.step for m in repo.metrics(tid))
    assert steps[-1] == 99_999 and len(steps) < 100_000, "thinned, the last line kept"




@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_children_an_evaluation_left_in_a_session_of_their_own_are_ended(servers: tuple[str, str],
                                                                         tmp_path: Path) -> None:
    db, broker = servers
    repo = Repository(db)
    space = {"mode": {"type": "categorical", "choices": ["setsid"]},
             "tag": {"type": "categorical", "choices": ["marked", "bare"]},
             "inherit": {"type": "categorical", "choices": [True, False]}}
    tid, _ = submit(repo, hostile(tmp_path, space, 4))
    assert run(repo, broker, tid).state == "finished"
    rows = results(repo, repo.task(tid))
    assert all(r["state"] == "finished" for r in rows)
    pids = [int(p.read_text()) for p in tmp_path.glob("child-*.pid")]
    assert len(pids) == 2  # one per tag: the last point of each tag wrote it
    try:
        until(lambda: all(process_ended(pid) for pid in pids), 30, "the evaluations' setsid children to end")
    finally:
        for pid in pids:  # never leave them behind, whatever the outcome
            if not process_ended(pid):
                os.kill(pid, 9)


def test_a_failed_point_with_a_huge_stderr_keeps_its_last_line(home: Path, tmp_path: Path) -> None:
    """End to end; the memory bound of reading the tail is test_pilot_files.py's."""
    repo = Repository()
    tid, _ = submit(repo, hostile(tmp_path, {"mode": {"type": "categorical", "choices": ["stderr"]},
                                             "mb": {"type": "categorical", "choices": [64]}}, 1))
    assert run(repo, f"filesystem://{home / 'queue'}", tid, pilots=1).state == "finished"
    (attempt,) = repo.attempts(task_id=tid)
    assert attempt.state == "failed" and "exited with code 4" in (attempt.message or "")
    assert (attempt.stderr_tail or "").endswith("the last line\n")
    assert len(attempt.stderr_tail or "") <= 4000


def test_work_directories_of_failed_points_are_kept_within_the_limit(home: Path, tmp_path: Path) -> None:
    repo = Repository()
    space = {"mode": {"type": "categorical", "choices": ["fail"]}, "n": {"type": "int", "low": 1, "high": 5}}
    tid, _ = submit(repo, hostile(tmp_path, space, 5))
    assert run(repo, f"filesystem://{home / 'queue'}", tid, pilots=1, pilot_args=["--keep-failed", "2"]).state \
        == "finished"
    rows = results(repo, repo.task(tid))
    assert len(rows) == 5 and all(r["state"] == "failed" for r in rows)
    by_end = sorted(rows, key=lambda r: r["attempts"][0]["ended_at"])
    newest = sorted(f"point-{r['number']}-attempt-1" for r in by_end[-2:])
    kept = sorted(p.name for p in (home / "work").glob(f"*/task-{tid}/point-*"))
    assert kept == newest, "the newest two kept, the others removed"
