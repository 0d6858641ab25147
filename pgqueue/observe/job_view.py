"""One job as `pgqueue job ID` shows it: every column, the error with its traceback, the
worker holding it.

The document is built from the row's `to_jsonb`, so columns a later migration adds (an
attempt history, progress) appear in the text and in `--json` without a change here: the
known fields come first in a fixed order, then any others by name. The error's three columns
are shown as one `error` object, and the worker's id with its name, host and pid.
"""

from __future__ import annotations

import json
from typing import Any

from pgqueue.observe.render import Out
from pgqueue.printable import printable

FIELD_ORDER = (
    "id", "task_name", "queue", "state", "progress", "progress_message", "progress_at", "meta",
    "priority", "attempts", "max_attempts", "args",
    "kwargs", "run_at", "enqueued_at", "started_at", "finished_at", "timeout_seconds",
    "unique_key", "lock", "concurrency_key", "claim_token", "abort_requested", "result",
)
_ERROR_COLUMNS = ("error_type", "error_message", "error_traceback")


def job_document(row: dict[str, Any]) -> dict[str, Any]:
    """The job as one JSON-ready object (see the module docstring)."""
    columns = dict(row["job"])
    error_type, message, traceback = (columns.pop(name, None) for name in _ERROR_COLUMNS)
    worker_id = columns.pop("worker_id", None)
    document = {name: columns.pop(name) for name in FIELD_ORDER if name in columns}
    document["worker"] = None if worker_id is None else {
        "id": worker_id, "name": row["worker_name"], "hostname": row["worker_hostname"],
        "pid": row["worker_pid"]}
    document["error"] = None if error_type is None else {
        "type": error_type, "message": message or "", "traceback": traceback}
    document.update(sorted(columns.items()))
    return document


def progress_line(document: dict[str, Any]) -> str:
    """`40% resized 40 of 100 (at 2026-12-03T13:40:00+00:00)`."""
    line = f"{document['progress'] * 100:.0f}%"
    if document.get("progress_message"):
        line += f" {document['progress_message']}"
    if document.get("progress_at"):
        line += f" (at {document['progress_at']})"
    return line


def render_job(out: Out, document: dict[str, Any]) -> None:
    """Label and value per line (empty fields left out: `--json` has them all); each
    attempt's error when the job keeps a history (a list under `errors`), and the latest
    error's traceback, verbatim, last."""
    out(f"job {document['id']}: {printable(document['task_name'])} ({document['state']})")
    error = document.get("error")
    for name, value in document.items():
        if name in ("id", "task_name", "state", "error", "max_attempts", "progress_message",
                    "progress_at") or value is None:
            continue
        if name == "errors" and isinstance(value, list):
            for entry in value:
                out(f"  {'attempt ' + str(entry.get('attempt', '?')):<16} "
                    f"{printable(entry.get('type'))}: {printable(entry.get('message'))}"
                    f"{'  (' + printable(entry['at']) + ')' if entry.get('at') else ''}")
            continue
        if name == "attempts":
            value = f"{value} of {document.get('max_attempts')}"
        elif name == "progress":
            value = progress_line(document)
        elif name == "worker":
            value = "" if value is None else (
                f"{value['id']} ({printable(value['name'] or 'unregistered')}, "
                f"{printable(value['hostname'] or '?')} pid {value['pid']})")
        elif not isinstance(value, str) and value is not None:
            value = json.dumps(value, ensure_ascii=False)
        out(f"  {name:<16} {printable(value)}")
    if error is not None:
        out(f"  {'error':<16} {printable(error['type'])}: {printable(error['message'])}")
        if error["traceback"]:
            out("")
            for line in error["traceback"].rstrip("\n").splitlines():
                out(f"    {printable(line)}")
