"""``gridhpo pilot``: a pilot's options, the secrets it reads off the command line (--env-file,
--token-file) and its configuration; the Pilot itself is evaluation/pilot.py."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from gridhpo import config
from gridhpo.cli.options import broker_option, db_option, verbosity
from gridhpo.errors import GridHPOError
from gridhpo.evaluation.workdirs import KEEP_FAILED


@click.command()
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
    from gridhpo.cli.main import _duration, _setup_logging

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
        from gridhpo.cli.main import _repo

        return int(_repo(db).task(name).id)
    except GridHPOError as exc:
        raise click.BadParameter(f"{exc}; give a task id or the name of a task in that bookkeeping",
                                 param_hint="--task") from None
