"""`pgqueue workflow ID`, run as a real command in a subprocess: a workflow's state and its jobs'
(parents, attempts, timings, results, errors) in text and JSON, `--cancel`, and the exit codes
of an unknown id, a malformed one, and a workflow with nothing left to cancel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

import pgqueue
from pgqueue import chain, chord, cli
from tests.apps import canvas_app
from tests.helpers import run_cli

APP = "tests.apps.canvas_app:app"
add, double, collect, explode = (canvas_app.add, canvas_app.double, canvas_app.collect,
                                 canvas_app.explode)


@pytest.fixture(name="app")
def canvas_app_on_test_database(dsn: str) -> Iterator[pgqueue.App]:
    canvas_app.app.dsn = dsn
    yield canvas_app.app
    canvas_app.app.close()


def workflow(dsn: str, *argv: str) -> tuple[int, str, str]:
    result = run_cli("--app", APP, "workflow", *argv, dsn=dsn)
    return result.returncode, result.stdout, result.stderr


def run_every_job(dsn: str) -> None:
    result = run_cli("--app", APP, "worker", "--one-shot", dsn=dsn)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_chord_before_and_after_it_ran(app: pgqueue.App, dsn: str) -> None:
    handle = chord([add.s(1, 2), add.s(3, 4)], collect.s(label="sum")).defer()
    first, second, callback = handle.job_ids

    code, text, err = workflow(dsn, str(handle.workflow_id))
    assert (code, err) == (0, "")
    lines = text.splitlines()
    assert lines[0] == f"workflow {handle.workflow_id}: pending (3 jobs: 2 queued, 1 blocked)"
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert rows[str(callback)][1:4] == [collect.name, "blocked", f"{first},{second}"]
    assert rows[str(first)][1:5] == [add.name, "queued", "-", "0/3"]

    run_every_job(dsn)
    code, text, err = workflow(dsn, str(handle.workflow_id), "--json")
    assert (code, err) == (0, "")
    document = json.loads(text)
    assert document["workflow_id"] == str(handle.workflow_id)
    assert document["state"] == "succeeded"
    assert document["counts"] == {"succeeded": 3}
    assert document["finished_at"] is not None
    jobs = document["jobs"]
    assert [job["id"] for job in jobs] == list(handle.job_ids)
    assert [job["parent_ids"] for job in jobs] == [[], [], [first, second]]
    assert [job["result"] for job in jobs] == [3, 7, {"label": "sum", "results": [3, 7]}]
    assert all(job["attempts"] == 1 and job["error"] is None for job in jobs)
    assert all(job["waited_seconds"] >= 0 and job["ran_seconds"] >= 0 for job in jobs)

    code, text, _ = workflow(dsn, str(handle.workflow_id))
    assert text.splitlines()[0].endswith(": succeeded (3 jobs: 3 succeeded)")
    assert '{"label": "sum", "results": [3, 7]}' in text


def test_a_failed_step_and_the_steps_it_cancelled(app: pgqueue.App, dsn: str) -> None:
    handle = chain(add.s(1, 1), explode.s(), double.s()).defer()
    run_every_job(dsn)
    code, text, err = workflow(dsn, str(handle.workflow_id))
    assert (code, err) == (0, "")
    lines = text.splitlines()
    assert lines[0].endswith(": failed (3 jobs: 1 succeeded, 1 failed, 1 cancelled)")
    failed, cancelled = (line for line in lines if line.startswith(
        (str(handle.job_ids[1]) + " ", str(handle.job_ids[2]) + " ")))
    assert "Fail: no 2" in failed
    assert f"ParentFailed: parent job {handle.job_ids[1]} ended failed" in cancelled
    assert lines[-1] == "(pgqueue job ID shows a job's whole error and traceback)"


def test_cancel_and_the_exit_codes(app: pgqueue.App, dsn: str) -> None:
    handle = chain(add.s(1, 2), double.s()).defer()
    code, text, err = workflow(dsn, str(handle.workflow_id), "--cancel")
    assert (code, err) == (0, "")
    assert text.splitlines()[0] == "cancelled 2 jobs"
    assert f"workflow {handle.workflow_id}: cancelled (2 jobs: 2 cancelled)" in text

    code, _, err = workflow(dsn, str(handle.workflow_id), "--cancel")
    assert code == cli.EXIT_WRONG_STATE
    assert err.strip() == (f"pgqueue: error: workflow {handle.workflow_id} is already "
                           "cancelled: nothing left to cancel")

    unknown = uuid.uuid4()
    for argv in ((str(unknown),), (str(unknown), "--json"), (str(unknown), "--cancel")):
        code, out, err = workflow(dsn, *argv)
        assert (code, out) == (cli.EXIT_NOT_FOUND, ""), argv
        assert err.strip() == f"pgqueue: error: no workflow with id {unknown}"

    code, _, err = workflow(dsn, "12")
    assert code == cli.EXIT_USAGE
    assert err.strip() == "pgqueue: error: not a workflow id: '12'"
