"""Thin click commands: parse, call the packages, print. Logic lives in steering/, evaluation/."""
from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from gridhpo import __version__, config
from gridhpo.cli import remote
from gridhpo.cli.options import broker_option, db_option, server_option, task_argument, verbosity
from gridhpo.cli.progress import RunProgress
from gridhpo.errors import GridHPOError
from gridhpo.extras import install_hint

log = logging.getLogger("gridhpo")


def _setup_logging(verbose: int, default: int = logging.WARNING) -> None:
    level = default if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("gridhpo").setLevel(min(level, logging.INFO) if default == logging.INFO else level)
    for noisy in ("alembic", "kombu", "amqp", "hyperopt", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _repo(db: str | None) -> Any:
    from gridhpo.bookkeeping import Repository

    return Repository(db)


class _Group(click.Group):
    """Every GridHPOError becomes a one-line error and exit code 1, never a traceback; so does a
    library of an extra that is not installed (the light install of a site has no SQLAlchemy)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GridHPOError as exc:
            click.echo(f"gridhpo: error: {exc}", err=True)
            ctx.exit(1)
        except ModuleNotFoundError as exc:
            hint = install_hint(_command_name(ctx), exc)
            if hint is None:
                raise
            click.echo(f"gridhpo: error: {hint}", err=True)
            ctx.exit(1)


def _command_name(ctx: click.Context) -> str:
    """``gridhpo pilots submit``: the command that ``ctx``, a group's context, was invoking."""
    names = [ctx.invoked_subcommand or ""]
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["gridhpo", *reversed([n for n in names if n])])


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="gridhpo")
def main() -> None:
    """gridhpo: hyperparameter optimisation across computing sites.

    Submit a task file, run the steering and pilots, and look at the results. State lives
    in GRIDHPO_HOME (default ~/.gridhpo) unless --db/--broker name servers.
    """


@main.command()
@click.argument("task_file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--name", default=None, help="Use this task name instead of the file's.")
@click.option("--phpo", "phpo_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read phpo's options file (its --loadJson/--dumpJson JSON) instead of a task file.")
@click.option("--hpogrid", "hpogrid_path", type=click.Path(path_type=Path), default=None,
              help="Read an hpogrid project (its project file, or a folder of hpo_config.json, model_config.json, "
                   "search_space.json) instead of a task file.")
@click.option("--dry-run", is_flag=True, help="Print the task file (YAML) that would be submitted, and stop.")
@db_option
@server_option
@verbosity
def submit(task_file: Path | None, name: str | None, phpo_file: Path | None, hpogrid_path: Path | None,
           dry_run: bool, db: str | None, server: str | None, verbose: int) -> None:
    """Validate TASK_FILE (or --phpo OPTIONS, --hpogrid PROJECT), record it as a new task and print
    its id (a segmented phpo task: one task per segment, one id per line); with --server, through
    the service."""
    _setup_logging(verbose)
    from gridhpo.steering import sources

    if sum(x is not None for x in (task_file, phpo_file, hpogrid_path)) != 1:
        raise click.UsageError("give a TASK_FILE, --phpo OPTIONS or --hpogrid PROJECT (exactly one)")
    submission = sources.read(task_file, phpo_file, hpogrid_path, name)
    for warning in submission.warnings:
        click.echo(f"gridhpo: warning: {warning}", err=True)
    if dry_run:
        click.echo(sources.dump(submission), nl=False)
        return
    if server:
        # a segmented submission's tasks carry their own names (<name>.<segment>)
        for spec, _ in submission.tasks:
            remote.submit(server, spec.to_dict(), submission.name if len(submission.tasks) == 1 else None)
        return
    for task_id, task_name in sources.submit(_repo(db), submission):
        click.echo(task_id)
        click.echo(f"submitted task {task_name!r} (id {task_id}); start `gridhpo steer` and pilots to run it; "
                   f"pilots need its token: `gridhpo token {task_id}`", err=True)


@main.command()
@db_option
@broker_option
@verbosity
def steer(db: str | None, broker: str | None, verbose: int) -> None:
    """Run the steering service: serve every active task until SIGTERM or Ctrl-C."""
    _setup_logging(verbose, logging.INFO)
    from gridhpo.protocol import Broker
    from gridhpo.steering.lock import SteeringLock
    from gridhpo.steering.service import Steering

    repo = _repo(db)
    lock = SteeringLock(repo)
    if not lock.acquire():
        raise click.ClickException(f"another steering already serves {config.redact(repo.url)}")
    stop = threading.Event()
    _stop_on_signals(stop)
    # the steering's own messages need no publisher confirms: a lost point message is
    # found in the bookkeeping and sent again
    with Broker(config.broker_url(broker), confirm=False) as b:
        try:
            Steering(repo, b, lock=lock).run(stop)
        finally:
            lock.release()


def _duration(value: str | None, name: str, parse: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(parse(value, name))
    except GridHPOError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@main.command()
@click.argument("task_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pilots", type=click.IntRange(min=1), default=2, show_default=True, help="Local pilot processes.")
@click.option("--name", default=None, help="Task name (default: the file's; a suffix is added if taken).")
@db_option
@broker_option
@verbosity
def run(task_file: Path, pilots: int, name: str | None, db: str | None, broker: str | None, verbose: int) -> None:
    """Submit TASK_FILE, steer it with N local pilots, show progress, print the best point."""
    _setup_logging(verbose)
    from gridhpo.evaluation.environment import make_undumpable

    make_undumpable()  # the evaluations of its pilots must not read its environment (GRIDHPO_DB...)
    from gridhpo.steering.runner import run_task
    from gridhpo.steering.runner import submit as do_submit
    from gridhpo.steering.taskfile import load_task

    spec = load_task(task_file)
    repo = _repo(db)
    task_id, task_name = do_submit(repo, spec, name, unique=name is None)
    click.echo(f"task {task_name!r} (id {task_id}): {spec.budget.max_points} points, "
               f"{spec.optimiser.backend} search, {pilots} pilots", err=True)
    stop = threading.Event()
    _stop_on_signals(stop)
    progress = RunProgress(task_name, spec.budget.max_points, sys.stderr.isatty())
    try:
        result = run_task(repo, config.broker_url(broker), task_id, pilots, on_progress=progress.update, stop=stop)
    finally:
        progress.close()
    from gridhpo.steering.reports import best_point

    p = result.progress
    click.echo(f"task {result.name!r} (id {task_id}) {result.state}: {p['finished']} finished, "
               f"{p['failed']} failed", err=True)
    if result.state == "active":
        click.echo("stopped before the end; the task stays active: `gridhpo steer` with pilots continues it", err=True)
    if spec.goals.multi:
        from gridhpo.steering.fronts import front_size

        click.echo(f"Pareto front: {front_size(repo, repo.task(task_id), spec.goals)} points (gridhpo results "
                   f"{task_id} --pareto); the best point below is by {spec.objective.metric} alone", err=True)
    best = best_point(repo, repo.task(task_id))
    if best is None:
        click.echo("no point finished", err=True)
        sys.exit(1 if result.state != "active" else 130)
    number, value, params = best
    click.echo(json.dumps({"task": result.name, "task_id": task_id, "best_point": number,
                           spec.objective.metric: value, "params": params}))


@main.command()
@click.argument("task", required=False, metavar="[TASK]")
@db_option
@server_option
def status(task: str | None, db: str | None, server: str | None) -> None:
    """Show every task (or one TASK, by id or name) with its points by state."""
    _setup_logging(0)
    if server:
        return remote.status(server, task)
    from gridhpo.steering.optimisers import describe
    from gridhpo.steering.reports import status_rows
    from gridhpo.steering.tables import render_table

    repo = _repo(db)
    tasks = [repo.task(task)] if task else repo.tasks()
    if not tasks:
        click.echo("no tasks yet: `gridhpo submit TASK_FILE` or `gridhpo run TASK_FILE`")
        return
    header, rows = status_rows(repo, tasks)
    click.echo(render_table(header, rows))
    if task:
        t = tasks[0]
        click.echo(f"optimiser: {describe(t.spec['optimiser'])}")
        if t.message:
            click.echo(f"message: {t.message}")
        pilots = repo.pilots(t.id)
        if pilots:
            click.echo(f"pilots: {len(pilots)} ({', '.join(sorted({p.site for p in pilots}))})")


@main.command()
@task_argument
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--sort", "sort", type=click.Choice(["number", "value"]), default="number", show_default=True)
@click.option("--point", "number", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only point N, with each attempt in full (pilot, times, message, stderr tail).")
@click.option("--lineage", "schedule", is_flag=True,
              help="Population-based training: the best member's hyperparameter schedule.")
@click.option("--pareto", is_flag=True,
              help="Only the Pareto front: the finished feasible points no other dominates, with each objective.")
@click.option("--artifacts", "artifacts", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Download each attempt's metadata and metrics files (evaluation.files.meta, "
                                  "metrics) into DIR/point-N/attempt-A/ instead of listing the points.")
@click.option("--store", default=None, metavar="URL",
              help="With --artifacts: the store the pilots used; default: the task's evaluation.checkpoint.store, "
                   "else GRIDHPO_STORE, else GRIDHPO_HOME/store.")
@db_option
@server_option
def results(task: str, fmt: str, sort: str, number: int | None, schedule: bool, pareto: bool,
            artifacts: Path | None, store: str | None, db: str | None, server: str | None) -> None:
    """Every point of TASK with its parameters, state, value, attempts and why it failed."""
    _setup_logging(0)
    if schedule:
        if server:
            return remote.lineage(server, task, fmt)
        from gridhpo.steering.lineage import format_schedule, mode_of, segments

        repo = _repo(db)
        row = repo.task(task)
        click.echo(format_schedule(mode_of(row), segments(repo, row), fmt))
        return None
    if artifacts is not None:
        if server:
            raise click.UsageError("--artifacts reads the store directly: run it where the store is reachable, "
                                   "without --server")
        from gridhpo.cli.artifacts import download_artifacts

        click.echo(download_artifacts(_repo(db).task(task), artifacts, store))
        return None
    if server:
        return remote.results(server, task, fmt, sort, number, pareto)
    from gridhpo.steering.objectives import goals_of
    from gridhpo.steering.reports import format_point, format_results
    from gridhpo.steering.reports import results as get_results

    repo = _repo(db)
    row = repo.task(task)
    rows = get_results(repo, row, number)
    if pareto:
        from gridhpo.steering.fronts import pareto_text

        click.echo(pareto_text(rows, row.spec, fmt))
        return
    if number is not None:
        if not rows:
            raise click.ClickException(f"task {row.name!r} has no point {number} "
                                       f"(it has {sum(repo.counts(row.id).values())} points)")
        click.echo(format_point(rows[0], fmt))
        return
    if sort == "value":
        mode = goals_of(row.spec).objectives[0].mode
        sign = 1 if mode == "min" else -1
        rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] if r["value"] is not None else math.inf)))
    click.echo(format_results(rows, fmt, goals_of(row.spec).objectives[0].mode))


@main.command()
@task_argument
@db_option
@server_option
def cancel(task: str, db: str | None, server: str | None) -> None:
    """Cancel TASK: no new points; the steering ends its open ones."""
    _setup_logging(0)
    if server:
        return remote.cancel(server, task)
    repo = _repo(db)
    row = repo.task(task)
    if row.state != "active":
        raise click.ClickException(f"task {row.name!r} is {row.state}, not active")
    repo.set_task_state(row.id, "cancelled", "cancelled by the user")
    click.echo(f"task {row.name!r} (id {row.id}) cancelled")


@main.command()
@task_argument
@click.option("--revoke", is_flag=True, help="Replace the token: pilots holding the old one get nothing more.")
@click.option("--expires", default=None, metavar="DURATION", help="The token stops working after this long.")
@db_option
@server_option
def token(task: str, revoke: bool, expires: str | None, db: str | None, server: str | None) -> None:
    """Print TASK's token, which its pilots need (--token or GRIDHPO_TOKEN), as TOKEN.KEY: KEY
    verifies the steering's signature on what they run."""
    _setup_logging(0)
    if server:
        return remote.token(server, task, revoke, expires)
    from gridhpo.steering.submission import pilot_token
    from gridhpo.steering.taskfile import parse_duration

    repo = _repo(db)
    row = repo.task(task)
    value, _ = pilot_token(repo, row, revoke, _duration(expires, "--expires", parse_duration))
    if revoke:
        click.echo(f"task {row.name!r}: token replaced; pilots holding the old one get nothing more", err=True)
    from gridhpo.steering.keys import pilot_credential

    click.echo(pilot_credential(repo, value))  # with the signing steering's key: pilots check what they run


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s received: stopping (again to abort)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# Commands of other packages register here, one line each.
main.add_command(__import__("gridhpo.cli.pilot", fromlist=["pilot"]).pilot)
main.add_command(__import__("gridhpo.cli.plot", fromlist=["plot"]).plot)
main.add_command(__import__("gridhpo.cli.plot", fromlist=["dashboard"]).dashboard)
main.add_command(__import__("gridhpo.cli.pilots", fromlist=["pilots"]).pilots)
main.add_command(__import__("gridhpo.cli.segments", fromlist=["segments"]).segments)
main.add_command(__import__("gridhpo.cli.admin", fromlist=["admin"]).admin)
main.add_command(__import__("gridhpo.cli.service", fromlist=["server"]).server)
main.add_command(__import__("gridhpo.cli.service", fromlist=["login"]).login)


if __name__ == "__main__":
    main()
