"""A service of the gateway alone: ``python -m gridhpo.gateway --db URL --broker URL --port N``.

``gridhpo server`` mounts ``pilot_router`` into its own app; this one is for sites that run
the steering elsewhere, for the tests (a gateway process that can be killed) and the benchmark.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridhpo.gateway.auth import repository_tokens
from gridhpo.gateway.leases import Gateway
from gridhpo.gateway.router import pilot_router


def make_app(db_url: str, broker_url: str) -> FastAPI:
    from gridhpo.bookkeeping import Repository
    from gridhpo.protocol import Broker

    repo = Repository(db_url)
    gw = Gateway(lambda: Broker(broker_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gw.close()  # the points still held go back to their queues
        repo.close()

    app = FastAPI(title="gridhpo pilot gateway", lifespan=lifespan)
    app.include_router(pilot_router(gw, repository_tokens(repo)))
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m gridhpo.gateway", description=__doc__)
    parser.add_argument("--db", required=True, help="the bookkeeping's URL (pilot tokens are checked there)")
    parser.add_argument("--broker", required=True, help="the broker's URL, the steering's")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--certfile", default=None)
    parser.add_argument("--keyfile", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(make_app(args.db, args.broker), host=args.host, port=args.port, log_level="warning",
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
