"""`pgqueue job ID` shows what a task reported (context.set_progress / set_meta), in text and
in --json, run as the real command in a subprocess."""

from __future__ import annotations

import json
import re

from tests.helpers import run_cli

APP = "tests.apps.progress_app:app"


def test_pgqueue_job_shows_progress_and_meta(dsn: str) -> None:
    deferred = run_cli("--app", APP, "defer", "tests.apps.progress_app.report_many", "[5]",
                       dsn=dsn)
    assert deferred.returncode == 0, deferred.stderr
    job_id = int(re.findall(r"\d+", deferred.stdout)[0])
    quiet = run_cli("job", str(job_id), dsn=dsn)
    assert quiet.returncode == 0, quiet.stderr
    assert not re.search(r"^  (progress|meta) ", quiet.stdout, re.M)  # nothing reported yet

    worker = run_cli("--app", APP, "worker", "--one-shot", "--progress-interval", "50ms", dsn=dsn)
    assert worker.returncode == 0, worker.stderr

    shown = run_cli("job", str(job_id), dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"job {job_id}: tests.apps.progress_app.report_many (succeeded)"
    [progress] = [line for line in lines if line.startswith("  progress ")]
    assert re.fullmatch(r"  progress\s+100% 5 of 5 \(at \d{4}-\d\d-\d\dT[\d:.]+\+00:00\)",
                        progress), progress
    assert '  meta             {"unit": "rows", "items": 5}' in lines  # jsonb's key order
    assert lines.index(progress) == 2  # right under the queue: what people look for first

    document = json.loads(run_cli("job", str(job_id), "--json", dsn=dsn).stdout)
    assert (document["progress"], document["progress_message"]) == (1.0, "5 of 5")
    assert document["meta"] == {"items": 5, "unit": "rows"} and document["progress_at"]
    [listed] = json.loads(run_cli("jobs", "--json", dsn=dsn).stdout)
    assert (listed["progress"], listed["meta"]) == (1.0, {"items": 5, "unit": "rows"})
