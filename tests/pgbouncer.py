"""A real PgBouncer in front of a test database, for the pooler tests.

It runs Debian's `pgbouncer` (scripts/ensure-pgbouncer.sh installs it; `make test` runs that
script) in the foreground as a child of the test, from a config written to a fresh directory:
the one database, `auth_type = trust` (the test server trusts local connections), a free port
on 127.0.0.1 and the pool mode and size the test asks for. PgBouncer refuses to run as root, so
as root it runs as `postgres` (else `nobody`), and its directory is made readable to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from pgqueue.embedded import free_port

START_TIMEOUT_S = 15.0
_UNPRIVILEGED_USERS = ("postgres", "nobody")


class PgBouncerUnavailable(RuntimeError):
    """No pgbouncer binary on this machine (tests skip with this message)."""


def pgbouncer_command() -> list[str]:
    """The command that starts PgBouncer here, or PgBouncerUnavailable saying why there is none.
    Debian installs it in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PgBouncerUnavailable(
            "pgbouncer is not installed: run scripts/ensure-pgbouncer.sh (make test does)")
    return [found, *_run_as()]


@dataclass(frozen=True)
class RunningPgBouncer:
    dsn: str
    """Conninfo of the test database through PgBouncer (same user and database name)."""
    log: Path
    """PgBouncer's own log (its stderr)."""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for name in _UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["-u", name]
    raise PgBouncerUnavailable(f"pgbouncer refuses root and none of {_UNPRIVILEGED_USERS} exists")


def _quote(value: str) -> str:
    """A value in PgBouncer's [databases] connect string (libpq syntax)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _config(target: psycopg.Connection, port: int, directory: Path, pool_mode: str,
            pool_size: int) -> str:
    info = target.info
    server = {"host": info.host, "port": str(info.port), "dbname": info.dbname,
              "user": info.user}
    if info.password:
        server["password"] = info.password
    connect = " ".join(f"{key}={_quote(value)}" for key, value in server.items())
    return "\n".join([
        "[databases]",
        f"{info.dbname} = {connect}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {directory / 'userlist.txt'}",
        f"pool_mode = {pool_mode}",
        f"default_pool_size = {pool_size}",
        "max_client_conn = 500",
        "",
    ])


@contextmanager
def pgbouncer(target_dsn: str, *, pool_mode: str = "transaction",
              pool_size: int = 3) -> Iterator[RunningPgBouncer]:
    """Run PgBouncer in front of `target_dsn`'s database until the block exits."""
    command = pgbouncer_command()
    directory = Path(tempfile.mkdtemp(prefix="pgqueue-pgbouncer-"))
    try:
        directory.chmod(0o755)  # readable by the user pgbouncer switches to
        port = free_port()
        with psycopg.connect(target_dsn) as target:
            user = target.info.user
            (directory / "pgbouncer.ini").write_text(
                _config(target, port, directory, pool_mode, pool_size))
        (directory / "userlist.txt").write_text(f'"{user}" ""\n')
        log = directory / "pgbouncer.log"
        with log.open("w") as sink:
            process = subprocess.Popen([*command, str(directory / "pgbouncer.ini")],
                                       stdout=sink, stderr=subprocess.STDOUT)
        try:
            running = RunningPgBouncer(
                dsn=make_conninfo(target_dsn, host="127.0.0.1", port=str(port)), log=log)
            _wait_until_accepting(running, process)
            yield running
        finally:
            process.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_accepting(running: RunningPgBouncer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n"
                               f"{running.log_text()}")
        try:
            with psycopg.connect(running.dsn, connect_timeout=2, prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not accept connections within "
                                   f"{START_TIMEOUT_S:g}s:\n{running.log_text()}") from None
            time.sleep(0.05)
