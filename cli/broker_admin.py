"""``gridhpo admin broker grant|revoke TASK``: per-task RabbitMQ users (protocol/brokeradmin.py)."""
from __future__ import annotations

import click

from gridhpo import config
from gridhpo.cli.options import broker_option

_api_option = click.option(
    "--api", default=None, metavar="URL",
    help="RabbitMQ's management API (default: http://BROKER-HOST:15672, with the broker URL's credentials).")


@click.group()
def broker() -> None:
    """Broker users: each task's pilots reach only their own task's queues (RabbitMQ)."""


def _task_id(task: str) -> int:
    if not task.isdigit():
        raise click.BadParameter("the task id (a number, as `gridhpo submit` prints)", param_hint="TASK")
    return int(task)


@broker.command()
@click.argument("task", metavar="TASK")
@_api_option
@broker_option
def grant(task: str, api: str | None, broker: str | None) -> None:
    """Create TASK's broker user (a new password each time) and print the broker URL its pilots
    use (a secret: give it to them as GRIDHPO_BROKER, e.g. in their --env-file)."""
    from gridhpo.errors import GridHPOError
    from gridhpo.protocol.brokeradmin import RabbitAdmin

    try:
        g = RabbitAdmin(config.broker_url(broker), api).grant(_task_id(task))
    except GridHPOError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker user {g.user}: task {g.task_id}'s queues only", err=True)
    click.echo(g.pilot_url)


@broker.command()
@click.argument("task", metavar="TASK")
@_api_option
@broker_option
def revoke(task: str, api: str | None, broker: str | None) -> None:
    """Remove TASK's broker user and close its connections."""
    from gridhpo.errors import GridHPOError
    from gridhpo.protocol.brokeradmin import RabbitAdmin, task_user

    try:
        rabbit = RabbitAdmin(config.broker_url(broker), api)
        existed = rabbit.revoke(_task_id(task))
    except GridHPOError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker user {task_user(int(task), rabbit.vhost)} " + ("removed" if existed else "did not exist"))
