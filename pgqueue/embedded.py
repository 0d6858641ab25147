"""A throwaway local PostgreSQL server for the demo and the tests.

The server lives in a fresh temporary directory (under TMPDIR if set, else on /dev/shm when it
is roomy), listens on 127.0.0.1 only, trusts every local connection and trades durability for
speed (``fsync=off``), so it must never hold data anyone wants to keep.

It promises three things: it works on a machine where the PostgreSQL binaries are installed but
no server runs; it works when run as root (``initdb`` refuses root, so the server then runs as
the unprivileged ``postgres`` or ``nobody`` user); and the directory is removed when the context
exits, even on errors. An instance can be stopped and started again on the same port and data
directory, which is what the reliability tests need to simulate an outage. An instance can also
be a hot standby of another one (``primary=``): a real read-only replica, streaming from it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "PostgresBinariesNotFound",
    "find_postgres_bindir",
    "free_port",
    "throwaway_postgres",
]

SUPERUSER = "postgres"
"""Name of the database superuser created by ``initdb``, so DSNs are predictable."""

_START_TIMEOUT_S = 60
_DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
_RAM_DISK = Path("/dev/shm")
_RAM_DISK_MIN_FREE_BYTES = 1 << 30
_UNPRIVILEGED_USERS = ("postgres", "nobody")
_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    # Durability is pointless for a server whose directory is deleted on exit.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Worker pools in the tests open many connections at once.
    "max_connections": "200",
}

ShutdownMode = Literal["smart", "fast", "immediate"]


class EmbeddedPostgresError(RuntimeError):
    """The throwaway PostgreSQL server could not be set up, started or stopped."""


class PostgresBinariesNotFound(EmbeddedPostgresError):
    """No PostgreSQL server binaries (initdb, pg_ctl) were found on this machine."""


def find_postgres_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    ``pg_config`` may come from a client-only package, so every candidate must actually hold
    the server binaries; Debian keeps them out of PATH, hence the ``/usr/lib`` fallback.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    candidates.extend(sorted(_DEBIAN_BINDIRS.glob("*/bin"), key=_version_key, reverse=True))
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if on_path[0] and on_path[1]:
        candidates.append(Path(on_path[0]).parent)
    for bindir in candidates:
        if _is_executable(bindir / "initdb") and _is_executable(bindir / "pg_ctl"):
            return bindir
    raise PostgresBinariesNotFound(
        "no PostgreSQL server binaries found: looked at `pg_config --bindir`, "
        "/usr/lib/postgresql/*/bin and PATH for initdb and pg_ctl "
        "(install them, e.g. `apt-get install postgresql`)"
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    """Sort ``/usr/lib/postgresql/9.6/bin`` below ``.../15/bin`` (numeric, not textual)."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def free_port() -> int:
    """Ask the kernel for a currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class _OsUser:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def _unprivileged_user() -> _OsUser | None:
    """Pick the account to run the server as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _OsUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise EmbeddedPostgresError(
        "running as root, and initdb refuses root, but none of the users "
        f"{', '.join(_UNPRIVILEGED_USERS)} exists to run PostgreSQL as"
    )


def _traversable_by(directory: Path, user: _OsUser) -> bool:
    """Whether ``user`` may pass through ``directory`` and every ancestor of it."""
    for path in (directory, *directory.parents):
        info = path.stat()
        if info.st_mode & stat.S_IXOTH:
            continue
        if info.st_uid == user.uid and info.st_mode & stat.S_IXUSR:
            continue
        if info.st_gid == user.gid and info.st_mode & stat.S_IXGRP:
            continue
        return False
    return True


def _parent_dir_candidates() -> list[Path]:
    """Where the temp dir may go, best first: an explicit TMPDIR, else a roomy RAM disk.

    Nothing here must survive, and a cluster is thousands of small files: on tmpfs, cloning a
    test database is several times faster than on disk.
    """
    explicit = os.environ.get("TMPDIR")
    if explicit:
        candidates = [Path(explicit)]
    else:
        candidates = []
        if _is_roomy_ram_disk(_RAM_DISK):
            candidates.append(_RAM_DISK)
        candidates.append(Path(tempfile.gettempdir()))
    candidates.append(Path("/tmp"))
    return list(dict.fromkeys(path.resolve() for path in candidates))


def _is_roomy_ram_disk(path: Path) -> bool:
    """Docker's default /dev/shm (64 MB) is too small for a cluster and its WAL."""
    return (
        path.is_dir()
        and os.access(path, os.W_OK | os.X_OK)
        and shutil.disk_usage(path).free >= _RAM_DISK_MIN_FREE_BYTES
    )


def _make_base_dir(user: _OsUser | None) -> Path:
    """Create the private temp dir that holds data, socket and log, owned by the server user."""
    parents = _parent_dir_candidates()
    for parent in parents:
        if user is not None and not _traversable_by(parent, user):
            continue
        base = Path(tempfile.mkdtemp(prefix="pgqueue-pg-", dir=parent))
        if user is not None:
            os.chown(base, user.uid, user.gid)
        return base
    assert user is not None  # every directory is traversable by its own creator
    raise EmbeddedPostgresError(
        f"no temp directory is traversable by user {user.name}: tried "
        f"{', '.join(map(str, parents))}; set TMPDIR to a world-traversable directory"
    )


class EmbeddedPostgres:
    """One throwaway PostgreSQL server: ``start()``, ``stop()``, ``restart()``, ``destroy()``.

    The first ``start()`` creates the cluster; later ones reuse the same data directory and
    port, so data survives a ``stop()``/``start()`` cycle. Use it as a context manager to be
    sure ``destroy()`` runs.

    ``settings`` override the speed-over-safety defaults. With the default
    ``synchronous_commit=off``, a ``stop(mode="immediate")`` (a simulated crash) loses the last
    few hundred milliseconds of commits; a test that asserts committed work survives a crash
    should pass ``settings={"synchronous_commit": "on"}``.

    With ``primary`` (a running instance), the cluster is not created by ``initdb`` but copied
    from the primary by ``pg_basebackup -R``: the server starts as a hot standby that streams
    the primary's changes and refuses every write, as a read replica does.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        primary: EmbeddedPostgres | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.settings = {**_SERVER_SETTINGS, **(settings or {})}
        self.host = "127.0.0.1"
        self.user = SUPERUSER
        self.primary = primary
        self.bindir = find_postgres_bindir()
        self._os_user = _unprivileged_user()
        self._base_dir: Path | None = None

    @property
    def dsn(self) -> str:
        """Libpq URL of the ``postgres`` maintenance database."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    @property
    def base_dir(self) -> Path:
        """Temp directory holding ``data/``, ``socket/`` and ``server.log``."""
        if self._base_dir is None:
            raise EmbeddedPostgresError("the server has not been started yet")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def start(self) -> None:
        """Start the server (creating the cluster on first use) and wait until it accepts."""
        if self._base_dir is None:
            self._base_dir = _make_base_dir(self._os_user)
            if self.primary is None:
                self._init_cluster()
            else:
                self._copy_primary(self.primary)
        elif self.is_running():
            return
        self._run_checked(
            [
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
            ],
            what="start PostgreSQL",
        )

    def stop(self, mode: ShutdownMode = "fast") -> None:
        """Stop the server and wait for it to exit; a no-op when it is not running.

        ``immediate`` skips the shutdown checkpoint, like a crash, which is what fault-injection
        tests want; the data directory is kept either way.
        """
        if not self.is_running():
            return
        self._run_checked(
            ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w"],
            what="stop PostgreSQL",
        )

    def restart(self) -> None:
        """Stop then start on the same port and data directory."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        """Ask pg_ctl rather than trusting our own bookkeeping: tests may kill the server."""
        if self._base_dir is None:
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.data_dir)])
        return result.returncode == 0

    def destroy(self) -> None:
        """Stop the server (without a checkpoint: the data is discarded) and delete its files."""
        if self._base_dir is None:
            return
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def _make_socket_dir(self) -> Path:
        socket_dir = self.base_dir / "socket"
        socket_dir.mkdir()
        if self._os_user is not None:
            os.chown(socket_dir, self._os_user.uid, self._os_user.gid)
        return socket_dir

    def _init_cluster(self) -> None:
        socket_dir = self._make_socket_dir()
        self._run_checked(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initialise the PostgreSQL cluster",
        )
        self._write_settings(socket_dir)

    def _copy_primary(self, primary: EmbeddedPostgres) -> None:
        """Clone a running primary into a standby; initdb's trust rules allow replication."""
        if not primary.is_running():
            raise EmbeddedPostgresError("a standby needs its primary to be running")
        socket_dir = self._make_socket_dir()
        self._run_checked(
            [
                "pg_basebackup",
                "--pgdata",
                str(self.data_dir),
                "--host",
                primary.host,
                "--port",
                str(primary.port),
                "--username",
                primary.user,
                # -R: write standby.signal and primary_conninfo, so the copy starts as a standby.
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            what="copy the primary with pg_basebackup",
        )
        # The copied postgresql.conf carries the primary's port and socket; later lines win.
        self._write_settings(socket_dir)

    def _write_settings(self, socket_dir: Path) -> None:
        settings = {
            **self.settings,
            "port": str(self.port),
            "unix_socket_directories": f"'{socket_dir}'",
        }
        # Written to the config file, not passed on the command line, so that a later start()
        # finds the same port and settings without having to remember them.
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# pgqueue throwaway server\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary as the server's OS user, isolated from PG* variables."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        kwargs: dict[str, Any] = {}
        if self._os_user is not None:
            kwargs = {"user": self._os_user.uid, "group": self._os_user.gid, "extra_groups": []}
            env["HOME"] = str(self.base_dir)
        return subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            # Our own cwd (e.g. /root) may be unreadable to the server's user.
            cwd=self.base_dir,
            **kwargs,
        )

    def _run_checked(self, argv: list[str], *, what: str) -> None:
        result = self._run(argv)
        if result.returncode == 0:
            return
        log_tail = ""
        if self.log_file.exists():
            log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        raise EmbeddedPostgresError(
            f"could not {what} (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}{result.stderr}"
            + (f"\nserver log tail:\n{log_tail}" if log_tail else "")
        )


@contextmanager
def throwaway_postgres(*, port: int | None = None) -> Iterator[str]:
    """Run a throwaway server for the duration of the block and yield its DSN."""
    with EmbeddedPostgres(port=port) as server:
        yield server.dsn
