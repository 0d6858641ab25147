"""Real-PostgreSQL harness: one server per session, one fresh database per test.

The server is the first of these that applies:

1. ``PGQUEUE_TEST_EMBEDDED=1``: a throwaway server started for the session (to test that path);
2. ``PGQUEUE_TEST_DSN``: that server, which must be reachable;
3. a local server on 127.0.0.1:5432, as the current OS user, then as ``postgres``;
4. a throwaway server started for the session (``pgqueue.embedded``).

When a throwaway server is needed and the PostgreSQL binaries are missing, the run stops at once
with one line saying so (``make test`` installs them first where it can, see
scripts/ensure-postgres.sh) instead of erroring in every test.

The pgqueue schema is migrated once per session into a template database; each test asking for
``dsn`` gets a clone of it (``CREATE DATABASE ... TEMPLATE``, a file copy, far cheaper than
migrating), dropped after the test. Every name carries the pid and a random token, so several
pytest runs sharing one server never collide.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from pytest_postgresql.janitor import DatabaseJanitor

from pgqueue.embedded import EmbeddedPostgres, EmbeddedPostgresError, PostgresBinariesNotFound

logger = logging.getLogger(__name__)

LOCAL_SERVER_DSNS = (
    "postgresql://127.0.0.1:5432/postgres",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)
PROBE_TIMEOUT_S = 2
JANITOR_CONNECT_TIMEOUT_S = 10

_SESSION_TAG = f"{os.getpid()}_{secrets.token_hex(3)}"
_db_counter = itertools.count(1)


@dataclass(frozen=True)
class PgServer:
    """Where the session's server is and how to reach it as an admin."""

    host: str
    port: int
    user: str
    password: str | None
    maintenance_dbname: str
    admin_dsn: str
    origin: str

    def dsn_for(self, dbname: str) -> str:
        """Conninfo for another database on this server, keeping every other parameter."""
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def janitor(
        self, dbname: str, *, template: str | None = None, as_template: bool = False
    ) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            dbname=dbname,
            template_dbname=template,
            maintenance_dbname=self.maintenance_dbname,
            as_template=as_template,
            connection_timeout=JANITOR_CONNECT_TIMEOUT_S,
        )


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=PROBE_TIMEOUT_S):
            return True
    except psycopg.OperationalError:
        return False


def _choose_server(stack: ExitStack) -> tuple[str, str]:
    """Return (admin DSN, origin); a throwaway server is registered on ``stack`` to stop."""
    if os.environ.get("PGQUEUE_TEST_EMBEDDED") == "1":
        return _throwaway(stack), "throwaway (PGQUEUE_TEST_EMBEDDED=1)"
    explicit = os.environ.get("PGQUEUE_TEST_DSN")
    if explicit:
        # No fallback: a CI that names a server must not silently test against another one.
        return explicit, "PGQUEUE_TEST_DSN"
    for candidate in LOCAL_SERVER_DSNS:
        if _reachable(candidate):
            return candidate, "local server"
    return _throwaway(stack), "throwaway (no local server reachable)"


def _throwaway(stack: ExitStack) -> str:
    """Start the session's throwaway server, or end the whole run with one line saying why."""
    try:
        return stack.enter_context(EmbeddedPostgres()).dsn
    except PostgresBinariesNotFound as exc:
        pytest.exit(f"pgqueue tests need PostgreSQL: {exc}; or set PGQUEUE_TEST_DSN to a "
                    "server", returncode=pytest.ExitCode.USAGE_ERROR)
    except EmbeddedPostgresError as exc:
        first_line = str(exc).splitlines()[0]
        pytest.exit(f"pgqueue tests could not start a throwaway PostgreSQL: {first_line}",
                    returncode=pytest.ExitCode.USAGE_ERROR)


def _describe(server: PgServer, version: int) -> str:
    major, minor = divmod(version, 10000)
    return (
        f"pgqueue tests use PostgreSQL {major}.{minor} at {server.host}:{server.port} "
        f"as {server.user} [{server.origin}]"
    )


def _announce(config: pytest.Config, message: str) -> None:
    logger.info(message)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    # Fixtures run with output captured: without this the line never reaches the terminal.
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        reporter.ensure_newline()
        reporter.write_line(message)


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The session's PostgreSQL server, chosen once (see the module docstring)."""
    with ExitStack() as stack:
        admin_dsn, origin = _choose_server(stack)
        try:
            conn = psycopg.connect(admin_dsn, connect_timeout=PROBE_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            pytest.fail(f"cannot reach the test server [{origin}]: {exc}", pytrace=False)
        with conn:
            info = conn.info
            server = PgServer(
                host=info.host,
                port=info.port,
                user=info.user,
                password=info.password or None,
                maintenance_dbname=info.dbname,
                admin_dsn=admin_dsn,
                origin=origin,
            )
            version = info.server_version
        _announce(request.config, _describe(server, version))
        yield server


def _unique_dbname(kind: str) -> str:
    return f"pgq_{kind}_{_SESSION_TAG}_{next(_db_counter)}"


@contextmanager
def _fresh_database(server: PgServer, *, template: str) -> Iterator[str]:
    """Create a database cloned from ``template``; on exit, kick its users and drop it.

    The janitor forbids new connections and terminates the leftover ones (worker subprocesses
    may still be connected) before dropping.
    """
    name = _unique_dbname("test")
    with server.janitor(name, template=template):
        yield server.dsn_for(name)


@pytest.fixture(scope="session")
def _migrated_template(pg_server: PgServer) -> Iterator[str]:
    """Name of this session's template database holding the migrated pgqueue schema."""
    from pgqueue.migrate import apply_migrations

    name = _unique_dbname("tpl")
    with pg_server.janitor(name, as_template=True) as janitor:
        apply_migrations(pg_server.dsn_for(name))
        # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template: make
        # sure nothing the migration left open survives (the janitor repeats this per clone).
        with janitor.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        yield name


@pytest.fixture
def dsn(pg_server: PgServer, _migrated_template: str) -> Iterator[str]:
    """Conninfo of a fresh database with the pgqueue schema, dropped after the test."""
    with _fresh_database(pg_server, template=_migrated_template) as database_dsn:
        yield database_dsn


@pytest.fixture
def empty_dsn(pg_server: PgServer) -> Iterator[str]:
    """Conninfo of a fresh database with no schema at all, for migration tests."""
    # template0, not the default template1: nobody can be connected to it, so cloning never
    # fails because another client happens to sit in template1.
    with _fresh_database(pg_server, template="template0") as database_dsn:
        yield database_dsn


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit connection to the test's fresh migrated database."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@dataclass(frozen=True)
class Replication:
    """A primary holding the pgqueue schema and a hot standby streaming from it."""

    primary_dsn: str
    standby_dsn: str


@pytest.fixture(scope="session")
def replication() -> Iterator[Replication]:
    """A real read replica for the read-only tests: its own throwaway primary (migrated), copied
    by ``pg_basebackup -R`` into a hot standby on another port. Independent of the session's
    server, which may be one we cannot copy; about a second to set up."""
    from pgqueue.migrate import apply_migrations

    try:
        primary = EmbeddedPostgres()
    except PostgresBinariesNotFound as exc:
        pytest.skip(f"a hot standby needs the PostgreSQL binaries: {exc}")
    with primary:
        apply_migrations(primary.dsn)
        with EmbeddedPostgres(primary=primary) as standby:
            yield Replication(primary_dsn=primary.dsn, standby_dsn=standby.dsn)
