"""The resumable example end to end, with real pilot processes whose walltime is too short
for a point: every point needs three or more attempts, each resumes from the checkpoint the
previous one saved when it was stopped, and the final loss is bit-identical to an
uninterrupted run. On the local-folder store and on S3 (a real SeaweedFS server)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gridhpo.bookkeeping.repository import Repository
from gridhpo.checkpoints import open_store
from gridhpo.steering.reports import format_results, status_rows
from tests.resume_harness import reference_loss, run_resumable
from tests.seaweed import s3_store_url

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_three_walltimes_resume_to_the_uninterrupted_result(backend: str, home: Path,
                                                           request: pytest.FixtureRequest) -> None:
    if backend == "file":
        store_url = f"file://{home / 'store'}"
    else:
        store_url = s3_store_url(request.getfixturevalue("s3_endpoint"))
    db_url, broker_url = f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}"
    run = run_resumable(home, db_url, broker_url, store_url, points=2, walltime=8.0)
    logs = "\n".join(p.read_text()[-1500:] for p in run.pilot_logs[-2:])
    assert run.state == "finished", logs
    assert run.max_resuming >= 1  # `gridhpo status` showed points resuming during the run
    for point in run.points:
        attempts = point["attempts"]
        assert point["state"] == "finished", point
        assert len(attempts) >= 3, point
        assert [a["end_reason"] for a in attempts] == ["walltime"] * (len(attempts) - 1) + ["finished"]
        assert attempts[0]["restored_from"] is None
        for before, after in itertools.pairwise(attempts):
            # each retry started from the last checkpoint its predecessor saved
            assert before["checkpoints"], before
            last = before["checkpoints"][-1]
            assert after["restored_from"] is not None
            assert (after["restored_from"]["sequence"], after["restored_from"]["sha256"]) == \
                   (last["sequence"], last["sha256"])
            assert after["restored_from"]["attempt"] == before["number"]
        assert point["value"] == reference_loss(point["params"])
    # retention: at most `keep` checkpoints per point stay in the store
    store = open_store(store_url)
    for point in run.points:
        keys = store.list(f"{run.task_id}-")
        per_point = [k for k in keys if f"/point-{point['number']}/" in k and k.endswith(".json")]
        assert 1 <= len(per_point) <= 3
    store.close()
    repo = Repository(db_url)
    # the evaluation saves on SIGTERM and the pilot uploads after it exited: nothing is lost,
    # each attempt starts exactly where the previous one got to (its stop mark; or its last epoch
    # when the SIGTERM came after the training loop, as it was writing its result)
    number = {a.id: (a.point_id, a.number) for a in repo.attempts(task_id=run.task_id)}
    starts: dict[tuple[int, int], float] = {}
    reached: dict[tuple[int, int], float] = {}
    for m in repo.metrics(run.task_id):
        key = number[m.attempt_id]
        if m.values.get("event") == "start":
            starts[key] = m.step
        reached[key] = max(reached.get(key, 0.0), m.step)
    for point in run.points:
        for a in point["attempts"][1:]:
            assert starts[(point["id"], a["number"])] == reached[(point["id"], a["number"] - 1)]
    table = format_results(run.points, "table")
    assert "history" in table.splitlines()[0] and "2:walltime<#" in table
    header, rows = status_rows(repo, [repo.task(run.task_id)])
    assert rows[0][header.index("resuming")] == 0  # nothing resuming once the task has finished
    repo.close()
