"""`pgqueue top` driven as a person would: the real CLI in a pseudo-terminal, with a worker
running beside it, read frame by frame, quit with `q` (or Ctrl-C)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgqueue.app import App
from tests.apps import observe_app
from tests.helpers import REPO_ROOT, app_on, cli_command, cli_env, run_cli, spawn_cli, wait_until

ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")
FRAME_START = b"\x1b[H"


class TerminalSession:
    """A command on the slave side of a pty of a given size; we read and type on the master."""

    def __init__(self, args: list[str], env: dict[str, str], *, rows: int = 60,
                 cols: int = 170) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.slave_path = os.ttyname(slave)
        terminal_env = {key: value for key, value in env.items()
                        if key not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                                        env={**terminal_env, "TERM": "xterm-256color"},
                                        cwd=REPO_ROOT, start_new_session=True)
        self.slave = slave  # kept open: its termios settings are checked after exit
        self.output = b""

    def _read_available(self, timeout: float) -> None:
        readable, _, _ = select.select([self.master], [], [], timeout)
        if readable:
            with contextlib.suppress(OSError):  # OSError: the child closed the terminal
                self.output += os.read(self.master, 1 << 16)

    def _drain(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def frames(self) -> list[str]:
        """Every complete frame drawn so far, as plain text (colours and cursor moves removed)."""
        chunks = self.output.split(FRAME_START)[1:-1]
        return [ANSI.sub(b"", chunk).decode(errors="replace") for chunk in chunks]

    def wait_for_frame(self, predicate: object, *, timeout: float = 15.0,
                       message: str = "a frame") -> str:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        self._drain()  # frames drawn before now are stale
        start = len(self.frames())
        while time.monotonic() < deadline:
            self._read_available(0.05)
            for frame in self.frames()[start:]:
                if predicate(frame):
                    return frame
            assert self.process.poll() is None, self.plain_output()
        raise AssertionError(f"no {message} within {timeout}s; last frame:\n"
                             f"{(self.frames() or [self.plain_output()])[-1]}")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_exit(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read_available(0.05)
        self._read_available(0.05)
        return self.process.wait(timeout=1)

    def plain_output(self) -> str:
        return ANSI.sub(b"", self.output).decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)


def row_of(frame: str, first_cell: str) -> list[str]:
    for line in frame.splitlines():
        cells = line.split()
        if cells and cells[0] == first_cell:
            return cells
    return []


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    with app_on(observe_app.app, dsn) as app:
        yield app


@pytest.fixture
def top(dsn: str) -> Iterator[TerminalSession]:
    session = TerminalSession(cli_command("--app", "tests.apps.observe_app:app", "top",
                                          "--interval", "0.2"), cli_env(dsn))
    yield session
    session.close()


def test_top_shows_queues_rates_workers_and_failures_live_then_quits_on_q(
    app: App, dsn: str, top: TerminalSession
) -> None:
    # History: a worker ran some jobs, two failed for good.
    observe_app.quick.defer_many([(n,) for n in range(6)])
    observe_app.broken.defer("smtp refused")
    assert app.run_worker(one_shot=True, queues=["emails"]) == 0
    # Now: emails is paused with work waiting; a real worker runs a slow report.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.pause_queue('emails')")
    observe_app.quick.defer_many([(n,) for n in range(3)])
    slow = observe_app.slow.defer(30.0)
    worker = spawn_cli("--app", "tests.apps.observe_app:app", "worker", "-q", "reports",
                       "--name", "report-runner", dsn=dsn)
    try:
        wait_until(lambda: app.get_job(slow).state == "running", timeout=20,
                   message="the worker to start the slow job")

        frame = top.wait_for_frame(
            lambda f: row_of(f, "reports")[4:5] == ["1"] and "report-runner" in f,
            message="a frame with the worker and its running task")
        assert row_of(frame, "emails")[:3] == ["emails", "paused", "3"]
        reports = row_of(frame, "reports")
        assert reports[:5] == ["reports", "active", "0", "0", "1"]
        assert "ConnectionError: smtp refused" in frame
        failing = frame.split("Failing tasks", 1)[1]
        assert row_of(failing, "observe.broken")[1:3] == ["1", "100.0%"]
        quick = row_of(frame.split("Tasks:", 1)[1], "observe.quick")
        assert quick[1:5] == ["3", "0", "0", "6"]  # queued, running, retrying, done in 1m
        assert row_of(frame, "report-runner")[3] == "1/1"
        assert "Stuck jobs: none" in frame
        running = top.wait_for_frame(lambda f: "rendering page 1 of 4" in f,
                                     message="a frame with the slow job's progress")
        [progress_row] = [line for line in running.split("Running jobs", 1)[1].splitlines()
                          if line.strip().startswith(str(slow))]
        assert "observe.slow" in progress_row and "25%" in progress_row

        # It refreshes: new work shows up without touching the terminal.
        observe_app.quick.defer_many([(n,) for n in range(4)])
        top.wait_for_frame(lambda f: row_of(f, "emails")[:3] == ["emails", "paused", "7"],
                           message="a frame counting the 4 new jobs")

        top.type(b"q")
        assert top.wait_exit() == 0
        assert top.output.endswith(b"\x1b[?1049l")  # left the alternate screen
        assert termios.tcgetattr(top.slave)[3] & termios.ICANON  # line mode restored
    finally:
        app.cancel_job(slow)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_top_exits_cleanly_on_ctrl_c(top: TerminalSession) -> None:
    top.wait_for_frame(lambda f: "Queues" in f and "(no jobs yet)" in f,
                       message="a frame of an empty queue")
    top.process.send_signal(signal.SIGINT)
    assert top.wait_exit() == 0
    assert top.output.endswith(b"\x1b[?1049l")


def test_top_once_prints_one_plain_frame_for_scripts(app: App, dsn: str) -> None:
    observe_app.quick.defer(1)
    result = run_cli("--app", "tests.apps.observe_app:app", "top", "--once", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    assert row_of(result.stdout, "emails")[:3] == ["emails", "active", "1"]
    piped = run_cli("--app", "tests.apps.observe_app:app", "top", dsn=dsn)  # not a terminal
    assert piped.returncode == 0 and "Queues" in piped.stdout


def test_top_without_the_dba_schema_says_to_migrate(empty_dsn: str) -> None:
    result = run_cli("top", "--once", dsn=empty_dsn)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "pgqueue migrate" in result.stderr
    bad = run_cli("top", "--interval", "0", dsn=empty_dsn)
    assert bad.returncode == 2 and "--interval" in bad.stderr
