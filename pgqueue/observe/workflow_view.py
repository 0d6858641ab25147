"""One workflow as `pgqueue workflow ID` shows it: its overall state, then every job with its
task, state, parents, attempts, how long it waited and ran, and its result or error.

The text is for people (one row a job, results and errors cut to a column's width; `pgqueue
job ID` has the whole of one); `--json` has every value in full.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pgqueue.canvas import WorkflowJob, workflow_state
from pgqueue.durations import format_duration
from pgqueue.observe.render import Out, shorten, table, timestamp
from pgqueue.types import JobState

SUMMARY_WIDTH = 50


def workflow_document(workflow_id: uuid.UUID, jobs: Sequence[WorkflowJob]) -> dict[str, Any]:
    """The workflow as one JSON-ready object."""
    counts = Counter(job.state.value for job in jobs)
    state = workflow_state(jobs)
    finished = [job.finished_at for job in jobs if job.finished_at is not None]
    return {
        "workflow_id": str(workflow_id), "state": state,
        "counts": {s.value: counts[s.value] for s in JobState if counts[s.value]},
        "enqueued_at": min((job.enqueued_at for job in jobs if job.enqueued_at), default=None),
        "finished_at": max(finished) if state not in ("pending", "running") else None,
        "jobs": [_job_entry(job) for job in jobs],
    }


def _job_entry(job: WorkflowJob) -> dict[str, Any]:
    return {
        "id": job.id, "task_name": job.task_name, "state": job.state.value,
        "parent_ids": list(job.parent_ids), "attempts": job.attempts,
        "max_attempts": job.max_attempts, "enqueued_at": job.enqueued_at,
        "started_at": job.started_at, "finished_at": job.finished_at,
        "waited_seconds": _seconds_between(job.enqueued_at, job.started_at),
        "ran_seconds": _seconds_between(job.started_at, job.finished_at),
        "result": job.result,
        "error": None if job.error_type is None else {
            "type": job.error_type, "message": job.error_message or ""},
    }


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """None until both ends are known. A job that ran and was queued again (a retry) waited
    from its enqueue to its latest start."""
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def render_workflow(out: Out, document: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in document["counts"].items())
    jobs = document["jobs"]
    out(f"workflow {document['workflow_id']}: {document['state']} "
        f"({len(jobs)} job{'s' if len(jobs) != 1 else ''}: {counts})")
    out(f"  enqueued {timestamp(document['enqueued_at'])}"
        + (f", finished {timestamp(document['finished_at'])}" if document["finished_at"] else ""))
    out("")
    table(out, ("id", "task", "state", "after", "attempts", "waited", "ran", "result / error"),
          [(job["id"], job["task_name"], job["state"],
            ",".join(map(str, job["parent_ids"])) or "-",
            f"{job['attempts']}/{job['max_attempts']}",
            _short(job["waited_seconds"]), _short(job["ran_seconds"]), _summary(job))
           for job in jobs])
    if any(job["error"] for job in jobs):
        out("")
        out("(pgqueue job ID shows a job's whole error and traceback)")


def _short(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(round(seconds))


def _summary(job: dict[str, Any]) -> str:
    error = job["error"]
    if error is not None:
        return shorten(f"{error['type']}: {error['message']}", SUMMARY_WIDTH)
    if job["state"] != JobState.SUCCEEDED:
        return ""
    return shorten(json.dumps(job["result"], ensure_ascii=False), SUMMARY_WIDTH)
