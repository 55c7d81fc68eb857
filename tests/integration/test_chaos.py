"""Chaos: pilots SIGKILLed every few seconds, the steering SIGKILLed and restarted, and in
production RabbitMQ and PostgreSQL restarted under them. The task still completes with no
point lost, none counted twice, every value right, and no steering crash we did not cause.
The long version is benchmarks/chaos.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos_harness import ChaosPlan, run_chaos
from tests.servers import unavailable


def _restart_tools() -> None:
    import shutil

    for tool in ("rabbitmqctl", "pg_ctlcluster"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} not found: the chaos test restarts this machine's servers with it")
    if not Path("/etc/postgresql").is_dir():
        unavailable("no local PostgreSQL cluster in /etc/postgresql to restart")


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_chaos_completes_without_losing_or_doubling(servers: tuple[str, str], tmp_path: Path) -> None:
    db, broker = servers
    production = db.startswith("postgresql")
    if production:
        _restart_tools()
    plan = ChaosPlan(points=150, pilots=4, kill_every=3.0, steering_kills=1,
                     rabbitmq_restarts=int(production), postgres_restarts=int(production), timeout=180.0)
    r = run_chaos(tmp_path, db, broker, plan)
    where = f"(logs in {r.log_dir})"
    assert r.state == "finished", f"task ended {r.state} {where}"
    assert r.pilot_kills >= 3 and r.steering_kills == 1, f"too little chaos happened: {r}"
    assert (r.rabbitmq_restarts, r.postgres_restarts) == ((1, 1) if production else (0, 0)), r
    assert r.steering_crashes == [], "\n".join(r.steering_crashes)
    assert r.points == plan.points
    assert r.lost == 0, f"{r.lost} points lost {where}"
    assert r.double_counted == 0, f"{r.double_counted} points with two finished attempts {where}"
    assert r.wrong_values == 0, f"{r.wrong_values} finished values differ from the objective {where}"
