"""``gridhpo server``: the steering and the HTTP API in one process.

The steering runs in a thread, holding the steering lock as ``gridhpo steer`` does, so that
no second steering serves the same bookkeeping; Uvicorn serves the API in the main thread.
Either one stopping stops the other.
"""
from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridhpo import config
from gridhpo.bookkeeping.repository import Repository
from gridhpo.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8443
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = False
    db: str | None = None
    broker: str | None = None
    store: str | None = None
    steer: bool = True  # False: the API only (another process steers)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check(options: ServerOptions) -> None:
    """Refuse what would expose tokens: plain HTTP beyond this machine, half a TLS pair."""
    if (options.certfile is None) != (options.keyfile is None):
        raise ConfigError("--certfile and --keyfile go together (HTTPS needs both)")
    for path in (options.certfile, options.keyfile):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path}: no such file")
    if options.certfile is None and not is_loopback(options.host) and not options.insecure:
        raise ConfigError(f"--host {options.host}: plain HTTP beyond this machine would show every API token "
                          "to the network; give --certfile and --keyfile (HTTPS), or --insecure behind a "
                          "TLS-terminating proxy")


class _Steerer:
    """The steering in a thread, with the lock ``gridhpo steer`` holds."""

    def __init__(self, repo: Repository, broker_url: str) -> None:
        from gridhpo.steering.lock import SteeringLock

        self.repo, self.broker_url = repo, broker_url
        self.lock = SteeringLock(repo)
        self.stop = threading.Event()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="steering", daemon=True)

    def start(self) -> None:
        if not self.lock.acquire():
            raise ConfigError(f"another steering already serves {config.redact(self.repo.url)}; stop it "
                              "(`gridhpo server` steers itself) or give --no-steer")
        self.thread.start()

    def _run(self) -> None:
        from gridhpo.protocol import Broker
        from gridhpo.steering.service import Steering

        try:
            # as `gridhpo steer`: a lost point message is found in the bookkeeping and sent again
            with Broker(self.broker_url, confirm=False) as broker:
                Steering(self.repo, broker, lock=self.lock).run(self.stop)
        except BaseException as exc:
            self.failed = exc
            log.critical("the steering stopped: %s", exc, exc_info=not isinstance(exc, Exception))
        finally:
            self.lock.release()

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)


def serve(options: ServerOptions) -> None:
    """Run until SIGTERM or Ctrl-C (or the steering stopping)."""
    import uvicorn

    from gridhpo.service.api import create_app

    check(options)
    repo = Repository(options.db)
    steerer = _Steerer(Repository(options.db), config.broker_url(options.broker)) if options.steer else None
    kwargs: dict[str, Any] = {}
    if options.certfile is not None:
        kwargs.update(ssl_certfile=str(options.certfile), ssl_keyfile=str(options.keyfile))
    from gridhpo.gateway import Gateway
    from gridhpo.protocol import Broker

    broker_url = config.broker_url(options.broker)
    # pilots that reach the service over HTTPS alone take points and report through this
    gateway = Gateway(lambda: Broker(broker_url))
    app = create_app(repo, config.store_url(options.store), gateway=gateway)
    # the access log holds method, path and status: never a token, which travels only in a header
    server = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_config=None, access_log=True,
                                           server_header=False, proxy_headers=False, **kwargs))
    if steerer is not None:
        steerer.start()
        watchdog = threading.Thread(target=_stop_with, args=(steerer, server), name="steering-watch", daemon=True)
        watchdog.start()
    # Uvicorn raises the signal that stopped it again once it has stopped, to die of it with
    # the handler found before; that handler is this one, so the steering is stopped and its
    # lock released before the process exits (0, as `gridhpo steer`)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: steerer.stop.set() if steerer is not None else None)
    scheme = "https" if options.certfile is not None else "http"
    log.info("serving %s://%s:%d (bookkeeping %s)", scheme, options.host, options.port, config.redact(repo.url))
    try:
        server.run()
    finally:
        gateway.close()  # the points it still holds go back to their queues
        if steerer is not None:
            steerer.close()
        repo.close()
    if steerer is not None and steerer.failed is not None:
        raise ConfigError(f"the steering stopped: {steerer.failed}")


def _stop_with(steerer: _Steerer, server: Any) -> None:
    steerer.thread.join()
    if not steerer.stop.is_set():
        server.should_exit = True
