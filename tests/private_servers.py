"""Private PostgreSQL and RabbitMQ instances, for the tests that stop, restart or attack a server.

The machine's shared servers (tests/servers.py) serve every test running at the same time
(pytest-xdist workers, other checkouts): a test that restarts one breaks the others. These
helpers start a server of their own with the machine's binaries, on loopback and free ports,
with every file in a temporary folder, and remove it afterwards even when the test fails.
They follow the rules of tests/servers.py: only a test marked integration may use them, they
skip on a machine without the binaries and fail in CI (``GRIDHPO_REQUIRE_SERVERS=1``).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port, unavailable, use_server

PG_LIB = Path("/usr/lib/postgresql")
# Debian's /usr/sbin/rabbitmq* wrappers switch to the rabbitmq user, its home and its cookie,
# i.e. to the shared node's credentials: the scripts behind them run as the caller instead.
RABBITMQ_LIB = Path("/usr/lib/rabbitmq/bin")
LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"



def _fail(what: str, proc: subprocess.CompletedProcess[str], log: Path | None) -> None:
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n{tail}", pytrace=False)


def _run(cmd: list[str], what: str, log: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 120.0) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        _fail(what, proc, log)
    return proc.stdout


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    """The bin folder of the newest PostgreSQL installed (Debian layout, else the PATH)."""
    found = [p.parent for p in PG_LIB.glob("*/bin/initdb") if p.parent.parent.name.isdigit()]
    if found:
        return max(found, key=lambda b: int(b.parent.name))
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb is not None and shutil.which("pg_ctl") else None


def _as_postgres() -> list[str]:
    """initdb and postgres refuse root: as root, run them as the postgres user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root and there is no postgres user to run a private PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


def _pg_settings(port: int, root: Path) -> str:
    # loopback and a socket of its own; durability off: the data is thrown away afterwards
    return "\n".join([
        "", "listen_addresses = '127.0.0.1'", f"port = {port}", f"unix_socket_directories = '{root}'",
        "fsync = off", "synchronous_commit = off", "full_page_writes = off", "shared_buffers = 32MB", "",
    ])


@contextmanager
def private_postgres(tmp: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A PostgreSQL cluster of the test's own: yields (SQLAlchemy URL, restart), where restart
    is a fast-mode restart that drops every session. Its log ends as ``tmp/postgres.log``."""
    use_server("PostgreSQL")
    bin_dir = _pg_bin()
    if bin_dir is None:
        unavailable("PostgreSQL binaries (initdb, pg_ctl) not found: a private cluster needs them")
        raise AssertionError
    as_pg = _as_postgres()
    # pytest's temporary folders are private to their owner: the postgres user could not enter
    root = Path(tempfile.mkdtemp(prefix="gridhpo-pg-"))
    if as_pg:
        shutil.chown(root, "postgres", "postgres")
    data, log, port = root / "data", root / "postgres.log", free_port()
    pg_ctl = [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120"]
    try:
        _run([*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
              "-E", "UTF8", "--no-sync"], "initdb of a private PostgreSQL")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_pg_settings(port, root))
        _run([*pg_ctl, "start"], "starting a private PostgreSQL", log)

        def restart() -> None:
            _run([*pg_ctl, "-m", "fast", "restart"], "restarting the private PostgreSQL", log)

        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", restart
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120, check=False)
        if log.exists():
            shutil.copyfile(log, tmp / "postgres.log")
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- RabbitMQ


def _rabbitmq_tool(name: str) -> str | None:
    lib = RABBITMQ_LIB / name
    return str(lib) if lib.exists() else shutil.which(name)


def _rabbitmq_env(root: Path, node: str, port: int) -> dict[str, str]:
    """Every file of the node under root, and nothing read from /etc/rabbitmq (whose
    rabbitmq-env.conf names the shared node and whose enabled_plugins are the shared node's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    return env | {
        "HOME": str(root / "home"),  # the Erlang cookie of this node and its rabbitmqctl
        "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"), "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_PID_FILE": str(root / "pid"), "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_FLAGS": LOOPBACK_DIST,
    }


def _rabbitmq_files(root: Path, port: int, password: str) -> None:
    (root / "home").mkdir()
    cookie = root / "home" / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)
    (root / "rabbitmq-env.conf").write_text("")
    (root / "enabled_plugins").write_text("[].\n")  # no management, no prometheus listener
    # its own user instead of guest (the default user is created at the first boot only)
    (root / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                                        f"default_user = gridhpo\ndefault_pass = {password}\n")


def _rabbitmq_stop(ctl: str, node: str, root: Path, env: dict[str, str]) -> None:
    pidfile = root / "pid"
    stopped = subprocess.run([ctl, "-n", node, "stop", str(pidfile)], env=env, capture_output=True,
                             timeout=120, check=False)
    if stopped.returncode != 0 and pidfile.exists():  # never left running: it holds its ports
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


@contextmanager
def private_rabbitmq(tmp: Path) -> Iterator[tuple[str, Callable[[float], None]]]:
    """A RabbitMQ node of the test's own: yields (AMQP URL, restart(outage)), where restart
    stops the RabbitMQ application, keeps it down ``outage`` seconds and starts it again
    (virtual hosts and durable queues survive). Its log ends as ``tmp/rabbitmq.log``."""
    use_server("RabbitMQ")
    server, ctl = _rabbitmq_tool("rabbitmq-server"), _rabbitmq_tool("rabbitmqctl")
    if server is None or ctl is None:
        unavailable("rabbitmq-server or rabbitmqctl not found: a private RabbitMQ node needs them")
        raise AssertionError
    root = Path(tempfile.mkdtemp(prefix="gridhpo-rabbitmq-"))
    node, port, password = f"gridhpo-{uuid.uuid4().hex[:10]}@localhost", free_port(), secrets.token_hex(12)
    env = _rabbitmq_env(root, node, port)
    log = root / "log" / f"{node}.log"
    _rabbitmq_files(root, port, password)
    started = False
    try:
        _run([server, "-detached"], "starting a private RabbitMQ node", log, env)
        started = True
        _run([ctl, "-n", node, "wait", str(root / "pid"), "--timeout", "120"],
             "waiting for the private RabbitMQ node", log, env, timeout=150)

        def restart(outage: float) -> None:
            try:
                _run([ctl, "-n", node, "stop_app"], "stopping the private RabbitMQ", log, env)
                time.sleep(outage)  # the outage being simulated
            finally:
                _run([ctl, "-n", node, "start_app"], "starting the private RabbitMQ again", log, env)
                _run([ctl, "-n", node, "await_startup"], "waiting for the private RabbitMQ", log, env)

        yield f"amqp://gridhpo:{password}@127.0.0.1:{port}/%2F", restart
    finally:
        if started:
            _rabbitmq_stop(ctl, node, root, env)
        if log.exists():
            shutil.copyfile(log, tmp / "rabbitmq.log")
        shutil.rmtree(root, ignore_errors=True)
