"""The lineage as the bookkeeping keeps it (migration 0008, written in the steering's batch)
and as users read it: ``gridhpo results TASK --format json`` and ``--lineage``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridhpo.bookkeeping.changes import Changes
from gridhpo.bookkeeping.records import SegmentRecord
from gridhpo.bookkeeping.repository import Repository
from gridhpo.cli.main import main
from gridhpo.steering.taskfile import parse_task

RAW = {"name": "pop", "search_space": {"lr": {"type": "float", "low": 0.001, "high": 1, "log": True}},
       "budget": {"max_points": 2}, "evaluation": {"command": "true"},
       "early_stopping": {"scheduler": "pbt", "resource": "step", "max_resource": 4,
                          "options": {"population": 2, "perturbation_interval": 2}}}


def _books(home: Path) -> str:
    url = f"sqlite:///{home / 'gridhpo.db'}"
    repo = Repository(url)
    tid = repo.create_task("pop", parse_task(RAW, "pop.yaml").to_dict())
    p0, p1 = repo.add_points(tid, [(0, {"lr": 0.1}), (1, {"lr": 0.002})])
    batch = Changes()
    for rec in (
        SegmentRecord(tid, p0, 0, 0, 0.0, 2.0, {"lr": 0.1}, {"lr": 0.1}, 1.0, end_value=0.5, ended_at=2.0,
                      end_checkpoint="1-pop/point-0/00000001-a1.json"),
        SegmentRecord(tid, p0, 0, 1, 2.0, 4.0, {"lr": 0.1}, {"lr": 0.1}, 2.0, end_value=0.3, ended_at=3.0),
        SegmentRecord(tid, p1, 1, 0, 0.0, 2.0, {"lr": 0.002}, {"lr": 0.002}, 1.0, end_value=0.9, ended_at=2.0),
        # the same segment written again in the batch: the later record wins
        SegmentRecord(tid, p1, 1, 1, 2.0, 4.0, {"lr": 0.002}, {"lr": 0.12}, 2.0, 0,
                      "1-pop/point-0/00000001-a1.json", "1-pop/point-1/00000002-a2.json"),
        SegmentRecord(tid, p1, 1, 1, 2.0, 4.0, {"lr": 0.002}, {"lr": 0.12}, 2.0, 0,
                      "1-pop/point-0/00000001-a1.json", "1-pop/point-1/00000002-a2.json", restored_at=2.5,
                      end_value=0.2, ended_at=3.5),
    ):
        batch.add(rec)
    repo.apply(batch)
    repo.close()
    return url


def test_results_carry_each_members_lineage_and_the_best_members_schedule(home: Path) -> None:
    url = _books(home)
    out = CliRunner().invoke(main, ["results", "pop", "--format", "json", "--db", url])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    (exploit,) = [s for r in rows for s in r["lineage"] if s["parent"] is not None]
    assert (exploit["member"], exploit["step"], exploit["config_after"], exploit["restored_at"]) == (
        1, 2.0, {"lr": 0.12}, 2.5)
    out = CliRunner().invoke(main, ["results", "pop", "--lineage", "--db", url])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "best member: 1"
    # member 0's first segment, then member 1's own after it copied member 0 at step 2
    assert [line.split()[:3] for line in lines[3:]] == [["0", "2", "0"], ["2", "4", "1"]]
    assert "from member 0 at 2" in lines[-1]


def test_the_schedule_through_the_service_is_the_local_one(home: Path) -> None:
    """``gridhpo results --lineage --server``: the service's lineage route, formatted by the
    client as locally (an admin reads every task); another user gets the task's 404."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from gridhpo.service.accounts import Accounts
    from gridhpo.service.api import create_app
    from gridhpo.steering.lineage import format_schedule

    url = _books(home)
    repo = Repository(url)
    accounts = Accounts(repo)
    accounts.add_user("root", True)
    accounts.add_user("bob", False)
    local = CliRunner().invoke(main, ["results", "pop", "--lineage", "--db", url, "--format", "json"]).output
    with TestClient(create_app(repo, "file:///nowhere"), raise_server_exceptions=False) as client:
        token = {n: accounts.create_token(n)[1] for n in ("root", "bob")}
        answer = client.get("/api/v1/tasks/1/lineage", headers={"Authorization": f"Bearer {token['root']}"})
        other = client.get("/api/v1/tasks/1/lineage", headers={"Authorization": f"Bearer {token['bob']}"})
    assert answer.status_code == 200, answer.text
    assert format_schedule(answer.json()["mode"], answer.json()["segments"], "json") + "\n" == local
    assert other.status_code == 404
    repo.close()
