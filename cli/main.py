"""Thin click commands: parse, call the packages, print. Logic lives in steering/, evaluation/."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from gridhpo import __version__, config
from gridhpo.cli import remote
from gridhpo.cli.options import broker_option, db_option, server_option, task_argument, verbosity
from gridhpo.errors import GridHPOError
from gridhpo.evaluation.workdirs import KEEP_FAILED
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


@main.command()
@click.option("--task", "task", required=True, metavar="ID|NAME",
              help="The task whose points to evaluate: its id, or its name where the bookkeeping is reachable "
                   "(--db / GRIDHPO_DB, or GRIDHPO_HOME's); a pilot itself never needs the bookkeeping.")
@click.option("--pilot-id", default=None, help="Identifier in every event (default: random).")
@click.option("--site", default="local", show_default=True, help="Site name in every event.")
@click.option("--max-points", type=click.IntRange(min=1), default=None, help="Exit after this many points.")
@click.option("--walltime", default=None, metavar="DURATION",
              help="This pilot's time limit (e.g. 3600, 90m, 2h); default: the batch job's (Slurm), else none.")
@click.option("--idle-timeout", default=None, metavar="DURATION", help="Exit when no point comes for this long.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where work directories go (default: GRIDHPO_HOME/work/PILOT_ID).")
@click.option("--runtime", default=None, help="Container runtime for tasks with an image.")
@click.option("--keep-workdirs", is_flag=True, help="Keep the work directories of every point.")
@click.option("--keep-failed", type=click.IntRange(min=0), default=KEEP_FAILED, show_default=True,
              help="Work directories of failed or interrupted points kept (oldest removed first).")
@click.option("--keep-failed-size", default="1G", show_default=True, metavar="SIZE",
              help="Total size of the kept work directories of failed points (e.g. 500M, 2G).")
@click.option("--token", envvar="GRIDHPO_TOKEN", default=None,
              help="The task's token (`gridhpo token TASK`); without the right one a pilot gets no point. "
                   "On the command line it is visible in `ps` to every user of the node: prefer "
                   "GRIDHPO_TOKEN or --token-file.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A file (mode 0600) holding the task's token; wins over --token / GRIDHPO_TOKEN.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A file (mode 0600) of NAME=VALUE lines added to this pilot's environment first: "
                   "GRIDHPO_TOKEN, GRIDHPO_BROKER, AWS_*... kept off the command line (`ps`).")
@click.option("--store", default=None, metavar="URL",
              help="Checkpoint store (file:///path, s3://bucket/prefix?endpoint=URL); default: the task "
                   "file's evaluation.checkpoint.store, else GRIDHPO_STORE, else GRIDHPO_HOME/store.")
@click.option("--server", envvar="GRIDHPO_SERVER", default=None, metavar="URL",
              help="Take points and report through the service's pilot gateway (https://...) instead of the "
                   "broker: a site needs only outbound HTTPS (docs/gateway.md). Needs the task's token.")
@broker_option
@db_option
@verbosity
def pilot(task: str, pilot_id: str | None, site: str, max_points: int | None, walltime: str | None,
          idle_timeout: str | None, workdir: Path | None, runtime: str | None, keep_workdirs: bool, keep_failed: int,
          keep_failed_size: str, token: str | None, token_file: Path | None, env_file: Path | None,
          store: str | None, server: str | None, broker: str | None, db: str | None, verbose: int) -> None:
    """Evaluate points of one task until its budget, walltime or --max-points ends."""
    _setup_logging(verbose, logging.INFO)
    token, broker = _pilot_secrets(token, token_file, env_file, broker)
    from gridhpo.evaluation.pilot import Pilot, PilotConfig
    from gridhpo.evaluation.workdirs import parse_size
    from gridhpo.protocol import Broker
    from gridhpo.steering.taskfile import parse_duration

    task_id = int(task) if task.isdigit() else _task_id_by_name(task, db)
    try:
        failed_bytes = parse_size(keep_failed_size, "--keep-failed-size")
    except GridHPOError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep-failed-size") from None
    # the bookkeeping's columns: longer ones would get every event of this pilot refused
    if pilot_id is not None and not 0 < len(pilot_id) <= 64:
        raise click.BadParameter(f"{len(pilot_id)} characters; at most 64", param_hint="--pilot-id")
    if not 0 < len(site) <= 128:
        raise click.BadParameter(f"{len(site)} characters; at most 128", param_hint="--site")
    from gridhpo.evaluation.batch import remaining_walltime

    seconds = _duration(walltime, "--walltime", parse_duration)
    cfg = PilotConfig(task_id=task_id, site=site, max_points=max_points,
                      walltime=seconds if seconds is not None else remaining_walltime(),
                      idle_timeout=_duration(idle_timeout, "--idle-timeout", parse_duration),
                      runtime=runtime, keep_workdirs=keep_workdirs, keep_failed=keep_failed,
                      keep_failed_bytes=failed_bytes, token=token, store=store)
    if pilot_id:
        cfg.pilot_id = pilot_id
    cfg.workroot = workdir or config.home() / "work" / cfg.pilot_id
    if server is not None and not token:
        raise click.UsageError("--server needs the task's token (--token-file, GRIDHPO_TOKEN or --token)")
    from gridhpo.protocol.httptransport import HttpBroker

    with HttpBroker(server, task_id, token) if server and token else Broker(config.broker_url(broker)) as b:
        p = Pilot(b, cfg)
        p.install_signal_handlers()
        stats = p.run()
    click.echo(f"pilot {cfg.pilot_id}: {stats.finished} finished, {stats.failed} failed, "
               f"{stats.interrupted} interrupted; {stats.exit_reason}", err=True)
    if stats.exit_code:
        sys.exit(stats.exit_code)  # evaluation/handshake.py: 3 when the steering refused the token


def _pilot_secrets(token: str | None, token_file: Path | None, env_file: Path | None,
                   broker: str | None) -> tuple[str | None, str | None]:
    """The token and broker URL of a pilot, after --env-file and --token-file are read; the pilot
    becomes non-dumpable so that its evaluations cannot read them in its /proc entries."""
    from gridhpo.evaluation import environment

    environment.make_undumpable()
    try:
        if env_file is not None:
            loaded = environment.read_env_file(env_file)
            os.environ.update(loaded)
            token = token or loaded.get("GRIDHPO_TOKEN")
            broker = broker or loaded.get("GRIDHPO_BROKER")
        if token_file is not None:
            token = environment.read_token_file(token_file)
    except GridHPOError as exc:
        raise click.UsageError(str(exc)) from None
    environment.register_url(config.broker_url(broker))
    return token, broker


def _task_id_by_name(name: str, db: str | None) -> int:
    """A task's id from its name, through the bookkeeping: --db / GRIDHPO_DB if given, else
    GRIDHPO_HOME's if it exists (a pilot on a worker node has none, and is given the id)."""
    url = config.db_url(db)
    if db is None and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise click.BadParameter(
            f"{name!r} is a task name, and no bookkeeping is reachable here to find its id (no --db, no "
            f"GRIDHPO_DB, no {url.removeprefix('sqlite:///')}); give the task id that `gridhpo submit` printed",
            param_hint="--task")
    try:
        return int(_repo(db).task(name).id)
    except GridHPOError as exc:
        raise click.BadParameter(f"{exc}; give a task id or the name of a task in that bookkeeping",
                                 param_hint="--task") from None


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
    progress = _Progress(task_name, spec.budget.max_points, sys.stderr.isatty())
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
@db_option
@server_option
def results(task: str, fmt: str, sort: str, number: int | None, db: str | None, server: str | None) -> None:
    """Every point of TASK with its parameters, state, value, attempts and why it failed."""
    _setup_logging(0)
    if server:
        return remote.results(server, task, fmt, sort, number)
    from gridhpo.steering.reports import format_point, format_results
    from gridhpo.steering.reports import results as get_results

    repo = _repo(db)
    row = repo.task(task)
    rows = get_results(repo, row, number)
    if number is not None:
        if not rows:
            raise click.ClickException(f"task {row.name!r} has no point {number} "
                                       f"(it has {sum(repo.counts(row.id).values())} points)")
        click.echo(format_point(rows[0], fmt))
        return
    if sort == "value":
        sign = 1 if row.spec["objective"]["mode"] == "min" else -1
        rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] if r["value"] is not None else math.inf)))
    click.echo(format_results(rows, fmt, row.spec["objective"]["mode"]))


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


class _Progress:
    """``gridhpo run``'s progress on stderr: a bar on a terminal; elsewhere (a batch log, a
    pipe) a whole line now and then, never a bar's partial line."""

    EVERY = 5.0  # seconds between lines without a terminal

    def __init__(self, name: str, max_points: int, tty: bool) -> None:
        self.name, self.max_points, self.tty = name, max_points, tty
        self.ended = 0
        self.last_line: float | None = None
        self.bar: Any = None
        if tty:
            self.bar = click.progressbar(length=max_points, label="points", file=sys.stderr, show_pos=True,
                                         item_show_func=lambda s: s)
            self.bar.__enter__()

    def update(self, p: dict[str, Any]) -> None:
        ended = p["finished"] + p["failed"]
        best = p["best_value"]
        if self.bar is not None:
            if ended > self.ended:
                self.bar.update(ended - self.ended, None if best is None else f"best {best:.6g}")
        elif ended > self.ended and (self.last_line is None or time.monotonic() - self.last_line >= self.EVERY):
            self.last_line = time.monotonic()
            click.echo(f"task {self.name!r}: {p['finished']}/{self.max_points} finished, {p['failed']} failed, "
                       f"{p['running']} running" + ("" if best is None else f", best {best:.6g}"), err=True)
        self.ended = max(self.ended, ended)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s received: stopping (again to abort)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# Commands of other packages register here, one line each.
main.add_command(__import__("gridhpo.cli.plot", fromlist=["plot"]).plot)
main.add_command(__import__("gridhpo.cli.plot", fromlist=["dashboard"]).dashboard)
main.add_command(__import__("gridhpo.cli.pilots", fromlist=["pilots"]).pilots)
main.add_command(__import__("gridhpo.cli.segments", fromlist=["segments"]).segments)
main.add_command(__import__("gridhpo.cli.admin", fromlist=["admin"]).admin)
main.add_command(__import__("gridhpo.cli.service", fromlist=["server"]).server)
main.add_command(__import__("gridhpo.cli.service", fromlist=["login"]).login)


if __name__ == "__main__":
    main()
