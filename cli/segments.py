"""``gridhpo segments NAME``: the one report of a segmented phpo task (steering/segments.py)."""
from __future__ import annotations

import json

import click

from gridhpo.cli.options import db_option


@click.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@db_option
def segments(name: str, fmt: str, db: str | None) -> None:
    """Each segment of the segmented task NAME (`gridhpo submit --phpo` with segmentSpecFile):
    its task, state, points and its own best point."""
    from gridhpo.cli.main import _repo, _setup_logging
    from gridhpo.steering.segments import report
    from gridhpo.steering.tables import render_table

    _setup_logging(0)
    rows = report(_repo(db), name)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    header = ["segment", "task", "id", "state", "finished", "failed", "best", "value", "params"]
    click.echo(render_table(header, [
        [r["segment"], r["task"], r["id"], r["state"], r["finished"], r["failed"],
         "-" if r["best_point"] is None else r["best_point"],
         "-" if r["best_value"] is None else f"{r['metric']}={r['best_value']:.6g}",
         "-" if r["best_params"] is None else json.dumps(r["best_params"], sort_keys=True)]
        for r in rows]))
