"""Whole tasks through the Docker API runtime on a real Podman socket, with images built FROM scratch.

The evaluation image knows nothing of gridhpo: its own CMD reads input.json and writes
output.json (the ATLAS contract), so the task gives ``image`` and no ``command``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from gridhpo.bookkeeping import Repository
from gridhpo.errors import EvaluationError
from gridhpo.evaluation.runtimes import Job
from gridhpo.evaluation.runtimes.docker import LABEL_PILOT, DockerRuntime, container_options
from gridhpo.steering.reports import results
from gridhpo.steering.runner import submit
from gridhpo.steering.taskfile import parse_task
from tests.helpers import steering, until
from tests.podman import BUSYBOX_IMAGE, Podman, busybox_context
from tests.podman import podman as podman  # session fixture

pytestmark = pytest.mark.integration

EVAL_IMAGE = "localhost/gridhpo-test-eval:1"
# x and mode from input.json with sed, loss = x*x with awk; "fail" crashes with a message on stderr;
# on the first attempt "hang" runs until SIGTERM, saving its state then
EVALUATE = r"""#!/bin/sh
trap 'echo "saved at attempt $GRIDHPO_ATTEMPT" > checkpoint/term.txt; exit 143' TERM
x=$(sed -n 's/.*"x": *\([-0-9.eE]*\).*/\1/p' input.json)
mode=$(sed -n 's/.*"mode": *"\([a-z]*\)".*/\1/p' input.json)
echo "evaluating x=$x mode=$mode"
if [ "$mode" = fail ]; then
  echo "loading data" >&2
  echo "RuntimeError: CUDA out of memory in layer 3" >&2
  exit 3
fi
if [ "$mode" = hang ] && [ "$GRIDHPO_ATTEMPT" = 1 ]; then
  echo up > started.txt
  while true; do sleep 0.2; done
fi
awk -v x="$x" 'BEGIN { printf "{\"status\": 0, \"loss\": %.12g}\n", x * x }' > output.json
"""


@pytest.fixture(scope="module")
def eval_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = busybox_context(tmp_path_factory.mktemp("evalimage"), {"bin/evaluate": EVALUATE}, cmd='["/bin/evaluate"]')
    podman.build(EVAL_IMAGE, ctx)
    return EVAL_IMAGE


@pytest.fixture
def api(podman: Podman) -> Iterator[Any]:
    client = docker.DockerClient(base_url=podman.url)
    yield client
    client.close()


def ours(api: Any) -> list[Any]:
    return list(api.containers.list(all=True, filters={"label": LABEL_PILOT}))


def make_task(tmp_path: Path, image: str, modes: list[str], **budget: Any) -> Any:
    return parse_task({
        "name": "containers",
        "search_space": {"x": {"type": "float", "low": -2, "high": 2},
                         "mode": {"type": "categorical", "choices": modes}},
        "optimiser": {"backend": "random", "seed": 3},
        "budget": {"max_points": 6, "parallel": 2, "max_failures": 10, **budget},
        "evaluation": {"image": image, "heartbeat": 1, "lost_after": 30, "grace": 3,
                       "resources": {"cpus": 0.5, "memory": "128m"}},
    }, base_dir=tmp_path)


class Pilots:
    """``gridhpo pilot`` processes with DOCKER_HOST on the test's Podman socket."""

    def __init__(self, tid: int, broker: str, podman: Podman, tmp: Path) -> None:
        self.tid, self.broker, self.podman, self.tmp = tid, broker, podman, tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, pilot_id: str, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, GRIDHPO_BROKER=self.broker, DOCKER_HOST=self.podman.url,
                   GRIDHPO_TOKEN=Repository().task(self.tid).token or "")
        log = (self.tmp / f"{pilot_id}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridhpo.cli", "pilot", "--task", str(self.tid), "--pilot-id", pilot_id,
             "--runtime", "docker", "--workdir", str(self.tmp / pilot_id), *args],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs[pilot_id] = proc
        return proc

    def log(self, pilot_id: str) -> str:
        return (self.tmp / f"{pilot_id}.log").read_text()

    def wait(self, pilot_id: str, timeout: float) -> int:
        try:
            return self.procs[pilot_id].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pilot {pilot_id} still running:\n{self.log(pilot_id)[-3000:]}") from None

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_task_runs_in_containers_and_failures_keep_their_stderr(
        home: Path, tmp_path: Path, podman: Podman, eval_image: str, api: Any) -> None:
    repo = Repository()
    broker = f"filesystem://{home / 'queue'}"
    tid, _ = submit(repo, make_task(tmp_path, eval_image, ["ok", "fine", "fail"], max_points=8))
    pilots = Pilots(tid, broker, podman, tmp_path)
    try:
        with steering(repo, broker, tid):
            pilots.start("p1")
            pilots.start("p2")
            until(lambda: repo.task(tid).state != "active", 120, "the task to end")
        rows = results(repo, repo.task(tid))
        assert len(rows) == 8
        ok = [r for r in rows if r["params"]["mode"] != "fail"]
        bad = [r for r in rows if r["params"]["mode"] == "fail"]
        assert ok and bad, "the seed draws both kinds"
        for r in ok:
            assert r["state"] == "finished"
            assert r["value"] == pytest.approx(r["params"]["x"] ** 2, rel=1e-9, abs=1e-12)
        for r in bad:
            assert r["state"] == "failed" and "exited with code 3" in r["message"]
        tails = [a.stderr_tail for a in repo.attempts(task_id=tid) if a.state == "failed"]
        assert tails and all("CUDA out of memory in layer 3" in (t or "") for t in tails)
        for pid in ("p1", "p2"):
            pilots.procs[pid].send_signal(signal.SIGTERM)
            pilots.wait(pid, 30)
        assert ours(api) == [], "every container is removed once its point is done"
    finally:
        pilots.kill_all()


def test_a_missing_image_stops_the_pilot_with_a_clear_error(
        home: Path, tmp_path: Path, podman: Podman, api: Any) -> None:
    repo = Repository()
    broker = f"filesystem://{home / 'queue'}"
    missing = "localhost/gridhpo-no-such-image:1"
    tid, _ = submit(repo, make_task(tmp_path, missing, ["ok"], max_points=3))
    pilots = Pilots(tid, broker, podman, tmp_path)
    try:
        with steering(repo, broker, tid):
            pilots.start("p1")
            pilots.wait("p1", 60)
            until(lambda: any(a.state != "running" for a in repo.attempts(task_id=tid)), 30, "the report")
        log = pilots.log("p1")
        assert f"image {missing!r} not found" in log
        attempts = repo.attempts(task_id=tid)
        assert len(attempts) == 1, "the pilot stops at the first point instead of failing them all"
        assert attempts[0].state == "interrupted" and missing in (attempts[0].message or "")
        assert {p["state"] for p in results(repo, repo.task(tid))} <= {"queued", "running"}, "nothing failed"
    finally:
        pilots.kill_all()


def test_walltime_and_sigterm_stop_gracefully_and_points_are_retried_elsewhere(
        home: Path, tmp_path: Path, podman: Podman, eval_image: str, api: Any) -> None:
    repo = Repository()
    broker = f"filesystem://{home / 'queue'}"
    tid, _ = submit(repo, make_task(tmp_path, eval_image, ["hang"], max_points=2, parallel=2, max_attempts=3))
    pilots = Pilots(tid, broker, podman, tmp_path)
    try:
        with steering(repo, broker, tid):
            # "wall" stops its evaluation grace + 2 s before its walltime; "term" gets SIGTERM as from Slurm
            pilots.start("wall", "--walltime", "14", "--max-points", "1")
            pilots.start("term", "--max-points", "1")

            def running(pid: str) -> bool:
                return any(c.status == "running" for c in api.containers.list(
                    filters={"label": f"{LABEL_PILOT}={pid}"}))

            until(lambda: running("wall") and running("term"), 60, "both pilots to run a container")
            pilots.procs["term"].send_signal(signal.SIGTERM)
            assert pilots.wait("term", 20) == 0
            assert pilots.wait("wall", 30) == 0
            assert ours(api) == [], "no container outlives its pilot"
            for pid in ("wall", "term"):
                saved = list((tmp_path / pid).rglob("checkpoint/term.txt"))
                assert [p.read_text().strip() for p in saved] == ["saved at attempt 1"], pid
            pilots.start("retry", "--idle-timeout", "60")
            until(lambda: repo.task(tid).state != "active", 90, "the retried points to finish")
        rows = results(repo, repo.task(tid))
        assert [r["state"] for r in rows] == ["finished", "finished"]
        by_pilot = {a.pilot_id: a for a in repo.attempts(task_id=tid) if a.number == 1}
        assert set(by_pilot) == {"wall", "term"}
        assert all(a.state == "interrupted" for a in by_pilot.values())
        assert "walltime" in (by_pilot["wall"].message or "")
        assert "SIGTERM" in (by_pilot["term"].message or "")
        retried = [a for a in repo.attempts(task_id=tid) if a.number == 2]
        assert [(a.state, a.pilot_id) for a in retried] == [("finished", "retry")] * 2
        pilots.procs["retry"].send_signal(signal.SIGTERM)
        pilots.wait("retry", 30)
        assert ours(api) == []
    finally:
        pilots.kill_all()


def test_resources_are_applied_to_the_container(tmp_path: Path, podman: Podman, api: Any) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    job = Job(workdir=workdir, command="sleep 30", image=BUSYBOX_IMAGE, env={"GRIDHPO_PILOT_ID": "res"},
              resources={"cpus": 1.5, "memory": "96m"}, name="resources-test")
    runtime = DockerRuntime(base_url=podman.url)
    try:
        handle = runtime.start(job)
        host = api.containers.get("resources-test").attrs["HostConfig"]
        assert host["NanoCpus"] == 1_500_000_000
        assert host["Memory"] == 96 * 1024 * 1024
        assert handle.poll() is None
    finally:
        runtime.close()
    assert ours(api) == [], "close() removes a container that is still running"
    gpu = container_options(Job(workdir=workdir, command="nvidia-smi", image="x", resources={"gpus": 2}), {})
    assert [(d["Count"], d["Capabilities"]) for d in gpu["device_requests"]] == [(2, [["gpu"]])]


def test_an_unreachable_daemon_is_a_clear_error(tmp_path: Path) -> None:
    runtime = DockerRuntime(base_url=f"unix://{tmp_path / 'nothing.sock'}")
    job = Job(workdir=tmp_path, command="true", image=BUSYBOX_IMAGE)
    with pytest.raises(EvaluationError, match="container daemon unreachable at unix://"):
        runtime.start(job)


def test_an_image_without_our_helper_or_a_command_runs_unchanged(tmp_path: Path, podman: Podman,
                                                                eval_image: str) -> None:
    """The ATLAS contract alone: input.json in, output.json out, the image's own CMD."""
    (tmp_path / "input.json").write_text('{"x": 1.5, "mode": "ok"}')
    runtime = DockerRuntime(base_url=podman.url)
    try:
        handle = runtime.start(Job(workdir=tmp_path, command=None, image=eval_image,
                                   env={"GRIDHPO_ATTEMPT": "1"}, name="atlas-contract"))
        until(lambda: handle.poll() is not None, 60, "the container to end")
        assert handle.poll() == 0
        assert (tmp_path / "output.json").read_text().strip() == '{"status": 0, "loss": 2.25}'
    finally:
        runtime.close()
