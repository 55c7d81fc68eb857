"""``gridhpo pilots submit|status``: thin commands over gridhpo.evaluation.submit."""
from __future__ import annotations

import datetime

import click

from gridhpo.cli.main import _Group
from gridhpo.cli.options import broker_option, db_option, verbosity


@click.group(cls=_Group)
def pilots() -> None:
    """Pilot jobs at a site: submit them to a batch system, show them."""


@pilots.command()
@click.option("--task", "task", required=True, help="Task id (a number, as `gridhpo submit` prints).")
@click.option("--backend", required=True, metavar="NAME",
              help="Where the pilots run: a pilot backend (slurm, local; gridhpo.evaluation.backends).")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="How many pilot jobs.")
@click.option("--walltime", required=True, metavar="DURATION", help="Each job's time limit (e.g. 3600, 90m, 1h).")
@click.option("--site", default=None, help="Site name in every event (default: the backend's name).")
@click.option("--extra", default="", metavar="'OPTIONS'", help="More sbatch options, e.g. '--partition=gpu -A proj'.")
@click.option("--runtime", default=None, help="Container runtime for tasks with an image (docker, apptainer).")
@click.option("--token", envvar="GRIDHPO_TOKEN", default=None,
              help="The task's token (default: read from the bookkeeping, --db).")
@broker_option
@db_option
@verbosity
def submit(task: str, backend: str, count: int, walltime: str, site: str | None, extra: str,
           runtime: str | None, token: str | None, broker: str | None, db: str | None, verbose: int) -> None:
    """Write and submit COUNT pilot batch scripts for TASK."""
    from gridhpo.cli.main import _duration, _setup_logging
    from gridhpo.evaluation import backends
    from gridhpo.evaluation import submit as sub
    from gridhpo.steering.taskfile import parse_duration

    _setup_logging(verbose)
    if not task.isdigit():
        raise click.BadParameter("pilots take the task id (a number), which `gridhpo submit` prints",
                                 param_hint="--task")
    backends.get(backend)  # a typo fails here, with close matches, before the bookkeeping is read
    seconds = _duration(walltime, "--walltime", parse_duration)
    assert seconds is not None
    if token is None:
        from gridhpo.bookkeeping import Repository

        repo = Repository(db)
        row = repo.task(int(task))
        if row.token is not None:  # with the signing steering's key, as `gridhpo token` prints it
            from gridhpo.steering.keys import pilot_credential

            token = pilot_credential(repo, row.token)
        _register_signing_key(row.spec)
    for s in sub.submit(int(task), backend, count, seconds, site, extra, broker, runtime, token):
        click.echo(f"{s.backend} job {s.job_id}: pilot for task {s.task_id} at {s.site} (script {s.script})")


def _register_signing_key(spec: dict[str, object]) -> None:
    """The task's checkpoint signing key, when read from a variable of any name (``env:NAME``), is
    a secret: it goes to the pilot in its .env file, not in the job's environment."""
    import os

    from gridhpo.evaluation.environment import register_secret
    from gridhpo.steering.taskfile import TaskSpec

    key = TaskSpec.from_dict(spec).evaluation.checkpoint.signing_key
    if key and key.startswith("env:"):
        register_secret(os.environ.get(key[4:]))


@pilots.command()
@click.option("--task", "task", default=None, type=int, help="Only the pilots of this task id.")
def status(task: int | None) -> None:
    """The submitted pilot jobs and their state."""
    from gridhpo.evaluation.submit import status as get_status
    from gridhpo.steering.tables import render_table

    rows = get_status(task)
    if not rows:
        click.echo("no pilot submitted" + (f" for task {task}" if task is not None else ""))
        return

    def dur(v: float | None) -> str:
        return "-" if v is None else str(datetime.timedelta(seconds=int(v)))

    header = ["backend", "job", "task", "site", "state", "elapsed", "left", "submitted"]
    table = [[r["backend"], r["job"], r["task"], r["site"], r["state"], dur(r["elapsed"]), dur(r["left"]),
              datetime.datetime.fromtimestamp(r["submitted"]).strftime("%Y-%m-%d %H:%M:%S")] for r in rows]
    click.echo(render_table(header, table))
