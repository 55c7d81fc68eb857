"""Evaluations reach no secret of their pilot, and `ps` shows none (issue 14 item 9): a real
evaluation (evals/snoop.py) reads its own environment, the /proc entries of all its ancestors
and every process's command line, under `gridhpo run` and under `gridhpo pilots submit --backend
local`, on the embedded defaults and on PostgreSQL + RabbitMQ."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridhpo.bookkeeping import Repository
from tests.helpers import steering, until

EVALS = Path(__file__).parent / "evals"
pytestmark = pytest.mark.integration


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` for its user (PostgreSQL here trusts, so it is accepted unused)."""
    scheme, rest = url.split("://", 1)
    creds, host = rest.split("@", 1)
    return f"{scheme}://{creds.split(':')[0]}:{password}@{host}"


def setup(tmp_path: Path, servers: tuple[str, str], production: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The task file (two points, each a snoop) and the environment with every kind of secret a
    pilot holds; returns (env, secrets by what they are)."""
    db, broker = servers
    shutil.copy(EVALS / "snoop.py", tmp_path / "snoop.py")
    (tmp_path / "snoop").mkdir()
    found = {
        "signing key": secrets.token_hex(16), "signing key of the task": secrets.token_hex(16),
        "AWS secret": secrets.token_hex(20), "database password": secrets.token_hex(12),
        "broker password": secrets.token_hex(12), "store password": secrets.token_hex(12),
    }
    if production:
        db = with_password(db, found["database password"])
        found["RabbitMQ's password"] = "guest:guest@"
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "snoop",
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
        "optimiser": {"backend": "random", "seed": 3},
        "objective": {"metric": "loss"},
        "budget": {"max_points": 2, "parallel": 2},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/snoop.py"', "env": {"SNOOP_DIR": str(tmp_path / "snoop")},
                       "checkpoint": {"signing_key": "env:TEAM_CHECKPOINT_KEY"}},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDHPO_")}
    env.update({
        "GRIDHPO_HOME": os.environ["GRIDHPO_HOME"], "GRIDHPO_DB": db, "GRIDHPO_BROKER": broker,
        "GRIDHPO_SIGNING_KEY": found["signing key"], "TEAM_CHECKPOINT_KEY": found["signing key of the task"],
        "AWS_ACCESS_KEY_ID": "gridhpo-test", "AWS_SECRET_ACCESS_KEY": found["AWS secret"],
        # secrets under names gridhpo does not know: found by their values
        "DATABASE_URL": f"postgresql://app:{found['database password']}@db.example/app",
        "AMQP_URL": f"amqp://app:{found['broker password']}@mq.example//",
        "BACKUP_STORE": f"s3://key:{found['store password']}@bucket/prefix",
    })
    return env, found


def unprivileged() -> list[str]:
    """The prefix that runs a command as a user without capabilities. Root (CAP_SYS_PTRACE) reads
    every process's /proc entries, non-dumpable or not; as root, the test runs gridhpo in a user
    namespace where it is an ordinary user (uid 1000 there, still root's files outside)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root, which reads every process's /proc entries, and no unshare to drop that")
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000"]


def gridhpo(*args: str) -> list[str]:
    return [*unprivileged(), sys.executable, "-m", "gridhpo.cli", *args]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gridhpo(*args), env=env, capture_output=True, text=True, timeout=300, check=False)


def snoops(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "snoop").glob("snoop-*.json"))]


def descendants(record: dict[str, Any], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in record["cmdlines"].items():
        children.setdefault(ppid, []).append(int(pid))
    out, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def assert_nothing_read(record: dict[str, Any], found: dict[str, str], ours: int) -> list[dict[str, Any]]:
    """No secret in what the evaluation read of itself, of its ancestors up to ``ours`` (the process
    the test started; above it are pytest's) and of the command lines of ``ours``'s descendants;
    returns those ancestors."""
    chain = []
    for a in record["ancestors"]:
        chain.append(a)
        if a["pid"] == ours:
            break
    else:
        raise AssertionError(f"the evaluation's ancestors {[a['pid'] for a in record['ancestors']]} miss {ours}")
    ps = [cmd for pid, (_, cmd) in record["cmdlines"].items() if int(pid) in descendants(record, ours)]
    ps += [line for line in record["ps"].splitlines() if "gridhpo" in line or "snoop" in line]
    seen = json.dumps({"environ": record["environ"], "ancestors": chain, "ps": ps})
    leaked = [what for what, value in found.items() if value in seen]
    where = [part for part in ("environ", "ancestors", "ps") if any(v in json.dumps(
        {"environ": record["environ"], "ancestors": chain, "ps": ps}[part]) for v in found.values())]
    assert not leaked, f"the evaluation read the {', '.join(leaked)} (in its {' and '.join(where)})"
    return chain


def test_evaluations_under_gridhpo_run_read_no_secret(tmp_path: Path, servers: tuple[str, str],
                                                      request: pytest.FixtureRequest) -> None:
    env, found = setup(tmp_path, servers, "production" in request.node.callspec.id)
    proc = subprocess.Popen(gridhpo("run", str(tmp_path / "task.yaml"), "--pilots", "2"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    found["token"] = cli(env, "token", "snoop").stdout.strip().partition(".")[0]  # TOKEN of TOKEN.KEY
    records = snoops(tmp_path)
    assert len(records) == 2
    for record in records:
        chain = assert_nothing_read(record, found, proc.pid)
        pilot = next(a for a in chain if "gridhpo.cli pilot" in a["cmdline"].get("text", ""))
        run = chain[-1]
        assert "gridhpo.cli run" in run["cmdline"]["text"], "cmdline stays readable: it holds no secret"
        # the pilot and `gridhpo run` are not dumpable: their environ and mem are closed to the evaluation
        for a in (pilot, run):
            assert "PermissionError" in a["environ"]["error"] and "PermissionError" in a["mem"], a["pid"]


def test_evaluations_of_local_pilot_jobs_read_no_secret(tmp_path: Path, servers: tuple[str, str],
                                                        request: pytest.FixtureRequest) -> None:
    env, found = setup(tmp_path, servers, "production" in request.node.callspec.id)
    tid = int(cli(env, "submit", str(tmp_path / "task.yaml")).stdout.strip())
    found["token"] = cli(env, "token", str(tid)).stdout.strip().partition(".")[0]  # TOKEN of TOKEN.KEY
    repo = Repository(servers[0])
    with steering(repo, servers[1], tid):
        done = cli(env, "pilots", "submit", "--task", str(tid), "--backend", "local", "--walltime", "300")
        assert done.returncode == 0, done.stderr
        until(lambda: repo.task(tid).state != "active", 120, "the task to finish")
    assert repo.task(tid).state == "finished"
    scripts = list((Path(env["GRIDHPO_HOME"]) / "pilots").glob("pilot-*.sh"))
    assert len(scripts) == 1
    text = scripts[0].read_text()
    assert not [what for what, value in found.items() if value in text], text
    records = snoops(tmp_path)
    assert len(records) == 2
    for record in records:
        # the job's own process (bash, which exec'd timeout) is the pilot's parent
        ancestors = record["ancestors"]
        index = next(i for i, a in enumerate(ancestors) if a["cmdline"].get("text", "").startswith("timeout "))
        pilot, launcher = ancestors[index - 1], ancestors[index]
        assert "gridhpo.cli pilot" in pilot["cmdline"]["text"] and "--env-file" in pilot["cmdline"]["text"]
        assert "environ" in launcher and "text" in launcher["environ"], "timeout is dumpable: its environ is read"
        assert_nothing_read(record, found, launcher["pid"])
        assert "PermissionError" in pilot["environ"]["error"]


def test_a_pilot_reads_its_token_from_a_file(tmp_path: Path, home: Path) -> None:
    env, found = setup(tmp_path, (f"sqlite:///{home / 'gridhpo.db'}", f"filesystem://{home / 'queue'}"), False)
    tid = int(cli(env, "submit", str(tmp_path / "task.yaml")).stdout.strip())
    token = cli(env, "token", str(tid)).stdout.strip()
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "token").chmod(0o600)
    env.pop("GRIDHPO_TOKEN", None)
    missing = cli(env, "pilot", "--task", str(tid), "--token-file", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and f"--token-file {tmp_path / 'nothing'}: No such file" in missing.stderr
    repo = Repository(f"sqlite:///{home / 'gridhpo.db'}")
    with steering(repo, env["GRIDHPO_BROKER"], tid):
        done = cli(env, "pilot", "--task", str(tid), "--token-file", str(tmp_path / "token"), "--max-points", "2")
    assert done.returncode == 0, done.stderr
    assert "2 finished" in done.stderr
    records = snoops(tmp_path)
    assert len(records) == 2
    found["token"] = token.partition(".")[0]  # the TOKEN of TOKEN.KEY, which finds the whole too
    for record in records:
        ps = " ".join(cmd for _, cmd in record["cmdlines"].values())
        assert not [what for what, value in found.items() if value in ps]
