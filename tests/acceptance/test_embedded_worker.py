"""A worker embedded in a program (`Worker(app, options).run()`) keeps the CLI's shutdown
promise: once it gives a job back to `queued`, no task of the process still runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.helpers import REPO_ROOT, cli_env, run_cli, scalar, wait_until

APP = "tests.apps.core_app:app"
EMBEDDING_PROGRAM = """
import sys
from tests.apps.core_app import app
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker
app.dsn = sys.argv[1]
print("exit", Worker(app, WorkerOptions(shutdown_timeout=float(sys.argv[2]))).run(), flush=True)
"""


def _start_embedded(dsn: str, shutdown_timeout: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", EMBEDDING_PROGRAM, dsn, str(shutdown_timeout)],
                            env=cli_env(dsn), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _running(dsn: str, task: str, shutdown_timeout: float) -> subprocess.Popen[str]:
    """The embedding program, once it runs `task` (deferred first)."""
    run_cli("--app", APP, "defer", f"tests.apps.core_app.{task}", "[600]", dsn=dsn)
    program = _start_embedded(dsn, shutdown_timeout)
    wait_until(lambda: scalar(dsn, "SELECT count(*) FROM ledger"), timeout=15,
               message="job start")
    return program


def _job_row(dsn: str) -> str:
    return scalar(dsn, "SELECT row(state, attempts)::text FROM pgqueue.jobs WHERE id = 1")


def test_the_shutdown_timeout_releases_a_job_whose_task_ignores_it_and_ends_the_process(
    ledger_dsn: str
) -> None:
    program = _running(ledger_dsn, "ignores_abort", shutdown_timeout=0.5)
    started = time.monotonic()
    program.send_signal(signal.SIGTERM)
    output, _ = program.communicate(timeout=30)
    assert time.monotonic() - started < 10, output
    assert "worker.exit_forced" in output and program.returncode == 0, output
    assert _job_row(ledger_dsn) == "(queued,0)"


def test_the_second_signal_releases_at_once_and_ends_the_process(ledger_dsn: str) -> None:
    program = _running(ledger_dsn, "ignores_abort", shutdown_timeout=600)
    program.send_signal(signal.SIGTERM)
    wait_until(lambda: _job_row(ledger_dsn) == "(running,1)", message="still running")
    started = time.monotonic()
    program.send_signal(signal.SIGINT)
    output, _ = program.communicate(timeout=30)
    assert time.monotonic() - started < 10, output
    assert "worker.exit_forced" in output, output
    assert _job_row(ledger_dsn) == "(queued,0)"


def test_a_worker_whose_jobs_all_finished_returns_normally(ledger_dsn: str) -> None:
    program = _running(ledger_dsn, "sleep_for", shutdown_timeout=0.5)
    program.send_signal(signal.SIGTERM)
    output, _ = program.communicate(timeout=30)
    assert "exit 0" in output and "worker.exit_forced" not in output, output
    assert _job_row(ledger_dsn) == "(queued,0)"
