"""Options shared by several commands, defined once."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

db_option = click.option(
    "--db", "db", envvar="GRIDHPO_DB", default=None, metavar="URL",
    help="Bookkeeping database (SQLAlchemy URL). Default: SQLite under GRIDHPO_HOME. A password on the "
         "command line is visible in `ps`: set GRIDHPO_DB instead.",
)
broker_option = click.option(
    "--broker", "broker", envvar="GRIDHPO_BROKER", default=None, metavar="URL",
    help="Message broker (kombu URL, e.g. amqp://guest:guest@127.0.0.1:5672//). Default: a folder under "
         "GRIDHPO_HOME. A password on the command line is visible in `ps`: set GRIDHPO_BROKER instead.",
)
task_argument = click.argument("task", metavar="TASK")


def verbosity(f: F) -> F:
    return click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")(f)
server_option = click.option(
    "--server", "server", envvar="GRIDHPO_SERVER", default=None, metavar="URL",
    help="A gridhpo service (https://HOST:PORT) to talk to instead of the bookkeeping; the API token "
         "comes from GRIDHPO_API_TOKEN or `gridhpo login`.",
)
