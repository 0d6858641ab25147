"""The throwaway PostgreSQL server used by the demo and by the tests when no server is around."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from pgqueue import embedded
from pgqueue.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    PostgresBinariesNotFound,
    find_postgres_bindir,
    throwaway_postgres,
)

try:
    find_postgres_bindir()
except PostgresBinariesNotFound:
    pytest.skip("PostgreSQL server binaries are not installed", allow_module_level=True)


def _select_one(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def test_throwaway_server_accepts_connections() -> None:
    with throwaway_postgres() as dsn:
        assert _select_one(dsn) == 1
        with psycopg.connect(dsn) as conn:
            settings = conn.execute(
                "SELECT current_user, current_setting('fsync'), current_setting('max_connections')"
            ).fetchone()
    assert settings == ("postgres", "off", "200")


def test_server_runs_unprivileged_when_started_as_root() -> None:
    with EmbeddedPostgres() as server:
        owner = server.data_dir.stat().st_uid
        assert _select_one(server.dsn) == 1
    if os.geteuid() == 0:
        assert owner != 0
    else:
        assert owner == os.geteuid()


def test_stop_then_start_keeps_data_and_port() -> None:
    with EmbeddedPostgres() as server:
        dsn_before = server.dsn
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivor (id int)")
            conn.execute("INSERT INTO survivor VALUES (42)")

        server.stop()
        assert not server.is_running()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn, connect_timeout=2)

        server.start()
        assert server.dsn == dsn_before
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT id FROM survivor").fetchall() == [(42,)]


def test_durable_server_keeps_commits_across_a_simulated_crash() -> None:
    with EmbeddedPostgres(settings={"synchronous_commit": "on"}) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE survivor (id int)")
        server.stop(mode="immediate")
        server.stop()
        server.restart()
        assert server.is_running()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM survivor").fetchone() == (0,)


def test_directory_is_removed_after_exit() -> None:
    with EmbeddedPostgres() as server:
        base_dir = server.base_dir
        assert (server.data_dir / "PG_VERSION").exists()
    assert not base_dir.exists()


def test_directory_is_removed_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), EmbeddedPostgres() as server:
        base_dir = server.base_dir
        _ = 1 / 0
    assert not base_dir.exists()


def test_directory_goes_under_tmpdir(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        parent.chmod(0o755)
        monkeypatch.setenv("TMPDIR", str(parent))
        with EmbeddedPostgres() as server:
            assert server.base_dir.parent == parent
            assert _select_one(server.dsn) == 1
    finally:
        parent.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_tmpdir_the_server_user_cannot_enter_falls_back_to_tmp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    locked = Path(tempfile.mkdtemp(dir="/var/tmp"))  # mode 0700, owned by root
    inner = locked / "inner"
    try:
        inner.mkdir(mode=0o777)
        monkeypatch.setenv("TMPDIR", str(inner))
        with EmbeddedPostgres() as server:
            assert server.base_dir.parent == Path("/tmp")
            assert _select_one(server.dsn) == 1
    finally:
        inner.rmdir()
        locked.rmdir()


def test_start_failure_reports_the_cause_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Path] = []
    make_base_dir = embedded._make_base_dir

    def recording_make_base_dir(user: embedded._OsUser | None) -> Path:
        created.append(make_base_dir(user))
        return created[-1]

    with EmbeddedPostgres() as holder:
        monkeypatch.setattr(embedded, "_make_base_dir", recording_make_base_dir)
        clash = EmbeddedPostgres(port=holder.port)
        with pytest.raises(EmbeddedPostgresError, match="Address already in use"), clash:
            pass
        assert len(created) == 1
        assert not created[0].exists()
        assert _select_one(holder.dsn) == 1


def test_missing_binaries_raise_a_typed_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded.shutil, "which", lambda _name: None)
    monkeypatch.setattr(embedded, "_DEBIAN_BINDIRS", tmp_path)
    with pytest.raises(PostgresBinariesNotFound, match="initdb"):
        find_postgres_bindir()
