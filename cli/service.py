"""``gridhpo server`` (the service) and ``gridhpo login`` (a user's side of it)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from gridhpo.cli.options import broker_option, db_option, verbosity


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback, HTTPS (--certfile, --keyfile) or --insecure.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8443, show_default=True)
@click.option("--certfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS certificate (PEM, with its chain): serve HTTPS.")
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The certificate's private key (PEM).")
@click.option("--insecure", is_flag=True,
              help="Allow plain HTTP on a non-loopback address (only behind a proxy that terminates TLS).")
@click.option("--no-steer", "no_steer", is_flag=True, help="Serve the API only; a `gridhpo steer` elsewhere steers.")
@click.option("--store", envvar="GRIDHPO_STORE", default=None, metavar="URL",
              help="Checkpoint store of the pilots it serves (default: GRIDHPO_STORE, else GRIDHPO_HOME/store).")
@db_option
@broker_option
@verbosity
def server(host: str, port: int, certfile: Path | None, keyfile: Path | None, insecure: bool, no_steer: bool,
           store: str | None, db: str | None, broker: str | None, verbose: int) -> None:
    """Run the service: the steering and the HTTP API (/docs), until SIGTERM or Ctrl-C."""
    from gridhpo.cli.main import _setup_logging

    _setup_logging(verbose, logging.INFO)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if verbose else logging.WARNING)
    from gridhpo.service.server import ServerOptions, serve

    serve(ServerOptions(host=host, port=port, certfile=certfile, keyfile=keyfile, insecure=insecure, db=db,
                        broker=broker, store=store, steer=not no_steer))


@click.command()
@click.option("--server", "server_url", envvar="GRIDHPO_SERVER", required=True, metavar="URL",
              help="The service (https://HOST:PORT).")
@click.option("--token-stdin", is_flag=True, help="Read the API token from standard input (else: a prompt).")
def login(server_url: str, token_stdin: bool) -> None:
    """Check an API token with the service and keep it (mode 0600) for --server URL."""
    from gridhpo.service.client import Service, check_url, save_login

    url = check_url(server_url)
    if token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = os.environ.get("GRIDHPO_API_TOKEN") or str(click.prompt("API token", hide_input=True))
    me = Service(url, token).me()
    path = save_login(url, token)
    click.echo(f"logged in to {url} as {me['name']!r}" + (" (admin)" if me["admin"] else "") + f"; token in {path}")
