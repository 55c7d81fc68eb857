"""Opening a kombu connection for a broker URL (the embedded ``filesystem://`` transport,
AMQP with or without TLS and publisher confirms, any other kombu URL), and the exceptions that
mean a connection was lost."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kombu.connection import Connection
from kombu.exceptions import KombuError

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, KombuError)
try:  # py-amqp's errors are not all KombuError subclasses
    import amqp.exceptions

    CONNECTION_ERRORS += (amqp.exceptions.AMQPError,)
except ImportError:  # pragma: no cover - amqp ships with kombu
    pass


def connection(url: str, confirm: bool) -> Connection:
    parsed = urlparse(url)
    if parsed.scheme == "filesystem":
        from gridhpo.protocol.fstransport import Transport

        folder = Path(parsed.netloc + parsed.path).expanduser()
        for sub in ("messages", "claimed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return Connection(
            transport=Transport,
            transport_options={
                "data_folder_in": str(folder / "messages"),
                "data_folder_out": str(folder / "messages"),
                "processed_folder": str(folder / "claimed"),
                "control_folder": str(folder / "control"),
                "polling_interval": 0.005,
            },
        )
    options: dict[str, Any] = {"polling_interval": 0.005}
    if parsed.scheme in ("amqp", "pyamqp", "amqps") and confirm:
        options["confirm_publish"] = True
    transport: Any = None
    if parsed.scheme in ("amqp", "pyamqp", "amqps"):
        from gridhpo.protocol import amqptransport

        transport = amqptransport.SSLTransport if parsed.scheme == "amqps" else amqptransport.Transport
    return Connection(url, transport=transport, transport_options=options, heartbeat=0)
