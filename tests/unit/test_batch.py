"""Walltime from the batch system, the pilot backend contract (gridhpo.testing.backends) over
every backend, and pilot jobs on the local backend (real processes)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.errors import ConfigError, UnknownNameError
from gridhpo.evaluation import backends
from gridhpo.evaluation import submit as pilots
from gridhpo.evaluation.backends import PilotBackend
from gridhpo.evaluation.batch import parse_slurm_duration, remaining_walltime
from gridhpo.testing.backends import BackendContract
from tests.slurm import fake_slurm, slurm_cluster


class TestBackends(BackendContract):
    """Every registered backend; Slurm both as the fake (fast tier) and as a real cluster."""

    @pytest.fixture(params=[*sorted(set(backends.REGISTRY) - {"slurm"}), "slurm-fake",
                            pytest.param("slurm", marks=pytest.mark.integration)])
    def pilot_backend(self, request: pytest.FixtureRequest, home: Path, tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[PilotBackend]:
        name = str(request.param)
        if not name.startswith("slurm"):
            yield backends.get(name)()
            return
        harness = fake_slurm if name == "slurm-fake" else slurm_cluster
        with harness(tmp_path_factory.mktemp(name)) as env:
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            yield backends.get("slurm")()


@pytest.mark.parametrize("text, seconds", [("0:45", 45), ("59:59", 3599), ("1:00:00", 3600),
                                           ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
                                           ("UNLIMITED", None), ("NOT_SET", None), ("", None)])
def test_slurm_durations(text: str, seconds: float | None) -> None:
    assert parse_slurm_duration(text) == seconds


def test_remaining_walltime_from_the_environment() -> None:
    now = 1_000_000.0
    assert remaining_walltime({}, now) is None
    assert remaining_walltime({"SLURM_JOB_END_TIME": "1000600"}, now) == 600
    # an explicit end wins over the batch system's
    assert remaining_walltime({"GRIDHPO_WALLTIME_END": "1000030", "SLURM_JOB_END_TIME": "1000600"}, now) == 30
    with pytest.raises(ConfigError, match="GRIDHPO_WALLTIME_END='soon' is not a Unix time"):
        remaining_walltime({"GRIDHPO_WALLTIME_END": "soon"}, now)


def test_slurm_script_has_the_time_limit_and_a_pilot_id_per_job(tmp_path: Path) -> None:
    script = tmp_path / "p.sh"
    pilots.write_script("slurm", 7, "cern", 5400.5, script, tmp_path / "p.log", broker="amqp://u:p@mq//",
                        token="tok-7-secret")
    text = script.read_text()
    assert "#SBATCH --time=0-01:30:01" in text and f"#SBATCH --output={tmp_path / 'p.log'}" in text
    assert "--pilot-id cern-slurm-$SLURM_JOB_ID" in text and "--walltime" not in text  # asks Slurm instead
    # the broker's password is on no line of the script, only in its 0600 .env file
    assert "u:p@" not in text and "tok-7-secret" not in text and f"--env-file {tmp_path / 'p.env'}" in text
    assert (tmp_path / "p.env").read_text().splitlines()[-2:] == ["GRIDHPO_BROKER=amqp://u:p@mq//",
                                                                  "GRIDHPO_TOKEN=tok-7-secret"]
    assert (tmp_path / "p.env").stat().st_mode & 0o077 == 0


def test_bad_submissions_are_refused(home: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'slurm'"):
        pilots.submit(1, "slurn", 1, 60)
    with pytest.raises(ConfigError, match="--extra passes options to sbatch"):
        pilots.submit(1, "local", 1, 60, extra="--partition=gpu")


def test_local_pilots_run_until_their_walltime_and_status_shows_them(home: Path) -> None:
    runner = CliRunner()
    branin = Path(__file__).resolve().parents[2] / "examples" / "branin" / "task.yaml"
    assert runner.invoke(main, ["submit", str(branin)]).exit_code == 0
    token = runner.invoke(main, ["token", "1"]).stdout.strip()
    out = runner.invoke(main, ["pilots", "submit", "--task", "1", "--backend", "local", "--count", "2",
                               "--walltime", "4", "--site", "laptop"])
    assert out.exit_code == 0, out.output
    assert out.output.count("local job ") == 2
    # the pilots get the task's token, read from the bookkeeping, in their .env file, not in the script
    for s in pilots.submissions(1):
        assert token not in Path(s.script).read_text()
        assert f"GRIDHPO_TOKEN={token}\n" in Path(s.script).with_suffix(".env").read_text()
    status = runner.invoke(main, ["pilots", "status"])
    assert status.output.count(" running ") == 2 and "laptop" in status.output
    deadline = time.monotonic() + 30
    while any(r["state"] != "ended" for r in pilots.status()):
        assert time.monotonic() < deadline, "local pilots outlived their walltime"
        time.sleep(0.2)
    logs = [Path(r["log"]).read_text() for r in pilots.status(1)]
    assert all("not enough walltime left" in text for text in logs), logs
    assert runner.invoke(main, ["pilots", "status", "--task", "2"]).output.strip() == "no pilot submitted for task 2"


def test_status_shows_jobs_of_a_backend_no_longer_installed(home: Path) -> None:
    """A submission recorded by a plug-in backend since uninstalled is shown, its state unknown."""
    gone = pilots.Submission("pbs", "42.server", 3, "site", "s.sh", "s.log", 60.0, time.time())
    (pilots.pilots_dir() / "submitted.jsonl").write_text(json.dumps(asdict(gone)) + "\n")
    [row] = pilots.status()
    assert (row["backend"], row["job"], row["state"], row["left"]) == ("pbs", "42.server", "unknown", None)
