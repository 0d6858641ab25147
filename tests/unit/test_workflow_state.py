"""A workflow's overall state from its jobs' (pgqueue.canvas.workflow_state), as `pgqueue
workflow ID` and the admin show it."""

from __future__ import annotations

import pytest

from pgqueue.canvas import WorkflowJob, workflow_state
from pgqueue.types import JobState


def jobs(*states: str, started: int = 0) -> list[WorkflowJob]:
    """Jobs in these states; the first `started` of them have made an attempt."""
    return [WorkflowJob(id=i, task_name="t", state=JobState(state), result=None,
                        error_type=None, error_message=None, attempts=int(i < started))
            for i, state in enumerate(states)]


@pytest.mark.parametrize(("workflow", "expected"), [
    (jobs("queued", "blocked", "blocked"), "pending"),
    (jobs("queued", "blocked", started=1), "running"),  # retried: queued again, attempt 1 made
    (jobs("running", "blocked", started=1), "running"),
    (jobs("succeeded", "blocked", started=1), "running"),
    (jobs("failed", "queued", started=1), "running"),  # a 'run' step still to come
    (jobs("succeeded", "succeeded", started=2), "succeeded"),
    (jobs("succeeded", "failed", "cancelled", started=2), "failed"),
    (jobs("succeeded", "cancelled", "cancelled", started=1), "cancelled"),
    (jobs("cancelled", "cancelled"), "cancelled"),
])
def test_workflow_state(workflow: list[WorkflowJob], expected: str) -> None:
    assert workflow_state(workflow) == expected
