"""Chaos for a whole campaign: real steering and pilot processes (``python -m gridhpo.cli``),
a pilot SIGKILLed (with its evaluation) every few seconds and replaced, preferably one that
is mid-evaluation with a checkpoint saved, the steering SIGKILLed and started again, private
RabbitMQ and PostgreSQL instances (tests/private_servers.py) restarted under them. Then the
bookkeeping is audited: every point finished exactly once, with the value its parameters give. Shared by
tests/integration/test_chaos.py and benchmarks/chaos.py.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import GridHPOError

# The evaluation: `epochs` short epochs, checkpointed after each one (a retried attempt
# resumes there); its loss depends on the parameters only, so a result can be checked.
EVAL = '''\
import json, os, sys, time
p = json.load(open("input.json"))
state = os.path.join("checkpoint", "state.json")
epoch = json.load(open(state))["epoch"] if os.path.exists(state) else 0
while epoch < int(p["epochs"]):
    time.sleep(float(p["epoch_seconds"]))
    epoch += 1
    json.dump({"epoch": epoch}, open(state + ".tmp", "w"))
    os.replace(state + ".tmp", state)
json.dump({"status": 0, "loss": objective(p), "message": ""}, open("output.json", "w"))
'''
OBJECTIVE = "def objective(p):\n    return (p['x'] - 0.5) ** 2 + abs(p['y'])\n"


def objective(params: dict[str, float]) -> float:
    return float((params["x"] - 0.5) ** 2 + abs(params["y"]))


@dataclass
class ChaosPlan:
    points: int = 150
    pilots: int = 4
    kill_every: float = 3.0          # seconds between two pilot kills
    steering_kills: int = 1          # at evenly spread fractions of the task
    rabbitmq_restarts: int = 0
    postgres_restarts: int = 0
    outage: float = 2.0              # seconds a stopped server stays down
    epochs: int = 3
    epoch_seconds: float = 0.1
    timeout: float = 300.0
    seed: int = 1


@dataclass
class ChaosResult:
    task_id: int
    state: str
    elapsed: float
    points: int
    lost: int                        # numbers 0..n-1 with no finished point
    double_counted: int              # points with more than one finished attempt
    wrong_values: int                # finished values unequal to the objective of the params
    resumed: int                     # attempts that started from a restored checkpoint
    attempts: int
    pilot_kills: int
    steering_kills: int
    rabbitmq_restarts: int
    postgres_restarts: int
    steering_crashes: list[str] = field(default_factory=list)  # exits and tracebacks we did not cause
    log_dir: Path = Path()


@dataclass
class Restarts:
    """How to restart the servers under the campaign: the private instances of
    tests/private_servers.py, never the machine's shared ones, which other tests are using."""
    rabbitmq: Callable[[float], None] | None = None   # restart(outage)
    postgres: Callable[[], None] | None = None


class _Procs:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.count = 0

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.count += 1
        log = (self.logs / f"{self.count:03d}-{name}.log").open("ab")
        # a session of its own: killing the group kills the evaluation too, as a batch system would
        return subprocess.Popen([sys.executable, "-m", "gridhpo.cli", *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill(p: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill(p)


def _checkpointed(repo: Repository, tid: int, pilots: list[tuple[str, subprocess.Popen[bytes]]]) -> int | None:
    """The index of a pilot whose running attempt has saved a checkpoint: killing it is a
    walltime kill mid-training, the case checkpoints exist for. None when there is none (or
    the database is restarting)."""
    try:
        saved = {c.attempt_id for c in repo.checkpoints(tid) if c.kind == "saved"}
        running = {a.pilot_id for a in repo.attempts(task_id=tid) if a.state == "running" and a.id in saved}
    except GridHPOError:
        return None
    return next((i for i, (pid, _) in enumerate(pilots) if pid in running), None)


def _disrupt(kind: str, steer: subprocess.Popen[bytes], procs: _Procs, servers: Restarts,
             outage: float) -> subprocess.Popen[bytes]:
    """One scheduled disruption; returns the steering process running afterwards."""
    if kind == "steering":
        _kill(steer)
        time.sleep(1.0)
        return procs.start("steer", "steer", "-v")
    restart_rabbitmq, restart_postgres = servers.rabbitmq, servers.postgres
    if kind == "rabbitmq" and restart_rabbitmq is not None:
        restart_rabbitmq(outage)
    elif kind == "postgres" and restart_postgres is not None:
        restart_postgres()
    return steer


def run_chaos(workdir: Path, db: str, broker: str, plan: ChaosPlan,
              progress: Callable[[str], None] | None = None, restarts: Restarts | None = None) -> ChaosResult:
    say = progress or (lambda _msg: None)
    servers = restarts or Restarts()
    if (plan.rabbitmq_restarts and servers.rabbitmq is None) or (plan.postgres_restarts and servers.postgres is None):
        raise ValueError(f"the plan restarts a server it was given no restart for: {plan}, {servers}")
    rng = random.Random(plan.seed)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (workdir / "evaluate.py").write_text(OBJECTIVE + EVAL)
    (workdir / "task.yaml").write_text(yaml.safe_dump({
        "name": f"chaos-{os.getpid()}-{int(time.time())}",
        "search_space": {"x": {"type": "float", "low": -2, "high": 2},
                         "y": {"type": "float", "low": -1, "high": 1},
                         "epochs": {"type": "fixed", "value": plan.epochs},
                         "epoch_seconds": {"type": "fixed", "value": plan.epoch_seconds}},
        "optimiser": {"backend": "random", "seed": plan.seed},
        "budget": {"max_points": plan.points, "parallel": plan.pilots, "max_attempts": 50},
        "evaluation": {"command": 'python "$GRIDHPO_TASK_DIR/evaluate.py"', "heartbeat": 0.5,
                       "lost_after": 3, "grace": 2, "checkpoint": {"interval": 0.1}},
    }))
    env = dict(os.environ, GRIDHPO_DB=db, GRIDHPO_BROKER=broker, GRIDHPO_HOME=str(workdir / "home"))
    env.pop("GRIDHPO_STORE", None)
    out = subprocess.run([sys.executable, "-m", "gridhpo.cli", "submit", str(workdir / "task.yaml")],
                         env=env, capture_output=True, text=True, check=True)
    tid = int(out.stdout.strip())
    repo = Repository(db)
    env["GRIDHPO_TOKEN"] = repo.task(tid).token or ""  # what `gridhpo token TASK` prints
    procs = _Procs(env, logs)
    crashes: list[str] = []
    t0 = time.monotonic()
    steer = procs.start("steer", "steer", "-v")

    def start_pilot() -> tuple[str, subprocess.Popen[bytes]]:
        pid = f"chaos-{procs.count + 1}"
        return pid, procs.start("pilot", "pilot", "--task", str(tid), "--pilot-id", pid)

    pilots = [start_pilot() for _ in range(plan.pilots)]
    # the disruptions, each at a fraction of the task's finished points
    n_events = plan.steering_kills + plan.rabbitmq_restarts + plan.postgres_restarts
    kinds = (["steering"] * plan.steering_kills + ["rabbitmq"] * plan.rabbitmq_restarts
             + ["postgres"] * plan.postgres_restarts)
    rng.shuffle(kinds)
    schedule = [(int(plan.points * (i + 1) / (n_events + 1)), kind) for i, kind in enumerate(kinds)]
    done = {"pilot": 0, "steering": 0, "rabbitmq": 0, "postgres": 0}
    next_kill = time.monotonic() + plan.kill_every
    state = "active"
    try:
        while time.monotonic() - t0 < plan.timeout:
            try:
                state = repo.task(tid).state
                finished = repo.counts(tid).get("finished", 0)
            except GridHPOError:
                finished = -1  # the database is restarting
            if state != "active":
                break
            if steer.poll() is not None:
                crashes.append(f"steering exited by itself with code {steer.returncode}")
                steer = procs.start("steer", "steer", "-v")
            if schedule and 0 <= schedule[0][0] <= finished:
                _, kind = schedule.pop(0)
                say(f"{finished} finished: {kind}")
                steer = _disrupt(kind, steer, procs, servers, plan.outage)
                done[kind] += 1
            if time.monotonic() >= next_kill:
                i = _checkpointed(repo, tid, pilots)
                if i is None:
                    i = rng.randrange(len(pilots))
                _kill(pilots[i][1])
                pilots[i] = start_pilot()
                done["pilot"] += 1
                next_kill = time.monotonic() + plan.kill_every
            for i, (_, p) in enumerate(pilots):
                if p.poll() is not None:  # a pilot may exit (e.g. broker gone too long): replace it
                    pilots[i] = start_pilot()
            time.sleep(0.2)
    finally:
        _stop([steer, *(p for _, p in pilots)])
    elapsed = time.monotonic() - t0
    if steer.returncode not in (0, -signal.SIGTERM):
        crashes.append(f"the last steering ended with code {steer.returncode}")
    for f in sorted(logs.glob("*-steer.log")):
        text = f.read_text(errors="replace")
        if "Traceback" in text:
            crashes.append(f"{f.name}: {text[text.index('Traceback'):][:3000]}")
    state = repo.task(tid).state
    points = repo.points(tid)
    finished_points = {p.number: p for p in points if p.state == "finished"}
    attempts = repo.attempts(task_id=tid)
    per_point = Counter(a.point_id for a in attempts if a.state == "finished")
    resumed = {(c.point_id, c.attempt_id) for c in repo.checkpoints(tid) if c.kind == "restored"}
    repo.close()
    return ChaosResult(
        task_id=tid, state=state, elapsed=elapsed, points=len(points),
        lost=sum(1 for n in range(plan.points) if n not in finished_points),
        double_counted=sum(1 for p in points if per_point[p.id] > 1),
        wrong_values=sum(1 for p in finished_points.values()
                         if p.value is None or abs(p.value - objective(p.params)) > 1e-12),
        resumed=len(resumed), attempts=len(attempts), pilot_kills=done["pilot"],
        steering_kills=done["steering"], rabbitmq_restarts=done["rabbitmq"],
        postgres_restarts=done["postgres"], steering_crashes=crashes, log_dir=logs,
    )
