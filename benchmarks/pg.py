"""The Postgres server the benchmark runs on, and one database per system on it.

Server choice, first that applies: PGQUEUE_BENCH_DSN; a local server at 127.0.0.1:5432 as the
current user (then as `postgres`); a throwaway one from `pgqueue.embedded`. Server settings are
left as they are (the same for every system): the numbers describe that server, and the results
file records its durability settings.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LOCAL_DSNS = ("postgresql://127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/postgres")
SETTINGS_RECORDED = ("server_version", "fsync", "synchronous_commit", "shared_buffers",
                     "max_connections", "full_page_writes")


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The admin DSN of the server to use for the whole run."""
    explicit = os.environ.get("PGQUEUE_BENCH_DSN")
    if explicit:
        yield explicit
        return
    for dsn in LOCAL_DSNS:
        if _reachable(dsn):
            yield dsn
            return
    from pgqueue.embedded import throwaway_postgres

    with throwaway_postgres() as dsn:
        yield dsn


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create database `name`; returns its DSN."""
    with connect(admin_dsn) as conn:
        conn.execute(_drop(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_dsn, dbname=name)


def admin_of(dsn: str) -> str:
    """The same server's `postgres` database (to read a database's statistics from outside)."""
    return make_conninfo(dsn, dbname="postgres")


def drop_database(admin_dsn: str, name: str) -> None:
    with connect(admin_dsn) as conn:
        conn.execute(_drop(name))


def execute(dsn: str, *statements: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run statements in one autocommit session; the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    with connect(dsn) as conn:
        for statement in statements:
            cursor = conn.execute(statement, params)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description else []
    return rows


def server_settings(dsn: str) -> dict[str, str]:
    rows = execute(dsn, "SELECT name, setting FROM pg_settings WHERE name = ANY(%(names)s)",
                   params={"names": list(SETTINGS_RECORDED)})
    return dict(rows)  # type: ignore[arg-type]


def cpu_ns(dsn: str, pids: Sequence[int]) -> dict[int, int]:
    """Time on a CPU (ns, /proc/PID/schedstat) of `pids` and of the server backends connected
    to `dsn`'s database (listed from the admin database, so that query's own backend is not
    among them; none readable when the server runs elsewhere)."""
    database = conninfo_to_dict(dsn)["dbname"]
    backends = execute(admin_of(dsn), "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                       params=(database,))
    out: dict[int, int] = {}
    for pid in [*pids, *(int(row[0]) for row in backends)]:
        try:
            out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return out
