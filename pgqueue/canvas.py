"""Workflows: signatures (`task.s(...)`), `chain`, `group` and `chord`, enqueued in one
transaction as jobs linked by dependencies (migration 0018) and tagged with one workflow id.

A workflow is first planned in Python (every argument checked, nothing written), then written
by one call to `pgqueue.enqueue_workflow` (migration 0023): every step and every edge at once.
The release trigger hands results on (migrations 0020, 0023): a step after a single step gets
that step's result as its first argument, a step after a group (a chord's callback) the list of
the group's results, in order.
"""

from __future__ import annotations

import dataclasses
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pgqueue import store, waiting
from pgqueue.db import Row
from pgqueue.errors import ConfigurationError, UnknownTask
from pgqueue.types import JobState
from pgqueue.validation import check_schedule, encode_arguments

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.db import ExternalConnection
    from pgqueue.tasks import Task

PassResults = Literal["one", "list"]
_RESULT = object()
"""Stands for the result a step receives, when its call is checked at planning time."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    signature: Signature
    parents: tuple[int, ...]
    """Indexes of earlier steps in the plan."""
    pass_results: PassResults | None


@dataclasses.dataclass(slots=True)
class _Plan:
    """The steps planned so far, and the call shapes already checked: binding a call costs
    12 us, and a chord's 10,000 parents are mostly one task called one way."""

    steps: list[_Step] = dataclasses.field(default_factory=list)
    checked: set[tuple[int, int, tuple[str, ...]]] = dataclasses.field(default_factory=set)

    def check_call(self, task: Task[Any, Any], args: tuple[Any, ...],
                   kwargs: Mapping[str, Any]) -> None:
        shape = (id(task), len(args), tuple(kwargs))  # binding reads no values
        if shape not in self.checked:
            task._check_signature(args, kwargs)
            self.checked.add(shape)


class Node(ABC):
    """Something a workflow is made of: a signature, a chain, a group."""

    @abstractmethod
    def _plan(self, plan: _Plan, parents: tuple[int, ...],
              pass_results: PassResults | None) -> tuple[tuple[int, ...], PassResults]:
        """Append this node's steps after `parents`; returns its last steps and how the next
        step receives their results."""

    @abstractmethod
    def _app(self) -> App:
        """The App whose database the workflow is written to."""

    def defer(self, *, connection: ExternalConnection | None = None) -> WorkflowHandle:
        """Enqueue the whole workflow in one transaction (with `connection=`, the caller's: it
        commits or rolls back with it). Every argument is checked before anything is written."""
        plan = _Plan()
        last, passing = self._plan(plan, (), None)
        app = self._app()
        if connection is not None:
            return _write(app, plan.steps, last, passing, connection)
        with app.db.transaction() as conn:  # Django's: atomic() on its connection
            return _write(app, plan.steps, last, passing, conn)


@dataclasses.dataclass(frozen=True, slots=True)
class Signature(Node):
    """A task with some of its arguments: `task.s(*args, **kwargs)`. As a later step of a
    workflow, it receives its parents' results first, then these arguments."""

    task: Task[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    encoded: tuple[str, str] = dataclasses.field(init=False, repr=False, compare=False)
    """args and kwargs as JSON, checked here, written by `defer`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoded", encode_arguments(
            self.args, self.kwargs, max_bytes=self.task.app.max_payload_bytes))

    def _app(self) -> App:
        return self.task.app

    def _plan(self, plan: _Plan, parents: tuple[int, ...],
              pass_results: PassResults | None) -> tuple[tuple[int, ...], PassResults]:
        if self.task.app.tasks.get(self.task.name) is None:
            # A Task renamed or built by hand: no worker of this app would claim its jobs.
            raise UnknownTask(f"{self.task.name}: no task of this name is registered on the "
                              "workflow's App (app.signature(name) checks it by name)")
        args = self.args if pass_results is None else (_RESULT, *self.args)
        plan.check_call(self.task, args, self.kwargs)
        if self.task.depends_on or self.task.lock or self.task.unique_key:
            raise ConfigurationError(f"{self.task.name}: a workflow step cannot have "
                                     "depends_on, a lock or a unique key")
        plan.steps.append(_Step(self, parents, pass_results))
        return (len(plan.steps) - 1,), "one"


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class _Steps(Node):
    """A chain or a group: its steps, checked when it is built."""

    nodes: tuple[Node, ...]

    def __init__(self, *nodes: Node) -> None:
        object.__setattr__(self, "nodes", _check_nodes(type(self).__name__.lower(), nodes))

    def _app(self) -> App:
        return self.nodes[0]._app()


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Chain(_Steps):
    """Steps run one after the other; each gets the previous one's result(s) first."""

    def _plan(self, plan: _Plan, parents: tuple[int, ...],
              pass_results: PassResults | None) -> tuple[tuple[int, ...], PassResults]:
        tails, passing = parents, pass_results
        for node in self.nodes:
            tails, passing = node._plan(plan, tails, passing)
        return tails, passing


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Group(_Steps):
    """Steps that run independently (in parallel); a step after the group gets the list of
    their results, in the order given here."""

    def _plan(self, plan: _Plan, parents: tuple[int, ...],
              pass_results: PassResults | None) -> tuple[tuple[int, ...], PassResults]:
        tails: list[int] = []
        for node in self.nodes:
            tails.extend(node._plan(plan, parents, pass_results)[0])
        return tuple(tails), "list"


def chain(*nodes: Node) -> Chain:
    return Chain(*nodes)


def group(*nodes: Node) -> Group:
    return Group(*nodes)


def chord(header: Sequence[Node], callback: Node) -> Chain:
    """The header's steps run in parallel; `callback` runs once, after all of them succeeded,
    with the list of their results (in header order) as its first argument."""
    if isinstance(header, Node):
        raise ConfigurationError("chord takes a list of header steps, then the callback")
    return Chain(Group(*header), callback)


def _check_nodes(kind: str, nodes: tuple[Any, ...]) -> tuple[Node, ...]:
    if not nodes:
        raise ConfigurationError(f"{kind}() needs at least one step")
    for node in nodes:
        if not isinstance(node, Node):
            raise ConfigurationError(f"{kind}() takes signatures (task.s(...)), chains and "
                                     f"groups, not {type(node).__name__}")
    apps = {id(node._app()) for node in nodes}
    if len(apps) > 1:
        raise ConfigurationError(f"{kind}(): every step must belong to the same App")
    return nodes


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowHandle:
    """What `defer` returns: the workflow's id and its jobs' ids, in enqueue order."""

    app: App
    workflow_id: uuid.UUID
    job_ids: tuple[int, ...]
    last_job_ids: tuple[int, ...]
    """The workflow's last step(s): several when it ends with a group."""
    ends_with_group: bool

    def wait(self, timeout: float | None = None, *,
             poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
        """The last step's result (a list of them when the workflow ends with a group), once
        it succeeded. Raises `JobFailed`, `JobCancelled` (a failed step cancels the steps
        after it: error_type 'ParentFailed'), or `TimeoutError` after `timeout` seconds."""
        results = waiting.wait_for(self.app, self.last_job_ids, timeout, poll_interval)
        return results if self.ends_with_group else results[0]

    async def wait_async(self, timeout: float | None = None, *,
                         poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
        """`wait` without blocking the event loop."""
        results = await waiting.await_for(self.app, self.last_job_ids, timeout, poll_interval)
        return results if self.ends_with_group else results[0]


def _write(app: App, steps: list[_Step], last: tuple[int, ...], passing: PassResults,
           connection: ExternalConnection | None) -> WorkflowHandle:
    rows: list[dict[str, Any]] = []
    edges: list[tuple[int, int]] = []
    for position, step in enumerate(steps, start=1):
        task = step.signature.task
        run_at, delay = check_schedule(task.run_at, task.delay)
        rows.append({
            "task_name": task.name, "queue": task.queue, "priority": task.priority,
            "run_at": run_at.isoformat() if run_at is not None else None, "delay": delay,
            "max_attempts": task.retry.max_attempts, "timeout_seconds": task.timeout,
            "concurrency_key": task.concurrency_key,
            "on_parent_failure": task.on_parent_failure, "pass_results": step.pass_results})
        edges.extend((position, parent + 1) for parent in step.parents)
    workflow_id = uuid.uuid4()
    ids = app.db.run(store.enqueue_workflow(
        workflow_id=workflow_id, steps=rows,
        args=[step.signature.encoded[0] for step in steps],
        kwargs=[step.signature.encoded[1] for step in steps], edges=edges), connection)
    return WorkflowHandle(app, workflow_id, tuple(ids), tuple(ids[i] for i in last),
                          ends_with_group=passing == "list")


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowJob:
    """One job of a workflow, as `App.get_workflow` lists it."""

    id: int
    task_name: str
    state: JobState
    result: Any
    error_type: str | None
    error_message: str | None
    parent_ids: tuple[int, ...] = ()
    """The jobs it runs after (empty for a root step)."""
    attempts: int = 0
    max_attempts: int = 1
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


WorkflowState = Literal["pending", "running", "succeeded", "failed", "cancelled"]


def workflow_state(jobs: Sequence[WorkflowJob]) -> WorkflowState:
    """The workflow's state from its jobs' (see `workflow_state_of`)."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state.value] = counts.get(job.state.value, 0) + 1
    return workflow_state_of(counts, started=any(job.attempts for job in jobs))


def workflow_state_of(counts: Mapping[str, int], *, started: bool) -> WorkflowState:
    """From its jobs' count by state, and whether any made an attempt: `pending` until one
    starts (or ends), `running` while any is unfinished, then `succeeded` (every job), `failed`
    (one failed: the ones after it were cancelled) or `cancelled` (none failed, some were)."""
    final = {state.value for state in JobState if state.is_final}
    if any(n for state, n in counts.items() if state not in final):
        ended = any(n for state, n in counts.items() if state in final)
        return "running" if started or ended else "pending"
    if counts.get(JobState.FAILED.value):
        return "failed"
    return "cancelled" if counts.get(JobState.CANCELLED.value) else "succeeded"


def workflow_id_of(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise ConfigurationError(f"not a workflow id: {value!r}") from None


def workflow_jobs(rows: list[Row]) -> list[WorkflowJob]:
    return [WorkflowJob(
        id=row["id"], task_name=row["task_name"], state=JobState(row["state"]),
        result=row["result"], error_type=row["error_type"], error_message=row["error_message"],
        parent_ids=tuple(row["parent_ids"]), attempts=row["attempts"],
        max_attempts=row["max_attempts"], enqueued_at=row["enqueued_at"],
        started_at=row["started_at"], finished_at=row["finished_at"]) for row in rows]
