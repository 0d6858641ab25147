"""`python -m demo` (what `make demo` runs) in a subprocess, as CI and a newcomer run it.

The Django demo runs on a fresh empty database of the test server (PGQUEUE_DSN), twice: the
second run meets the first one's jobs and schedules and must still pass. The plain-Python demo
starts its own throwaway server, as `make demo` does on a machine with no database configured.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pgqueue.embedded import free_port
from tests.helpers import REPO_ROOT, scalar, wait_until

pytest.importorskip("django", reason="the demo is a Django project: pip install -e '.[django]'")

CHECKS = [
    "view saved the issue and enqueued send_issue in one transaction",
    "dry run rolled back the issue and its job together",
    "send_issue fanned out 1000 deliver_issue jobs, all final",
    "retrying job: ada@slow-mx.example delivered on attempt 2",
    "failing job: nobody@bounce.example failed after 3 attempts",
    "Django Task build_report: SUCCESSFUL, report written",
    "chord report: callback ran once with all 3 results",
    "failing job listed in the admin (state=failed)",
    "failing job's admin page shows its error and traceback",
    "background send_newsletter (Task.objects.create) ran at once",
    "background generate_report() ran 5 s later (schedule=5)",
    "background generate_report (run_at=+1h) still scheduled",
    "periodic audience_snapshot ran on a 5-second tick",
    "worker stopped by SIGTERM with exit code 0",
    "no job of this run left running",
    "no job of this run failed but the bounced delivery",
]
QUEUE_STATS_HEADER = re.compile(
    r"^ +queue +\| paused \| queued \| due \| scheduled \| running \| succeeded \| failed \| "
    r"cancelled \| oldest_waiting_seconds \| started_5m \| wait_p50_seconds \| wait_p95_seconds "
    r"\| waiting_on_lock \| concurrency \| per_key_concurrency \| rate_limit \| "
    r"started_in_rate_window \| held_back_by$",
    re.MULTILINE)


def demo_env(dsn: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PGQUEUE_DSN", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    return {**env, "PGQUEUE_DSN": dsn} if dsn else env


def run_demo(*args: str, dsn: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=demo_env(dsn),
                          capture_output=True, text=True, timeout=120, check=False)


def queue_stats_rows(output: str) -> dict[str, list[str]]:
    """The rows of the printed queue_stats table, by queue."""
    table = output[QUEUE_STATS_HEADER.search(output).end():].splitlines()[2:]
    rows = [line.split("|") for line in table if "|" in line]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def assert_demo_passed(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for check in CHECKS:
        assert f"  ok    {check}" in output, check
    assert "FAIL" not in output
    assert re.search(r"^demo OK in [\d.]+ m?s$", output, re.MULTILINE), output[-500:]


def test_django_demo_on_a_fresh_database_and_again_on_the_same_one(empty_dsn: str) -> None:
    first = run_demo("demo", dsn=empty_dsn)
    assert_demo_passed(first)
    assert re.search(r"manage\.py migrate: \d+ migrations applied", first.stdout)
    assert "manage.py pgqueue worker --concurrency 8" in first.stdout
    for front_door in ("pgqueue's own API", "Django's Tasks framework",
                       "pgqueue's workflows", "django-background-tasks drop-in"):
        assert front_door in first.stdout
    stats = queue_stats_rows(first.stdout)
    # paused, queued, due, scheduled, running, succeeded, failed, cancelled, ...
    assert stats["emails"][:8] == ["f", "0", "0", "0", "0", "1000", "1", "0"]
    # build_report, and the chord's 3 header jobs and its callback
    assert stats["reports"][:8] == ["f", "0", "0", "0", "0", "5", "0", "0"]
    assert stats["default"][:8] == ["f", "1", "0", "1", "0", "2", "0", "0"]
    assert int(stats["maintenance"][5]) >= 1

    again = run_demo("demo", dsn=empty_dsn)
    assert_demo_passed(again)
    assert "manage.py migrate: no migrations applied" in again.stdout
    assert queue_stats_rows(again.stdout)["emails"][5:7] == ["2000", "2"]


def test_plain_python_demo_starts_its_own_postgres() -> None:
    result = run_demo("demo.core", dsn=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: a throwaway PostgreSQL at 127.0.0.1:" in result.stdout
    assert "newsletter jobs: 1000 of 1000 succeeded" in result.stdout
    assert "flaky job 1002: succeeded after 2 attempts" in result.stdout
    assert result.stdout.rstrip().endswith("demo OK")


def test_serve_mode_answers_then_stops_on_sigterm(empty_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "demo", "--serve", "--port", str(port)],
                                cwd=REPO_ROOT, env=demo_env(empty_dsn), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "serving http://" in log_path.read_text()
                       or demo.poll() is not None,
                       timeout=60, message="the demo's development server")
            assert demo.poll() is None, log_path.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                assert page.status == 200 and b"1000 subscribers" in page.read()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/",
                                        timeout=10) as page:
                assert page.status == 200
            wait_until(lambda: scalar(empty_dsn, "SELECT count(*) FROM pgqueue.workers") == 1,
                       timeout=30, message="the demo's worker")
        finally:
            demo.send_signal(signal.SIGTERM)
            exit_code = demo.wait(timeout=60)
    assert exit_code == 0, log_path.read_text()
    assert "worker.stopped" in log_path.read_text()
    assert scalar(empty_dsn, "SELECT count(*) FROM pgqueue.workers") == 0
