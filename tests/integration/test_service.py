"""A real ``gridhpo server`` (HTTPS) on the embedded defaults and on PostgreSQL + RabbitMQ:
the CLI's remote mode gives what the local CLI gives, a task submitted through the API is run
to its end by ordinary pilots, and one user never reaches another's tasks."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gridhpo.plots.report import read_payload
from tests.service_harness import Service, running_service

pytest.importorskip("fastapi")
EVALS = Path(__file__).parent / "evals"


@pytest.fixture
def service(servers: tuple[str, str], tmp_path: Path) -> Iterator[Service]:
    db, broker = servers
    with running_service(db, broker, tmp_path / "server") as s:
        s.add_user("alice")
        s.add_user("bob")
        yield s


def task_file(folder: Path, points: int = 6) -> Path:
    shutil.copy(EVALS / "behave.py", folder / "behave.py")
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump({
        "name": "remote", "search_space": {"x": {"type": "float", "low": -2, "high": 2}},
        "optimiser": {"backend": "random", "seed": 5}, "budget": {"max_points": points, "parallel": 2},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/behave.py"', "heartbeat": 1}}))
    return path


def run_pilots(service: Service, task_id: int, token: str, count: int, folder: Path) -> None:
    """Ordinary pilots (`gridhpo pilot`) with the pilot token the service gave, to the task's end."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDHPO_DB", "GRIDHPO_SERVER")}
    env.update(GRIDHPO_BROKER=service.broker, GRIDHPO_TOKEN=token)
    procs = [subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(task_id), "--idle-timeout",
                               "60", "--workdir", str(folder / f"w{i}")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for i in range(count)]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-3000:]


def test_every_command_works_through_the_service_as_locally(service: Service, tmp_path: Path) -> None:
    submitted = service.cli("alice", "submit", str(task_file(tmp_path)))
    assert submitted.exit_code == 0, submitted.output
    tid = int(submitted.stdout.strip())
    token = service.cli("alice", "token", str(tid))
    assert token.exit_code == 0 and token.stdout.strip() == service.local("token", str(tid)).stdout.strip()
    run_pilots(service, tid, token.stdout.strip(), 2, tmp_path)
    for args in (["status"], ["status", str(tid)], ["status", "remote"], ["results", "remote"],
                 ["results", str(tid), "--format", "csv", "--sort", "value"], ["results", str(tid), "--format", "json"],
                 ["results", str(tid), "--point", "1"], ["results", str(tid), "--point", "99"],
                 ["cancel", str(tid)], ["status", "nosuch"]):
        remote, local = service.cli("alice", *args), service.local(*args)
        assert remote.exit_code == local.exit_code, (args, remote.output, local.output)
        if remote.exit_code == 0:
            assert remote.stdout == local.stdout, args
    rows = json.loads(service.cli("alice", "results", str(tid), "--format", "json").stdout)
    assert len(rows) == 6 and all(r["state"] == "finished" for r in rows)
    assert "is finished, not active" in service.cli("alice", "cancel", str(tid)).output
    report = tmp_path / "report.html"
    assert service.cli("alice", "plot", str(tid), "-o", str(report)).exit_code == 0
    assert read_payload(report.read_text())["tasks"][0]["summary"]["name"] == "remote"
    _same_pngs_as_locally(service, tid, tmp_path)
    replaced = service.cli("alice", "token", "remote", "--revoke")
    assert replaced.exit_code == 0 and replaced.stdout.strip() != token.stdout.strip()
    assert "token replaced" in replaced.stderr
    log = service.log.read_text()  # at -v: every request in the access log
    assert f"POST /api/v1/tasks/{tid}/token" in log
    for secret in [*service.tokens.values(), token.stdout.strip(), replaced.stdout.strip()]:
        assert secret not in log


def _same_pngs_as_locally(service: Service, tid: int, tmp_path: Path) -> None:
    """``plot --png`` (and with -o too) writes through the service what it writes locally."""
    args = ["plot", "remote", "--png", "", "--top", "3", "--importance", "anova"]
    remote = service.cli("alice", *[str(tmp_path / "by-api") if a == "" else a for a in args])
    local = service.local(*[str(tmp_path / "by-db") if a == "" else a for a in args])
    assert remote.exit_code == local.exit_code == 0, (remote.output, local.output)
    assert remote.stderr == f"6 PNG files written to {tmp_path}/by-api\n"
    assert local.stderr == f"6 PNG files written to {tmp_path}/by-db\n"
    names = sorted(p.name for p in (tmp_path / "by-db").iterdir())
    assert sorted(p.name for p in (tmp_path / "by-api").iterdir()) == names and len(names) == 6
    for name in names:  # the same figures, drawn from the same bookkeeping
        assert (tmp_path / "by-api" / name).read_bytes() == (tmp_path / "by-db" / name).read_bytes(), name
    assert not Path("report.html").exists(), "--png alone writes no report"
    both = service.cli("alice", "plot", str(tid), "--png", str(tmp_path / "both"), "-o", str(tmp_path / "both.html"))
    assert both.exit_code == 0 and (tmp_path / "both.html").exists() and len(list((tmp_path / "both").iterdir())) == 6


def test_a_second_service_on_one_bookkeeping_is_refused_and_sigterm_stops_the_first(service: Service,
                                                                                     tmp_path: Path) -> None:
    from tests.servers import free_port

    env = dict(os.environ, GRIDHPO_DB=service.db, GRIDHPO_BROKER=service.broker)
    second = subprocess.run([sys.executable, "-m", "gridhpo.cli", "server", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "gridhpo: error: another steering already serves" in second.stderr
    with running_service(service.db, service.broker, tmp_path / "api", extra=("--no-steer",)) as api_only:
        api_only.tokens = service.tokens  # the API only, on the same bookkeeping, beside the steering one
        assert api_only.cli("alice", "status").stdout.startswith("no tasks yet")
    assert service.answers()
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(60) == 0
    assert "steering stopped" in service.log.read_text()


def test_one_user_never_reaches_anothers_task_and_a_revoked_token_stops_at_once(service: Service,
                                                                              tmp_path: Path) -> None:
    tid = int(service.cli("alice", "submit", str(task_file(tmp_path))).stdout.strip())
    assert service.cli("bob", "status").stdout.startswith("no tasks yet")
    for args in (["status", str(tid)], ["results", str(tid)], ["cancel", str(tid)], ["token", str(tid)],
                 ["plot", str(tid), "-o", str(tmp_path / "r.html")], ["plot", str(tid), "--png", str(tmp_path / "p")],
                 ["status", "remote"]):
        out = service.cli("bob", *args)
        assert out.exit_code == 1 and out.stderr.startswith("gridhpo: error: no task"), (args, out.output)
    assert not (tmp_path / "r.html").exists() and not list((tmp_path / "p").glob("*.png"))
    assert service.local("status", str(tid)).stdout.splitlines()[2].split()[2] == "active"
    assert service.cli("alice", "status", str(tid)).exit_code == 0
    assert service.admin("token", "revoke", "--user", "alice").stdout.strip() == "1 token(s) revoked"
    refused = service.cli("alice", "status", str(tid))
    assert refused.exit_code == 1 and "the API token was revoked" in refused.stderr
    assert service.cli("bob", "status").exit_code == 0  # the service goes on


def test_login_keeps_the_token_for_the_server_only_its_owner_can_read(service: Service, tmp_path: Path) -> None:
    env = service.env("alice") | {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    from click.testing import CliRunner

    from gridhpo.cli.main import main

    saved = tmp_path / "config" / "gridhpo" / "client.json"
    wrong = CliRunner().invoke(main, ["login", "--token-stdin"], env=env, input="ghpo_wrong\n")
    assert wrong.exit_code == 1 and "refused the API token: the API token is not valid" in wrong.stderr
    assert not saved.exists()  # a token the service refuses is not kept
    out = CliRunner().invoke(main, ["login"], env=env)
    assert out.exit_code == 0 and "as 'alice'" in out.output, out.output
    assert saved.stat().st_mode & 0o777 == 0o600
    listed = CliRunner().invoke(main, ["status"], env=env | {"GRIDHPO_API_TOKEN": None})
    assert listed.exit_code == 0 and listed.stdout.startswith("no tasks yet")


def test_a_disabled_user_is_refused_at_once_and_their_tasks_stay_for_the_admins(service: Service,
                                                                                tmp_path: Path) -> None:
    service.add_user("root", admin=True)
    tid = int(service.cli("alice", "submit", str(task_file(tmp_path))).stdout.strip())
    stolen = service.tokens["alice"]  # what someone who copied alice's token holds
    out = service.admin("user", "disable", "alice")
    assert out.exit_code == 0 and out.stdout.splitlines() == [
        "user 'alice' disabled: 1 token(s) revoked", f"task 'remote' (id {tid}) is still active"]
    for args in (["status"], ["status", str(tid)], ["results", str(tid)], ["cancel", str(tid)], ["token", str(tid)]):
        refused = service.cli("alice", *args)
        assert refused.exit_code == 1 and "refused the API token" in refused.stderr, (args, refused.output)
    assert _get(service, "/api/v1/me", stolen) == 401
    assert _get(service, "/dashboard/api/tasks", stolen) == 401
    _unrevoked_tokens_of_a_disabled_user_stay_refused(service, stolen)
    made = service.admin("token", "create", "alice")
    assert made.exit_code == 1 and "user 'alice' is disabled" in made.output
    assert "disabled" in service.admin("user", "list").stdout.splitlines()[0]
    # the task stays alice's and runs on; an admin reads it, another user does not
    # (the steering may queue its points between two reads: the row's counts are not compared)
    shown = service.cli("root", "status", str(tid))
    assert shown.exit_code == 0 and shown.stdout.splitlines()[2].split()[:3] == [str(tid), "remote", "active"]
    assert service.cli("bob", "status", str(tid)).exit_code == 1
    # enabled again: the old token stays dead, a new one reaches her task
    assert service.admin("user", "enable", "alice").exit_code == 0
    assert _get(service, "/api/v1/me", stolen) == 401
    service.add_user_token("alice")
    assert service.cli("alice", "status", str(tid)).exit_code == 0
    cancelled = service.admin("user", "disable", "alice", "--cancel-tasks")
    assert cancelled.exit_code == 0 and f"task 'remote' (id {tid}) cancelled" in cancelled.stdout
    assert "cancelled" in service.cli("root", "status", str(tid)).stdout.splitlines()[2]


def _unrevoked_tokens_of_a_disabled_user_stay_refused(service: Service, stolen: str) -> None:
    """Tokens brought back (a bookkeeping restored from a backup taken before the disable): the
    user's own flag still refuses them."""
    from sqlalchemy import update

    from gridhpo.bookkeeping import Repository
    from gridhpo.service.accounts import T_TOKEN

    repo = Repository(service.db)
    with repo.engine.begin() as conn:
        conn.execute(update(T_TOKEN).values(revoked_at=None))
    repo.close()
    refused = service.cli("alice", "status")
    assert refused.exit_code == 1 and "the API token's user is disabled" in refused.stderr
    assert _get(service, "/api/v1/me", stolen) == 401


def _get(service: Service, path: str, token: str) -> int:
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(service.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context(cafile=str(service.cafile))):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code
