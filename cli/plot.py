"""``gridhpo plot`` and ``gridhpo dashboard``: thin commands over gridhpo.plots."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from gridhpo.cli.options import db_option, server_option, verbosity

IMPORTANCE_CHOICES = ("forest", "anova")


def _setup_logging(verbose: int) -> None:
    from gridhpo.cli.main import _setup_logging as setup

    setup(verbose)


@click.command()
@click.argument("tasks", nargs=-1, required=True, metavar="TASK [TASK...]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML report to write (default: report.html unless --png is given).")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also (or only) write the main figures as PNG files into this folder.")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Points highlighted in the parallel coordinates.")
@click.option("--table", "table_k", type=click.IntRange(min=1), default=50, show_default=True,
              help="Rows of the top-points table.")
@click.option("--importance", type=click.Choice(IMPORTANCE_CHOICES), default="forest", show_default=True,
              help="forest: random-forest impurity importance; anova: first-order variance decomposition.")
@db_option
@server_option
@verbosity
def plot(tasks: tuple[str, ...], output: Path | None, png_dir: Path | None, top_k: int, table_k: int,
         importance: str, db: str | None, server: str | None, verbose: int) -> None:
    """Draw TASK (several tasks side by side) into one self-contained HTML report.

    The report opens offline: plotly's JavaScript is inside the file.
    """
    _setup_logging(verbose)
    if server:
        from gridhpo.cli import remote

        return remote.plot(server, tasks, output, png_dir, top_k, table_k, importance)
    from gridhpo.bookkeeping import Repository

    repo = Repository(db)
    if output is None and png_dir is None:
        output = Path("report.html")
    if output is not None:
        from gridhpo.plots.report import write_report

        write_report(repo, list(tasks), output, top_k=top_k, table_k=table_k, importance=importance)
        click.echo(f"report of {len(tasks)} task(s) written to {output}", err=True)
    if png_dir is not None:
        from gridhpo.plots.png import write_pngs

        files = write_pngs(repo, list(tasks), png_dir, top_k=top_k, importance=importance)
        click.echo(f"{len(files)} PNG files written to {png_dir}", err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any non-loopback address requires a token.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8050, show_default=True)
@click.option("--token", envvar="GRIDHPO_DASHBOARD_TOKEN", default=None,
              help="Access token (default: none on loopback, a random one printed otherwise).")
@click.option("--refresh", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              help="Seconds between the page's updates.")
@click.option("--importance", type=click.Choice(IMPORTANCE_CHOICES), default="forest", show_default=True)
@db_option
@verbosity
def dashboard(host: str, port: int, token: str | None, refresh: float, importance: str, db: str | None,
              verbose: int) -> None:
    """A live web page of every task and a chosen task's figures, until Ctrl-C."""
    _setup_logging(verbose)
    from gridhpo.bookkeeping import Repository
    from gridhpo.plots.dashboard import Dashboard

    dash = Dashboard(Repository(db), host=host, port=port, token=token, refresh=refresh, importance=importance)
    click.echo(f"dashboard: {dash.url}", err=True)
    if dash.token and not token:
        click.echo("(token generated for this run; give --token or GRIDHPO_DASHBOARD_TOKEN to fix it)", err=True)
    sys.stdout.flush()
    try:
        dash.serve_forever()
    except KeyboardInterrupt:
        click.echo("dashboard stopped", err=True)
    finally:
        dash.server.server_close()
