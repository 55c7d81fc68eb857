"""The commands submit, status, results, cancel, token and plot against a gridhpo service
(``--server URL`` / GRIDHPO_SERVER): the same output as locally, from the service's answers.
Needs only the standard library (gridhpo.service.client) and the formatting of
gridhpo.steering.reports."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gridhpo.errors import ConfigError
from gridhpo.service.client import ConflictError, Service, api_token, check_url
from gridhpo.steering.fronts import pareto_text
from gridhpo.steering.lineage import format_schedule
from gridhpo.steering.reports import format_point, format_results
from gridhpo.steering.tables import render_table

STATUS_HEADER = ["id", "name", "state", "points", "queued", "running", "stale", "resuming", "paused", "finished",
                 "stopped", "failed", "best"]


def service(server: str) -> Service:
    return Service(check_url(server), api_token(server))


def submit(server: str, raw: dict[str, Any], name: str | None) -> None:
    answer = service(server).submit(raw, name)
    click.echo(answer["id"])
    click.echo(f"submitted task {answer['name']!r} (id {answer['id']}) to {check_url(server)}; pilots need its "
               f"token: `gridhpo token {answer['id']} --server {check_url(server)}`", err=True)


def status(server: str, task: str | None) -> None:
    svc = service(server)
    rows = [svc.task(svc.resolve(task))] if task else svc.tasks()
    if not rows:
        click.echo("no tasks yet: `gridhpo submit TASK_FILE`")
        return
    click.echo(render_table(STATUS_HEADER, [[r[k] for k in STATUS_HEADER] for r in rows]))
    if task:
        click.echo(f"optimiser: {rows[0]['optimiser']}")
        if rows[0]["message"]:
            click.echo(f"message: {rows[0]['message']}")
        if rows[0]["pilots"]:
            click.echo(f"pilots: {rows[0]['pilots']} ({', '.join(rows[0]['sites'])})")


def results(server: str, task: str, fmt: str, sort: str, number: int | None, pareto: bool = False) -> None:
    svc = service(server)
    answer = svc.results(svc.resolve(task), sort, number)
    if pareto:
        click.echo(pareto_text(answer["points"], answer, fmt))
        return
    if number is not None:
        if not answer["points"]:
            raise click.ClickException(f"task {answer['name']!r} has no point {number} "
                                       f"(it has {answer['total']} points)")
        click.echo(format_point(answer["points"][0], fmt))
        return
    click.echo(format_results(answer["points"], fmt, answer["mode"]))


def lineage(server: str, task: str, fmt: str) -> None:
    svc = service(server)
    answer = svc.lineage(svc.resolve(task))
    click.echo(format_schedule(answer["mode"], answer["segments"], fmt))


def cancel(server: str, task: str) -> None:
    svc = service(server)
    try:
        answer = svc.cancel(svc.resolve(task))
    except ConflictError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"task {answer['name']!r} (id {answer['id']}) cancelled")


def token(server: str, task: str, revoke: bool, expires: str | None) -> None:
    svc = service(server)
    answer = svc.token(svc.resolve(task), revoke, expires)
    if revoke:
        click.echo(f"task {answer['name']!r}: token replaced; pilots holding the old one get nothing more", err=True)
    click.echo(answer["token"])


def plot(server: str, tasks: tuple[str, ...], output: Path | None, png_dir: Path | None, top_k: int, table_k: int,
         importance: str) -> None:
    """As the local ``gridhpo plot``: the HTML report (-o, the default without --png) and/or the
    PNG figures, drawn by the service and written here under the names the local one uses."""
    svc = service(server)
    ids = [svc.resolve(t) for t in tasks]
    if output is None and png_dir is None:
        output = Path("report.html")
    if output is not None:
        _write(output, svc.report(ids[0], ids[1:], top_k, table_k, importance).encode(), "the report")
        click.echo(f"report of {len(tasks)} task(s) written to {output}", err=True)
    if png_dir is not None:
        from gridhpo.plots.names import FIGURES, png_name

        try:
            png_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--png {png_dir}: cannot create the folder: {exc.strerror or exc}") from exc
        count = 0
        for task_id in ids:
            name = svc.task(task_id)["name"]
            for figure in FIGURES:
                _write(png_dir / png_name(name, figure), svc.figure(task_id, figure, top_k, importance), "")
                count += 1
        click.echo(f"{count} PNG files written to {png_dir}", err=True)


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {what + ' ' if what else ''}{path}: {exc.strerror or exc}") from None
