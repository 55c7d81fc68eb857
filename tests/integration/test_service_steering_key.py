"""A ``gridhpo server --no-steer`` beside a steering of its own GRIDHPO_HOME (another machine's
in effect): the pilot token it hands out carries the verifying key of the steering that signs,
recorded in the bookkeeping as that steering took the lock, not a key of the service's home;
pilots given it finish the task, and ``gridhpo token`` from a third home gives the same."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.bookkeeping.steering_key import steering_key
from gridhpo.protocol.auth import steering_signer
from tests.helpers import until
from tests.integration.test_service import run_pilots, task_file
from tests.service_harness import running_service

pytest.importorskip("fastapi")


def test_a_no_steer_service_hands_out_the_key_of_the_steering_that_signs(
        servers: tuple[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, broker = servers
    repo = Repository(db)
    steering_home = tmp_path / "steering-home"
    steering_home.mkdir()
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker, GRIDHPO_HOME=str(steering_home))
    log = (tmp_path / "steer.log").open("ab")
    steer = subprocess.Popen([sys.executable, "-m", "gridhpo.cli", "steer"], env=env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        until(lambda: steering_key(repo) is not None, 60, "the steering to take the lock")
        signing = steering_signer(steering_home).public.text()
        assert steering_key(repo) == (signing, os.uname().nodename)
        with running_service(db, broker, tmp_path / "api", extra=("--no-steer",)) as service:
            service.add_user("alice")
            tid = int(service.cli("alice", "submit", str(task_file(tmp_path, points=4))).stdout.strip())
            credential = service.cli("alice", "token", str(tid)).stdout.strip()
            token, _, key = credential.partition(".")
            assert key == signing != steering_signer(home).public.text(), "the signer's key, not the service's"
            assert service.local("token", str(tid)).stdout.strip() == credential  # gridhpo token: the same
            # pilots of a third home, holding nothing but TOKEN.KEY: they run only what that key signed
            pilots_home = tmp_path / "pilot-home"
            pilots_home.mkdir()
            monkeypatch.setenv("GRIDHPO_HOME", str(pilots_home))
            run_pilots(service, tid, credential, 2, tmp_path)
        assert repo.task(tid).state == "finished"
        assert repo.counts(tid) == {"finished": 4}
        assert token == repo.task(tid).token
    finally:
        steer.send_signal(signal.SIGTERM)
        steer.wait(60)
        log.close()
        repo.close()
